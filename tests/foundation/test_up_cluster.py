"""`waybill up --cluster 3`: three embedded nats-server nodes routed into one JetStream
cluster, streams and KV buckets at R3, every service given every node's URL; a node killed
mid-flow loses no order and is started again by the stack's supervision, and rejoins current.

One stack (the nodes, the sandboxes and every installed service) serves the whole module:
starting it is the expensive part.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.js.api import StreamInfo

from waybill_contracts import SubjectMap
from waybill_demo import DEMO
from waybill_runtime.bus.client import connect_client
from waybill_runtime.local.embedded_nats import EmbeddedNatsOptions
from waybill_runtime.local.stack import LocalStack
from waybill_runtime.security.nkeys_store import public_key_of
from waybill_runtime.security.permissions import ADMIN, inbox_prefix
from waybill_runtime.security.rotation import has_key, rotate
from waybill_runtime.settings import env_var_name

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SUBJECTS = SubjectMap("waybill")


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(
        EmbeddedNatsOptions(port=0, monitor_port=0, state_dir=tmp_path_factory.mktemp("cluster")),
        cluster=3,
        cluster_port=0,
        start_timeout_s=180,  # a bound for a hung start on a busy machine
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def _jsz(monitor_url: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{monitor_url}/jsz?accounts=true&streams=true", timeout=5) as r:
        document: dict[str, object] = json.load(r)
    return document


def _stream_leader(stack: LocalStack, stream: str) -> str | None:
    """The node leading ``stream``, as a running node's monitoring tells it."""
    for node in stack.nats_nodes:
        if not node.running():
            continue
        for account in _jsz(node.monitor_url).get("account_details") or []:  # type: ignore[attr-defined]
            for detail in account.get("stream_detail") or []:
                leader = (detail.get("cluster") or {}).get("leader")
                if detail["name"] == stream and leader:
                    return str(leader)
    return None


def _stored(stack: LocalStack, stream: str) -> int:
    """Messages in ``stream``, as its leader holds them (0 while it has none)."""
    leader = _stream_leader(stack, stream)
    for node in stack.nats_nodes:
        if node.name != leader:
            continue
        for account in _jsz(node.monitor_url).get("account_details") or []:  # type: ignore[attr-defined]
            for detail in account.get("stream_detail") or []:
                if detail["name"] == stream:
                    return int(detail["state"]["messages"])
    return 0


def _demo(stack: LocalStack, orders: int) -> int:
    """The demo's scenario for ``orders`` orders on ``stack``; 0 when every one arrived."""
    assert stack.plan is not None
    return DEMO.run(
        stack.plan,
        stack.nats_url,
        orders=orders,
        timeout_s=240,
        log_dir=stack.log_dir,
        nkey_seed_file=stack.operator_seed_file(),
    )


async def test_the_cluster_has_three_nodes_and_every_stream_and_bucket_three_replicas(
    cluster_stack: LocalStack,
) -> None:
    nodes = cluster_stack.nats_nodes
    assert len(nodes) == 3
    assert len({n.pid for n in nodes}) == len({n.client_url for n in nodes}) == 3
    assert len({n.name for n in nodes}) == 3
    assert cluster_stack.security is not None
    admin = await connect_client(
        cluster_stack.nats_url,
        nkeys_seed=str(cluster_stack.security.seed_file(ADMIN)),
        inbox_prefix=inbox_prefix(ADMIN),
        connect_timeout=5,
    )
    try:
        streams: list[StreamInfo] = await admin.jetstream().streams_info()
    finally:
        await admin.close()
    names = {info.config.name for info in streams}
    assert {SUBJECTS.events_stream.name, SUBJECTS.commands_stream.name} <= names
    assert any(str(name).startswith("KV_") for name in names), names
    for info in streams:
        assert info.config.num_replicas == 3, info.config.name
        assert info.cluster is not None and info.cluster.leader in {n.name for n in nodes}
        followers = {r.name for r in info.cluster.replicas or []}
        assert followers | {info.cluster.leader} == {n.name for n in nodes}, info.config.name


def test_every_service_is_given_every_node_and_makes_three_replicas(
    cluster_stack: LocalStack,
) -> None:
    every_node = ",".join(node.client_url for node in cluster_stack.nats_nodes)
    services = [
        name for name in cluster_stack.specs if name.split(" #")[0] in cluster_stack.services
    ]
    assert {name.split(" #")[0] for name in services} == set(cluster_stack.services)
    for name in services:
        env = cluster_stack.specs[name].env
        assert env["NATS_URL"] == every_node, name
        assert env[env_var_name("stream_replicas")] == "3", name


@pytest.mark.long  # a demo run, a node killed and waited for until current: make long
def test_a_node_killed_mid_flow_loses_no_order_and_rejoins_current(
    cluster_stack: LocalStack,
) -> None:
    said: list[str] = []
    stop = threading.Event()
    supervisor = threading.Thread(target=cluster_stack.supervise_until, args=(stop, said.append))
    supervisor.start()
    results: list[int] = []
    demo = threading.Thread(target=lambda: results.append(_demo(cluster_stack, 4)))
    try:
        events = SUBJECTS.events_stream.name
        before = _stored(cluster_stack, events)
        demo.start()
        # Mid-flow: once the first order's events are stored, the node leading them dies.
        deadline = time.monotonic() + 120  # a bound for a hung test
        while _stored(cluster_stack, events) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _stored(cluster_stack, events) > before, "no order started"
        leader = _stream_leader(cluster_stack, events)
        index = next(i for i, n in enumerate(cluster_stack.nats_nodes) if n.name == leader)
        killed = cluster_stack.kill_nats_node(index)
        demo.join()
        assert results == [0], f"the demo's orders did not all arrive: {said}"
        # Supervision started the node again; it is current in every stream and bucket.
        cluster_stack.wait_nats_healthy(timeout_s=120)
    finally:
        stop.set()
        supervisor.join()
        demo.join()
    node = cluster_stack.nats_nodes[index]
    assert node.running() and node.pid != killed
    assert any(f"nats-server {leader} stopped unexpectedly" in line for line in said), said
    assert any(f"nats-server {leader} started again" in line for line in said), said


def test_the_route_password_stays_in_the_nodes_private_config(
    cluster_stack: LocalStack,
) -> None:
    config = cluster_stack.nats_nodes[0].config_path
    text = config.read_text()
    password = text.split('password: "', 1)[1].split('"', 1)[0]
    assert len(password) >= 24
    assert config.stat().st_mode & 0o077 == 0
    state = cluster_stack.nats_options.state_dir
    holding = [
        path
        for path in Path(state).rglob("*")
        if path.is_file() and path.suffix != ".conf" and password.encode() in path.read_bytes()
    ]
    assert holding == []


def test_rotating_a_services_key_changes_it_on_every_node(cluster_stack: LocalStack) -> None:
    # `waybill nats rotate` while `waybill up --cluster 3` runs: every node must accept the
    # new key before the service moves to it, wherever it is connected.
    assert cluster_stack.security is not None
    service = sorted(cluster_stack.services)[0]
    old_key = public_key_of(cluster_stack.security.seed_file(service))
    said: list[str] = []
    new_key = rotate(Path(cluster_stack.nats_options.state_dir).resolve(), service, say=said.append)
    assert [line[:3] for line in said] == ["1/5", "2/5", "3/5", "4/5", "5/5"], said
    assert "no connection uses the old key" in said[3], said
    for node in cluster_stack.nats_nodes:
        config = node.config_path.read_text()
        assert has_key(config, new_key) and not has_key(config, old_key), node.name


@pytest.mark.chaos
def test_the_whole_cluster_restarted_keeps_its_state_and_orders_flow_again(
    cluster_stack: LocalStack,
) -> None:
    assert _demo(cluster_stack, 1) == 0
    events = SUBJECTS.events_stream.name
    before = _stored(cluster_stack, events)
    assert before > 0
    pids = [node.pid for node in cluster_stack.nats_nodes]
    # Supervision goes on meanwhile, as in `waybill up`: a restart on purpose is no crash.
    said: list[str] = []
    stop = threading.Event()
    supervisor = threading.Thread(target=cluster_stack.supervise_until, args=(stop, said.append))
    supervisor.start()
    try:
        cluster_stack.restart_nats_cluster()
    finally:
        stop.set()
        supervisor.join()
    assert not [line for line in said if "nats-server" in line], said
    assert all(node.running() for node in cluster_stack.nats_nodes)
    assert not {node.pid for node in cluster_stack.nats_nodes} & set(pids)
    # The same stores: nothing stored before is gone (late milestones may have come
    # meanwhile), and the services carry on.
    after_restart = _stored(cluster_stack, events)
    assert after_restart >= before
    assert _demo(cluster_stack, 2) == 0
    assert _stored(cluster_stack, events) > after_restart
