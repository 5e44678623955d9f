"""A three-node NATS cluster made from deploy/nats's values keeps what it acknowledged:
streams provisioned at R3 by `waybill provision` (as the admin), a message published by the
service that owns it, one server stopped, and the message is still there and new ones are
still acknowledged."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import StreamInfo

from tests.deploy.conftest import CLUSTER_PREFIX
from tests.services.auditor.journey import for_order
from waybill_contracts import SubjectMap, encode, new_context
from waybill_contracts.events import OrderReleased
from waybill_runtime.bus.client import connect_client
from waybill_runtime.security.nkeys_store import NkeyUser
from waybill_runtime.security.permissions import ADMIN, inbox_prefix
from waybill_runtime.security.tls import TlsFiles, client_context
from waybill_runtime.testing.nats_cluster import LocalNatsCluster
from waybill_runtime.testing.waiting import eventually

PREFIX = CLUSTER_PREFIX


async def _connect(cluster: LocalNatsCluster, user: NkeyUser) -> NatsClient:
    ca = cluster.ca_file
    assert ca is not None, "deploy/nats asks for TLS"
    return await connect_client(
        cluster.client_urls,
        nkeys_seed=str(user.seed_file),
        inbox_prefix=inbox_prefix(user.name),
        tls=client_context(TlsFiles(ca_file=str(ca))),
        connect_timeout=5,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
    )


def _provision(cluster: LocalNatsCluster, admin: NkeyUser, replicas: int) -> str:
    # The provisioning Job's command, against one server (a Kubernetes Service picks one).
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_")},
        "WAYBILL_STREAM_REPLICAS": str(replicas),
        "WAYBILL_SUBJECT_PREFIX": PREFIX,
        "WAYBILL_NATS_NKEY_SEED_FILE": str(admin.seed_file),
        "WAYBILL_NATS_TLS_CA_FILE": str(cluster.ca_file),
        "NATS_URL": cluster.client_urls[0],
    }
    result = subprocess.run(
        [sys.executable, "-m", "waybill_runtime", "provision"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
async def test_an_acknowledged_message_survives_losing_a_server(
    cluster: LocalNatsCluster, identities: dict[str, NkeyUser]
) -> None:
    assert cluster.running() == ["nats-0", "nats-1", "nats-2"]
    await asyncio.to_thread(_provision, cluster, identities[ADMIN], 3)

    subjects = SubjectMap(PREFIX)
    stream = subjects.events_stream.name
    admin = await _connect(cluster, identities[ADMIN])
    # The service that releases orders publishes one, with its own identity.
    gateway = await _connect(cluster, identities["odoo-gateway"])
    try:
        info: StreamInfo = await admin.jetstream().stream_info(stream)
        assert info.config.num_replicas == 3

        def released(ref: str) -> tuple[str, bytes, dict[str, str]]:
            message = for_order(OrderReleased, ref)
            encoded = encode(message, new_context(message, source="odoo-gateway"), subjects)
            return encoded.subject, encoded.body, dict(encoded.headers)

        subject, body, headers = released("SO-CLUSTER-1")
        ack = await gateway.jetstream().publish(subject, body, headers=headers, timeout=10)
        assert ack.stream == stream

        # Stop the server that leads the stream: the hardest one to lose.
        async def current_leader() -> str | None:
            try:
                found = await admin.jetstream().stream_info(stream)
            except (TimeoutError, nats.errors.Error):
                return None
            return found.cluster.leader if found.cluster is not None else None

        leader = await eventually(current_leader, timeout_s=60, what="the stream's leader")
        assert leader is not None
        await asyncio.to_thread(cluster.stop_server, leader)
        assert leader not in cluster.running() and len(cluster.running()) == 2

        async def stored() -> bytes | None:
            try:
                data: bytes | None = (await admin.jetstream().get_msg(stream, ack.seq)).data
            except (TimeoutError, nats.errors.Error):
                return None  # a new leader is being elected
            return data

        assert await eventually(stored, timeout_s=60, what="the message after the loss") == body

        subject, body, headers = released("SO-CLUSTER-2")

        async def acknowledged() -> int | None:
            try:
                second = await gateway.jetstream().publish(subject, body, headers=headers)
            except (TimeoutError, nats.errors.Error):
                return None
            seq: int = second.seq
            return seq

        second_seq = await eventually(acknowledged, timeout_s=60, what="an ack from two servers")
        assert second_seq is not None and second_seq > ack.seq
        after = await admin.jetstream().stream_info(stream)
        assert after.cluster is not None and after.cluster.leader != leader
        assert after.state.messages == 2
    finally:
        await gateway.close()
        await admin.close()
