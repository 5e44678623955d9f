"""The embedded NATS of a local run: one nats-server, or three as a cluster (`--cluster 3`).

A cluster's nodes run from the same state folder, each in its own folder
(``nats/node-1`` ...) with its own client, route and monitoring ports, the
same authorization and TLS blocks as a lone server, and JetStream clustered
under one cluster name with a server name per node. Routes between the nodes
authenticate with a password made for the run (kept only in the nodes'
private config files), so a local program cannot join the cluster as a route
and read past the services' permissions.

Health is read from the nodes' monitoring endpoints, so it needs no NATS
identity: a meta leader, and every stream (KV buckets are streams too) with
a leader and all its replicas current.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from waybill_runtime.errors import UserFacingError
from waybill_runtime.local.embedded_nats import EmbeddedNats, EmbeddedNatsOptions, NatsStartError
from waybill_runtime.local.ports import ensure_port_free, free_port

__all__ = [
    "CLUSTER_SIZES",
    "ClusterSizeError",
    "EmbeddedCluster",
    "check_cluster_size",
    "cluster_health",
]

CLUSTER_SIZES = (1, 3)
"""Nodes `waybill up --cluster` runs: one, or three (a quorum survives losing one)."""
CLUSTER_PORT = 6222
CLUSTER_NAME = "waybill-local"
NODE_FOLDERS = "node-*"
"""A cluster node's folder under ``<state folder>/nats`` (config, pid, log, store)."""
_ROUTE_USER = "route"


class ClusterSizeError(UserFacingError):
    """A cluster size JetStream cannot use well."""


def check_cluster_size(size: int) -> int:
    """``size`` when Waybill runs clusters of that size; a one-line reason otherwise."""
    if size in CLUSTER_SIZES:
        return size
    if size > 0 and size % 2 == 0:
        why = (
            "JetStream replicates through a quorum (a majority of the servers), so a cluster "
            f"needs an odd number of them: with {size}, losing {size // 2} stops JetStream, "
            f"as it does with {size - 1}; 3 keeps working with one down"
        )
    elif size > 0:
        why = (
            "3 already keeps JetStream working with one server down; more servers on one "
            "machine only cost memory and CPU"
        )
    else:
        why = "a stack needs at least one server"
    raise ClusterSizeError(
        f"a cluster of {size} NATS server(s) is not supported: give 1 or 3; {why}"
    )


def _ports(base: int, size: int, host: str, *, what: str, option: str) -> list[int]:
    """``base``, ``base``+1, ... (or free ports for 0), each checked free in one line."""
    ports = [base + i if base else free_port(host) for i in range(size)]
    for port in ports:
        ensure_port_free(host, port, what=what, option=option)
    return ports


def node_options(
    options: EmbeddedNatsOptions, size: int, *, cluster_port: int = CLUSTER_PORT
) -> list[EmbeddedNatsOptions]:
    """The options of each node: ``options`` itself for one; for a cluster, ports from
    ``options``' (one up per node), a folder and a server name per node, and the routes."""
    if check_cluster_size(size) == 1:
        return [options]
    host = options.host
    clients = _ports(options.port, size, host, what="a NATS node", option="--port")
    monitors = _ports(
        options.monitor_port, size, host, what="a NATS node's monitoring", option="--monitor-port"
    )
    routes = _ports(cluster_port, size, host, what="a NATS node's routes", option="--cluster-port")
    password = secrets.token_urlsafe(24)
    route_urls = [f"nats-route://{_ROUTE_USER}:{password}@{host}:{port}" for port in routes]
    return [
        dataclasses.replace(
            options,
            port=clients[i],
            monitor_port=monitors[i],
            server_name=f"{options.server_name}-{i + 1}",
            folder=f"nats/{NODE_FOLDERS.replace('*', str(i + 1))}",
            ready_path="/healthz?js-enabled-only=true",
            cluster=_cluster_block(host, routes[i], route_urls, password),
        )
        for i in range(size)
    ]


def _cluster_block(host: str, port: int, routes: list[str], password: str) -> str:
    lines = [
        "cluster {",
        f"  name: {json.dumps(CLUSTER_NAME)}",
        f"  host: {json.dumps(host)}",
        f"  port: {port}",
        # The services are given every node's URL; what a node would advertise adds nothing.
        "  no_advertise: true",
        f"  authorization {{ user: {json.dumps(_ROUTE_USER)}, password: {json.dumps(password)} }}",
        f"  routes: {json.dumps(routes)}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            document = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def cluster_health(nodes: list[EmbeddedNats]) -> list[str]:
    """What keeps ``nodes`` from being healthy, one line each; empty when healthy.

    Healthy: every node runs and its /healthz answers 200 (JetStream current with
    the cluster); in a cluster also a meta leader, and every stream with a leader
    and all its replicas current. Replicas are read as their leader sees them:
    a follower does not know how current the other followers are.
    """
    problems: list[str] = []
    views: dict[str, dict[str, Any]] = {}
    for node in nodes:
        if not node.running():
            problems.append(f"{node.name} is not running")
            continue
        try:
            with urllib.request.urlopen(f"{node.monitor_url}/healthz", timeout=2.0):
                pass
        except (urllib.error.URLError, OSError) as error:
            problems.append(f"{node.name} is not healthy ({error})")
            continue
        if len(nodes) > 1:
            jsz = _get_json(f"{node.monitor_url}/jsz?accounts=true&streams=true&config=true")
            if jsz is None:
                problems.append(f"{node.name} does not answer /jsz")
            else:
                views[node.name] = jsz
    if len(nodes) == 1 or problems:
        return problems
    meta_leaders = {(v.get("meta_cluster") or {}).get("leader") for v in views.values()}
    meta_leader = meta_leaders.pop() if len(meta_leaders) == 1 else None
    if meta_leader not in views:
        return [*problems, "the nodes do not agree on a JetStream meta leader"]
    problems += _replica_problems(
        "the JetStream meta group", views[meta_leader]["meta_cluster"], len(nodes)
    )
    streams: dict[str, dict[str, Any]] = {}  # by name, as its leader sees it
    for name, view in views.items():
        for account in view.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                if (stream.get("cluster") or {}).get("leader") == name:
                    streams[stream["name"]] = stream
                else:
                    streams.setdefault(stream["name"], {"name": stream["name"]})
    for stream in streams.values():
        cluster = stream.get("cluster")
        if cluster is None:
            problems.append(f"stream {stream['name']} has no leader")
            continue
        wanted = (stream.get("config") or {}).get("num_replicas", 1)
        problems += _replica_problems(f"stream {stream['name']}", cluster, wanted)
    return problems


def _replica_problems(what: str, cluster: dict[str, Any], wanted: int | None = None) -> list[str]:
    """What is wrong with the replicas of a group, read from its leader's view."""
    replicas = cluster.get("replicas") or []
    lagging = [r.get("name", "?") for r in replicas if not r.get("current")]
    if lagging:
        return [f"{what}: {', '.join(lagging)} not current"]
    if wanted is not None and len(replicas) + 1 < wanted:
        return [f"{what} has {len(replicas) + 1} of {wanted} replicas"]
    return []


@dataclass
class EmbeddedCluster:
    """The embedded nats-server node(s) of a local run, started together.

    ``nodes`` are :class:`EmbeddedNats`: each can be ``kill()``-ed (SIGKILL),
    ``stop()``-ped and ``start()``-ed again on its ports and store.
    """

    options: EmbeddedNatsOptions
    size: int = 1
    cluster_port: int = CLUSTER_PORT
    nodes: list[EmbeddedNats] = field(default_factory=list)

    @property
    def client_urls(self) -> list[str]:
        return [node.client_url for node in self.nodes]

    @property
    def client_url(self) -> str:
        """Every node's client URL, comma-separated: one NATS_URL a client fails over with."""
        return ",".join(self.client_urls)

    def start(self, *, ready_timeout_s: float = 60.0) -> None:
        """Start every node, then return once the cluster is healthy (see :meth:`wait_healthy`)."""
        if not self.nodes:
            self.nodes = [
                EmbeddedNats(options)
                for options in node_options(self.options, self.size, cluster_port=self.cluster_port)
            ]
        try:
            # Together: a node's JetStream waits for a quorum of the others.
            for node in self.nodes:
                node.spawn()
            for node in self.nodes:
                node.wait_started(ready_timeout_s)
            self.wait_healthy(ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    def restart(self, *, ready_timeout_s: float = 60.0) -> None:
        """Stop every node, then start them all again on the same ports and stores."""
        self.stop()
        for node in self.nodes:  # a port chosen at start (0: any free) is kept
            node.options = dataclasses.replace(
                node.options, port=node.port, monitor_port=node.monitor_port
            )
        self.start(ready_timeout_s=ready_timeout_s)

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after a grace). Safe to call twice."""
        for node in self.nodes:
            node.stop()

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        """Return once :func:`cluster_health` finds nothing wrong; one line naming what
        was still wrong after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while problems := cluster_health(self.nodes):
            if time.monotonic() > deadline:
                raise NatsStartError(
                    f"the NATS cluster did not become healthy within {timeout_s:.0f} s: "
                    f"{'; '.join(problems[:3])} (logs: "
                    f"{', '.join(str(n.log_path) for n in self.nodes)})"
                )
            time.sleep(0.2)
