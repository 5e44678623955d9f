"""The local stack behind `waybill up`: NATS, the partner sandboxes and the services.

Every service runs as its own process, as it would in a container, so the
local stack crosses the same process boundaries as a Kubernetes deployment.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from waybill_runtime.bus.client import shown_url
from waybill_runtime.errors import UserFacingError
from waybill_runtime.local import child_process
from waybill_runtime.local.embedded_cluster import CLUSTER_PORT, EmbeddedCluster
from waybill_runtime.local.embedded_nats import (
    EmbeddedNats,
    EmbeddedNatsOptions,
    prepare_state_dir,
)
from waybill_runtime.local.plan import ChildSpec, LocalPlan
from waybill_runtime.local.registry import SandboxDeclaration, installed_sandboxes, load_services
from waybill_runtime.local.restarts import RestartSchedule
from waybill_runtime.local.secured_stack import (
    LocalTls,
    identity_environment,
    provision_as_admin,
    secure_options,
    tls_options,
)
from waybill_runtime.private_files import open_private, private_folder
from waybill_runtime.security.local_api_keys import LocalApiKeys
from waybill_runtime.security.mesh import MeshSecurity
from waybill_runtime.security.permissions import ADMIN, OPERATOR
from waybill_runtime.security.tls import (
    CA_FILE_VAR,
    CERT_FILE_VAR,
    KEY_FILE_VAR,
    TlsFiles,
    client_context,
)
from waybill_runtime.service import Service
from waybill_runtime.settings import env_var_name

NATS_SERVER = "nats-server"
"""The embedded server's name among the stack's children (in what supervision says); a
cluster's nodes are ``nats-server <server name>``."""


def replica_name(service: str, replica: int) -> str:
    """A service instance's name among the stack's children: the service's own for the
    first, ``<service> #2`` ... for the others (their logs: ``<service>-#2.log``)."""
    return service if replica == 0 else f"{service} #{replica + 1}"


class NatsUnreachableError(UserFacingError):
    """An external NATS URL that does not answer."""


class StackStartError(UserFacingError):
    """A process of the local stack did not come up."""


def check_nats_reachable(url: str, *, timeout_s: float = 3.0) -> None:
    """Fail in one line when nothing accepts connections at ``url``.

    ``url`` may name several servers of a cluster, comma-separated (as NATS_URL
    does): one that answers is enough, as it is for the client.
    """
    reasons = []
    for server in (s.strip() for s in url.split(",") if s.strip()):
        parts = urlsplit(server if "://" in server else f"nats://{server}")
        try:
            host, port = parts.hostname or "127.0.0.1", parts.port or 4222
        except ValueError:
            raise NatsUnreachableError(
                f"{shown_url(server)} is not a NATS URL (its port is not a number): write "
                "nats://host:port, several separated by commas"
            ) from None
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return
        except OSError as error:
            reasons.append(error.strerror or type(error).__name__)
    raise NatsUnreachableError(
        f"cannot reach NATS at {shown_url(url)} ({'; '.join(reasons) or 'no server named'}): "
        "start a server there, fix the URL, or leave --nats-url out to use the embedded server"
    )


def _wait_listening(host: str, port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def wait_ready(url: str, deadline: float) -> bool:
    """Whether ``url`` answers 200 before ``deadline`` (monotonic): a service up and ready."""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


@dataclass
class LocalStack:
    """NATS, the sandboxes (when installed) and every installed service, as child processes.

    ``cluster=3`` runs three embedded nats-server nodes routed into one JetStream cluster
    (``nats_nodes``); the services get every node's URL and streams and buckets are made
    with three replicas. What tests (the chaos tests) use beside :meth:`start` and
    :meth:`stop`: :meth:`kill_nats_node`, :meth:`restart_nats_cluster`,
    :meth:`wait_nats_healthy`, and :meth:`supervise_until` to restart what crashed.
    """

    nats_options: EmbeddedNatsOptions
    external_nats_url: str | None = None
    services: Mapping[str, Service[Any]] = field(default_factory=load_services)
    sandboxes: Mapping[str, SandboxDeclaration] = field(default_factory=installed_sandboxes)
    start_timeout_s: float = 60.0
    # The first (or only) embedded node; ``nats_nodes`` has them all.
    nats: EmbeddedNats | None = None
    # Embedded nats-server nodes: 1, or 3 routed into one JetStream cluster whose
    # routes listen on ``cluster_port`` and the next ports (0: any free ports).
    cluster: int = 1
    cluster_port: int = CLUSTER_PORT
    nats_cluster: EmbeddedCluster | None = None
    # Held while the nodes are restarted on purpose, so supervision (perhaps in another
    # thread) neither takes them for crashed nor starts them a second time.
    _nats_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # How each child was started, so a crashed one can be started again the same way.
    specs: dict[str, ChildSpec] = field(default_factory=dict)
    restarts: RestartSchedule = field(default_factory=RestartSchedule)
    urls: dict[str, str] = field(default_factory=dict)
    plan: LocalPlan | None = None
    # Every service its own NATS identity (embedded server only; an external
    # server's authorization is its operator's business).
    secure: bool = True
    subject_prefix: str = "waybill"
    security: MeshSecurity | None = None
    # TLS on the embedded server (a local CA in the state folder); ``mtls``:
    # the server verifies a client certificate, one per identity.
    tls: bool = False
    mtls: bool = False
    # Instances of every service, each a process of its own on the service's shared
    # durables (as replicas of a Deployment are).
    replicas: int = 1
    local_tls: LocalTls | None = None

    @property
    def nats_url(self) -> str:
        if self.external_nats_url is not None:
            return self.external_nats_url
        assert self.nats_cluster is not None
        return self.nats_cluster.client_url

    @property
    def nats_nodes(self) -> list[EmbeddedNats]:
        """The embedded nodes (none with an external server), each with ``pid``,
        ``client_url``, ``kill()``, ``stop()`` and ``start()``."""
        return [] if self.nats_cluster is None else self.nats_cluster.nodes

    @property
    def log_dir(self) -> Path:
        return self.nats_options.state_dir / "logs"

    def log_of(self, name: str) -> Path:
        return self.log_dir / f"{name.replace(' ', '-')}.log"

    def start(self) -> None:
        if self.external_nats_url is not None:
            check_nats_reachable(self.external_nats_url)
        else:
            options = self.nats_options
            if self.secure:
                options, self.security = secure_options(options, self.services, self.subject_prefix)
            if self.tls or self.mtls:
                options, self.local_tls = tls_options(options, self.services, mutual=self.mtls)
            self.nats_cluster = EmbeddedCluster(
                options, size=self.cluster, cluster_port=self.cluster_port
            )
            # Services start once the cluster has a meta leader: before, they could not
            # bind their streams and would fail their first start.
            self.nats_cluster.start(ready_timeout_s=self.start_timeout_s)
            self.nats = self.nats_cluster.nodes[0]
            if self.security is not None:
                provision_as_admin(
                    self.nats_url,
                    self.security,
                    self.services,
                    self.subject_prefix,
                    tls=self.client_tls(ADMIN),
                    replicas=self.cluster,
                )
        private_folder(self.log_dir)
        self.plan = plan = LocalPlan.make(
            self.services,
            self.sandboxes,
            api_keys=LocalApiKeys.ensure(prepare_state_dir(self.nats_options.state_dir)),
            replicas=self.replicas,
        )
        deadline = time.monotonic() + self.start_timeout_s
        partners = plan.sandbox_children()
        for spec in partners:
            self._spawn(spec)
        for spec in partners:
            assert spec.listens_on is not None
            if not _wait_listening(*spec.listens_on, deadline):
                raise StackStartError(
                    f"the {spec.name} did not start; see {self.log_of(spec.name)}"
                )
        self.urls.update(plan.sandbox_pages())
        for name in self.services:
            for replica in range(self.replicas):
                env = {"NATS_URL": self.nats_url, **plan.replica_environment(name, replica)}
                if self.nats_cluster is not None and self.cluster > 1:
                    # Whoever provisions (a service itself with --no-auth) makes R3.
                    env[env_var_name("stream_replicas")] = str(self.cluster)
                if self.security is not None:
                    env.update(identity_environment(self.security, name))
                if self.local_tls is not None:
                    env.update(self.local_tls.environment(name))
                argv = [sys.executable, "-m", "waybill_runtime", "run", name]
                self._spawn(ChildSpec(name=replica_name(name, replica), argv=argv, env=env))
        for name, service in self.services.items():
            self._wait_service_ready(name, deadline)
            for replica, url in enumerate(plan.replica_urls(name)):
                if replica:
                    self.urls[f"service {replica_name(name, replica)}"] = url
            base = plan.service_url(name)
            self.urls[f"service {name}"] = base
            # The pages a person reads (an API without path parameters), by their summary;
            # of a service's web pages only the top one (``/tower``, not ``/tower/stuck``).
            for route in service.declared_routes:
                if route.audience != "operator" or route.method != "GET" or "{" in route.path:
                    continue
                if route.answers == "application/json" or (
                    route.answers == "text/html" and route.path.count("/") == 1
                ):
                    self.urls[route.summary or route.path] = f"{base}{route.path}"

    def hold(self, service: str) -> None:
        """Stop every instance of ``service`` until :meth:`resume`, as an outage would.

        It drains and stops as in a rollout; its durables stay, so what is sent
        to it meanwhile waits there (a backlog made on purpose: the bench's
        express-lane measure). Supervision does not start a held service.
        """
        for replica in range(self.replicas):
            child_process.stop(self.children.pop(replica_name(service, replica)))

    def resume(self, service: str) -> None:
        """Start a :meth:`hold`-ed service again, the same way, and wait until it is ready."""
        deadline = time.monotonic() + self.start_timeout_s
        for replica in range(self.replicas):
            self._spawn(self.specs[replica_name(service, replica)])
        self._wait_service_ready(service, deadline)

    def _wait_service_ready(self, service: str, deadline: float) -> None:
        assert self.plan is not None
        for replica, url in enumerate(self.plan.replica_urls(service)):
            if not wait_ready(f"{url}/readyz", deadline):
                child = replica_name(service, replica)
                raise StackStartError(
                    f"service {child} did not become ready; see {self.log_of(child)}"
                )

    def _spawn(self, spec: ChildSpec) -> None:
        # Every child knows the stack's state folder (which also marks the
        # processes of one stack, for tests that look for leftovers).
        env = {**os.environ, "WAYBILL_STATE_DIR": str(self.nats_options.state_dir), **spec.env}
        with open_private(self.log_of(spec.name)) as log:  # appended to: a restart keeps the past
            self.children[spec.name] = child_process.spawn(spec.argv, env=env, output=log)
        self.specs[spec.name] = spec
        self.restarts.started(spec.name, time.monotonic())

    def supervise(self) -> list[str]:
        """Start crashed children again, after growing pauses; what happened.

        Returns one line per crash found and per restart made. The embedded
        nats-server is one of them: it comes back on the same ports and the same
        JetStream store (nothing stored is lost), and the services reconnect on
        their own meanwhile, as they would to a restarted pod.
        """
        said = self._supervise_nats()
        now = time.monotonic()
        for name, process in list(self.children.items()):
            code = process.poll()
            if code is None:
                continue
            if not self.restarts.waiting(name):
                pause = self.restarts.crashed(name, now)
                said.append(
                    f"{name} stopped unexpectedly (exit {code}); starting it again in "
                    f"{pause:g} s; see {self.log_of(name)}"
                )
            elif self.restarts.due(name, now):
                crashes = self.restarts.crashes(name)
                self._spawn(self.specs[name])
                said.append(f"{name} started again ({crashes} crash(es) in a row)")
        return said

    def supervise_until(self, stop: threading.Event, say: Callable[[str], None]) -> None:
        """Call :meth:`supervise` twice a second until ``stop`` is set, telling ``say`` each
        line (what `waybill up` does in the foreground; a test runs it in a thread)."""
        while not stop.wait(0.5):
            for line in self.supervise():
                say(line)

    def _supervise_nats(self) -> list[str]:
        said: list[str] = []
        with self._nats_lock:
            for node in self.nats_nodes:
                if not node.running():
                    said += self._supervise_nats_node(node)
        return said

    def _supervise_nats_node(self, node: EmbeddedNats) -> list[str]:
        # One node alone keeps its plain name; a cluster's nodes are told apart.
        name = NATS_SERVER if self.cluster == 1 else f"{NATS_SERVER} {node.name}"
        now = time.monotonic()
        if not self.restarts.waiting(name):
            pause = self.restarts.crashed(name, now)
            others = " (the other nodes go on)" if self.cluster > 1 else ""
            return [
                f"{name} stopped unexpectedly{others}; starting it again in {pause:g} s "
                f"on the same ports and store; see {node.log_path}"
            ]
        if not self.restarts.due(name, now):
            return []
        crashes = self.restarts.crashes(name)
        try:
            node.restart()
        except UserFacingError as error:  # e.g. its port was taken meanwhile
            self.restarts.crashed(name, time.monotonic())
            return [f"{name} could not be started again: {error}"]
        self.restarts.started(name, time.monotonic())
        return [f"{name} started again ({crashes} crash(es) in a row)"]

    def kill_nats_node(self, index: int) -> int:
        """SIGKILL embedded node ``index`` (0-based), as a crash would; its pid. The others
        go on; :meth:`supervise` starts it again after a pause."""
        node = self.nats_nodes[index]
        pid = node.pid
        if pid is None or not node.running():
            raise RuntimeError(f"{node.name} is not running")
        node.kill()
        return pid

    def restart_nats_cluster(self) -> None:
        """Stop every embedded node, start them all again on the same ports and stores
        (the same state), and return once the cluster is healthy again."""
        assert self.nats_cluster is not None, "the embedded NATS is not started"
        with self._nats_lock:
            self.nats_cluster.restart(ready_timeout_s=self.start_timeout_s)

    def wait_nats_healthy(self, timeout_s: float = 60.0) -> None:
        """Return once every embedded node runs and is current, with a JetStream meta leader
        and every stream and KV bucket led and all its replicas current; raises a one-line
        :class:`~waybill_runtime.local.embedded_nats.NatsStartError` after ``timeout_s``."""
        assert self.nats_cluster is not None, "the embedded NATS is not started"
        self.nats_cluster.wait_healthy(timeout_s)

    def stop(self) -> None:
        # Services and sandboxes first (services drain into NATS), then NATS.
        threads = [
            threading.Thread(target=child_process.stop, args=(proc,), daemon=True)
            for proc in self.children.values()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.children.clear()
        if self.nats_cluster is not None:
            self.nats_cluster.stop()

    def client_tls(self, identity: str) -> ssl.SSLContext | None:
        """The SSLContext ``identity`` connects with (None: no TLS).

        The local CA's with the embedded server; with an external one, the
        ``WAYBILL_NATS_TLS_*`` files the services are given too.
        """
        if self.local_tls is not None:
            return self.local_tls.context(identity)
        if self.external_nats_url is None:
            return None
        return client_context(
            TlsFiles(
                ca_file=os.environ.get(CA_FILE_VAR) or None,
                cert_file=os.environ.get(CERT_FILE_VAR) or None,
                key_file=os.environ.get(KEY_FILE_VAR) or None,
            )
        )

    def operator_seed_file(self) -> str | None:
        """The operator's seed (for the demo and `waybill dlq`), when identities are on."""
        if self.security is None:
            return None
        return str(self.security.seed_file(OPERATOR))
