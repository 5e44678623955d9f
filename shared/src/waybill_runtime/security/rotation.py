"""Rotating and revoking an identity's nkey on the embedded server, without a restart.

`waybill nats rotate SERVICE` and `waybill nats revoke SERVICE` work on a state
folder: its seeds (:mod:`waybill_runtime.security.nkeys_store`) and, while
`waybill nats` / `waybill up` runs, the server's config file and pid file
(:class:`waybill_runtime.local.embedded_nats.EmbeddedNats`). The server reads
its config again on SIGHUP and keeps its pid; after a reload it closes the
connections of users that no longer exist.

Rotation keeps the service up: the new key is added next to the old one with
the same permissions, the seed file is replaced (the runtime's client notices
and reconnects with the new key, see :mod:`waybill_runtime.bus.client`), and
once no connection uses the old key any more it is removed.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from waybill_runtime.errors import UserFacingError
from waybill_runtime.local.embedded_cluster import NODE_FOLDERS
from waybill_runtime.local.embedded_nats import PID_FILE_NAME
from waybill_runtime.private_files import write_private
from waybill_runtime.security.mesh import identities_folder
from waybill_runtime.security.nkeys_store import new_seed_file, public_key_of, seed_path

Say = Callable[[str], None]

_NEXT_SUFFIX = ".next"


class RotationError(UserFacingError):
    """A rotation or revocation cannot go on (no seed, no such user in the server config)."""


# -- the server's config file: one user entry per key --------------------------------------


def _entry_span(lines: list[str], key: str) -> tuple[int, int] | None:
    """First and last line of the user entry ``{ nkey: "<key>" ... }`` (None: not there)."""
    marker = f"nkey: {json.dumps(key)}"
    at = next((i for i, line in enumerate(lines) if line.strip() == marker), None)
    if at is None:
        return None
    start = at
    while start > 0 and lines[start].strip() != "{":
        start -= 1
    depth = 0
    for end in range(start, len(lines)):
        depth += lines[end].count("{") - lines[end].count("}")
        if depth == 0:
            return start, end
    raise RotationError(f"the user entry of {key} in the server config is not closed")


def with_key_added(config: str, existing_key: str, new_key: str) -> str:
    """``config`` with a copy of ``existing_key``'s user entry for ``new_key`` (same rights)."""
    lines = config.splitlines()
    if _entry_span(lines, new_key) is not None:
        return config
    span = _entry_span(lines, existing_key)
    if span is None:
        raise RotationError(f"the server config has no user with the key {existing_key}")
    start, end = span
    marker = f"nkey: {json.dumps(existing_key)}"
    copy = [line.replace(marker, f"nkey: {json.dumps(new_key)}") for line in lines[start : end + 1]]
    return "\n".join([*lines[: end + 1], *copy, *lines[end + 1 :]]) + "\n"


def with_key_removed(config: str, key: str) -> str:
    """``config`` without ``key``'s user entry (unchanged if it has none)."""
    lines = config.splitlines()
    span = _entry_span(lines, key)
    if span is None:
        return config
    start, end = span
    return "\n".join([*lines[:start], *lines[end + 1 :]]) + "\n"


def has_key(config: str, key: str) -> bool:
    return _entry_span(config.splitlines(), key) is not None


# -- the running embedded server -----------------------------------------------------------


@dataclass(frozen=True)
class RunningServer:
    """The embedded server of a state folder, as `waybill nats` / `waybill up` started it."""

    config_path: Path
    pid: int
    monitor_url: str | None

    def reload(self) -> None:
        """SIGHUP: the server reads its config again (same pid, connections kept)."""
        try:
            os.kill(self.pid, signal.SIGHUP)
        except ProcessLookupError:
            raise RotationError(
                f"nats-server (pid {self.pid}) is no longer running; its config "
                f"{self.config_path} was updated and is used at its next start"
            ) from None

    def connections_with_key(self, key: str) -> int | None:
        """How many clients are connected as ``key`` (None: monitoring does not answer)."""
        if self.monitor_url is None:
            return None
        url = f"{self.monitor_url}/connz?auth=1&limit=100000"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                connz = json.load(response)
        except (urllib.error.URLError, OSError, ValueError):
            return None
        return sum(1 for c in connz.get("connections", []) if c.get("authorized_user") == key)

    def write_config(self, text: str) -> None:
        write_private(self.config_path, text)


def running_server(state_dir: Path) -> RunningServer | None:
    """The lone server running from ``state_dir`` (None: no pid file, or its process is gone)."""
    return _running_in(state_dir / "nats")


def _running_in(nats_dir: Path) -> RunningServer | None:
    try:
        pid = int((nats_dir / PID_FILE_NAME).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    config_path = nats_dir / "nats-server.conf"
    if not config_path.is_file():
        return None
    monitor_url = None
    for line in config_path.read_text().splitlines():
        if line.startswith("http:"):
            monitor_url = f"http://{json.loads(line.partition(':')[2].strip())}"
    return RunningServer(config_path=config_path, pid=pid, monitor_url=monitor_url)


@dataclass(frozen=True)
class RunningNodes:
    """Every embedded server running from a state folder: the lone one, or each node of a
    cluster (`waybill up --cluster 3`); all of them must accept the same identities."""

    servers: list[RunningServer]

    @property
    def pids(self) -> str:
        return ", ".join(str(server.pid) for server in self.servers)

    def change_config(self, change: Callable[[str], str]) -> None:
        """Apply ``change`` to every server's config file and have each read it again."""
        for server in self.servers:
            server.write_config(change(server.config_path.read_text()))
            server.reload()

    def connections_with_key(self, key: str) -> int | None:
        """Clients connected as ``key`` on all servers (None: one's monitoring is silent)."""
        counts = [server.connections_with_key(key) for server in self.servers]
        return None if None in counts else sum(c or 0 for c in counts)


def running_nodes(state_dir: Path) -> RunningNodes | None:
    """The servers running from ``state_dir`` (None: none runs)."""
    folders = [state_dir / "nats", *sorted((state_dir / "nats").glob(NODE_FOLDERS))]
    servers = [s for s in map(_running_in, folders) if s is not None]
    return RunningNodes(servers) if servers else None


def _wait_gone(server: RunningNodes, key: str, timeout_s: float) -> int | None:
    """Wait until no client is connected as ``key``; the number still connected then."""
    deadline = time.monotonic() + timeout_s
    while True:
        count = server.connections_with_key(key)
        if not count or time.monotonic() >= deadline:
            return count
        time.sleep(0.2)


# -- rotate and revoke ---------------------------------------------------------------------


def _current_seed(state_dir: Path, name: str) -> Path:
    path = seed_path(identities_folder(state_dir), name)
    if not path.is_file():
        raise RotationError(
            f"{name} has no nkey seed in {path.parent} (unknown identity, or revoked): "
            "`waybill nats` / `waybill up` issue one for every installed service at start"
        )
    return path


def rotate(state_dir: Path, name: str, *, say: Say = print, move_timeout_s: float = 30.0) -> str:
    """Give identity ``name`` a new key without cutting its connections; its new public key."""
    current = _current_seed(state_dir, name)
    old_key = public_key_of(current)
    pending = current.with_name(current.name + _NEXT_SUFFIX)
    if not pending.is_file():  # kept by an interrupted rotation: run on with it
        new_seed_file(pending)
    new_key = public_key_of(pending)
    say(f"1/5 new key for {name}: {new_key} (seed {pending}, mode 0600)")
    server = running_nodes(state_dir)
    if server is None:
        os.replace(pending, current)
        say(
            f"no embedded server runs from {state_dir}: {current} now holds the new key, "
            "used from the next start; the old key is gone"
        )
        return new_key
    server.change_config(lambda config: with_key_added(config, old_key, new_key))
    say(f"2/5 the server accepts both keys of {name} (config reloaded, pid {server.pids})")
    os.replace(pending, current)
    say(f"3/5 {current} holds the new key: a running {name} reconnects with it")
    left = _wait_gone(server, old_key, move_timeout_s)
    if left:
        say(
            f"4/5 {left} connection(s) still use the old key after {move_timeout_s:.0f} s: "
            "they are cut now and must reconnect with the new seed"
        )
    elif left is None:
        say("4/5 monitoring does not answer: cannot tell who still uses the old key")
    else:
        say(f"4/5 no connection uses the old key of {name} any more")
    server.change_config(lambda config: with_key_removed(config, old_key))
    say(f"5/5 old key {old_key} removed (config reloaded): {name} rotated")
    return new_key


def revoke(state_dir: Path, name: str, *, say: Say = print, cut_timeout_s: float = 10.0) -> str:
    """Remove identity ``name``'s key: its connections are cut and refused; the revoked key."""
    current = _current_seed(state_dir, name)
    key = public_key_of(current)
    server = running_nodes(state_dir)
    if server is not None:
        server.change_config(lambda config: with_key_removed(config, key))
        say(f"1/3 key {key} of {name} removed from the server (config reloaded, pid {server.pids})")
    else:
        say(f"1/3 no embedded server runs from {state_dir}: nothing to reload")
    current.unlink()
    say(f"2/3 seed {current} deleted")
    if server is not None:
        left = _wait_gone(server, key, cut_timeout_s)
        if left is None:
            say("3/3 monitoring does not answer: cannot tell whether the server cut them")
        elif left:
            raise RotationError(
                f"{left} connection(s) still use the revoked key after {cut_timeout_s:.0f} s: "
                f"see {', '.join(str(s.config_path) for s in server.servers)} and the server log"
            )
        else:
            say(f"3/3 no connection uses the revoked key of {name}")
    else:
        say("3/3 done")
    say(
        f"{name} is locked out until it has a new key: `waybill nats` / `waybill up` issue "
        "one at their next start"
    )
    return key
