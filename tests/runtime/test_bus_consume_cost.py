"""What a delivered message costs the consumer, counted: calls, acks, gauge updates.

Every message a service handles goes through the same consume path (read,
header parse, decode, handler task, ack), so a call saved there is saved on
each of the ~20 messages a service handles per order (issue 18). The counts
are exact for a given path, so these tests hold a ceiling on them: a change
that makes every delivery dearer fails here, not in a benchmark weeks later.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from prometheus_client import Gauge

from tests.runtime.bus_helpers import release_command, send
from tests.runtime.test_bus_pulling import consuming, provision
from waybill_contracts import SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.client import connect_client
from waybill_runtime.bus.consumer import ConsumerOptions, HandlerContext
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.testing.counting import CallCount
from waybill_runtime.testing.waiting import eventually

MESSAGES = 500
OPTIONS = ConsumerOptions(concurrency=64, fetch_batch=64, fetch_timeout_s=1.0)


async def _consume_counted(
    nats_url: str, nc: NatsClient, subjects: SubjectMap, metrics: MetricsRegistry | None = None
) -> float:
    """Calls per delivered message, from the first handler call to the last, with metrics on."""
    await provision(nc, subjects)
    for n in range(MESSAGES):
        await send(nc, subjects, release_command(f"WH/OUT/C{n}"))
    counter = CallCount()
    handled: list[str] = []

    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        if not handled:
            counter.start()
        handled.append(command.order.ref)
        if len(handled) == MESSAGES:
            counter.stop()

    client = await connect_client(nats_url)
    try:
        metrics = metrics or MetricsRegistry("wms-bridge")
        async with consuming(client, subjects, release, OPTIONS, metrics):

            async def all_handled() -> int:
                return len(handled)

            await eventually(all_handled, until=lambda n: n == MESSAGES, what="every message")
    finally:
        sys.setprofile(None)
        await client.close()
    return counter.calls / (MESSAGES - 1)


async def test_a_delivered_message_costs_at_most_190_calls(
    nats_url: str, nc: NatsClient, nats_prefix: str
) -> None:
    # From the read loop's parse to the ack (coroutine resumes count too):
    # 217-227 before issue 18's round on the consume side (header lines read
    # byte by byte, the ack through publish, a done callback per task, the
    # lag gauge set per message, nats-py's header coroutine), about 166 after.
    calls = await _consume_counted(nats_url, nc, SubjectMap(nats_prefix))
    assert calls <= 190


async def test_waybills_client_acks_without_nats_pys_publish(
    nats_url: str, nc: NatsClient, nats_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Msg.ack goes through Client.publish (a subject regex, three state
    # properties, a command built in three steps); Waybill's client writes
    # the ack in one step. Every message is still acked: none left unacked.
    acks_through_nats_py: list[str] = []
    nats_py_ack = Msg.ack

    async def counted_ack(msg: Msg) -> None:
        acks_through_nats_py.append(msg.reply)
        await nats_py_ack(msg)

    monkeypatch.setattr(Msg, "ack", counted_ack)
    subjects = SubjectMap(nats_prefix)
    await _consume_counted(nats_url, nc, subjects)
    assert acks_through_nats_py == []
    info = await nc.jetstream().consumer_info(
        subjects.commands_stream.name, subjects.durable("wms-bridge", "commands")
    )
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_the_lag_gauge_is_read_when_scraped_not_set_per_message(
    nats_url: str, nc: NatsClient, nats_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sets: list[float] = []
    gauge_set = Gauge.set

    def counted_set(gauge: Gauge, value: float) -> None:
        sets.append(value)
        gauge_set(gauge, value)

    monkeypatch.setattr(Gauge, "set", counted_set)
    subjects = SubjectMap(nats_prefix)
    metrics = MetricsRegistry("wms-bridge")
    await _consume_counted(nats_url, nc, subjects, metrics)
    assert sets == []
    # What the gauge says is still what the server said last: nothing pending.
    labels = {"service": "wms-bridge", "consumer": subjects.durable("wms-bridge", "commands")}
    lag = metrics.collector_registry.get_sample_value("waybill_consumer_pending_messages", labels)
    assert lag == 0.0


async def test_a_delivery_is_read_without_nats_pys_header_coroutine(
    nats_url: str, nc: NatsClient, nats_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # nats-py reads every header block in a coroutine of its own; a delivery
    # (a block without a status) is read by the Waybill client at once. Only
    # the server's statuses (a pull request's end) still take nats-py's way.
    blocks: list[bytes | None] = []
    nats_py_headers = NatsClient._process_headers

    async def counted(client: NatsClient, block: bytes | None) -> dict[str, str] | None:
        blocks.append(block)
        return await nats_py_headers(client, block)

    monkeypatch.setattr(NatsClient, "_process_headers", counted)
    await _consume_counted(nats_url, nc, SubjectMap(nats_prefix))
    with_headers = [block for block in blocks if block]  # (publish acks have none)
    assert all(block.startswith(b"NATS/1.0 ") for block in with_headers)
    assert len(with_headers) < MESSAGES / 10
