"""One order, one trace: facts observed from outside join the trace of the order's release."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from nats.aio.client import Client as NatsClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.services.orchestrator.journey import picked, released
from waybill_contracts import SubjectMap
from waybill_contracts.events import OrderReleased, WarehouseOrderPicked
from waybill_runtime.bus.provisioning import StreamPolicy, ensure_bucket, ensure_streams
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.order_traces import OrderTrace, OrderTraces
from waybill_runtime.testing.streams import stored_messages
from waybill_runtime.testing.tracing import recorded_spans


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """An SDK installed as the global tracer provider for this test only."""
    with recorded_spans() as exporter:
        yield exporter


async def traces_bucket(nc: NatsClient, subjects: SubjectMap) -> OrderTraces:
    js = nc.jetstream()
    await ensure_streams(js, subjects, StreamPolicy())
    return OrderTraces(await ensure_bucket(js, subjects.kv_bucket("traces")))


def trace_id_of(traceparent: str) -> str:
    return traceparent.split("-")[1]


async def test_a_webhook_fact_of_an_order_joins_the_trace_of_its_release(
    nc: NatsClient, nats_prefix: str, exporter: InMemorySpanExporter
) -> None:
    subjects = SubjectMap(nats_prefix)
    traces = await traces_bucket(nc, subjects)
    gateway = Publisher(nc, subjects, service="odoo-gateway", order_traces=traces)
    bridge = Publisher(nc, subjects, service="wms-bridge", order_traces=traces)
    await gateway.publish(released("WH/OUT/T1"))  # seen in Odoo: the order's first message
    await bridge.publish(picked("WH/OUT/T1"))  # a WMS webhook, hours later: no cause
    await bridge.publish(picked("WH/OUT/T2"))  # another order, never released here

    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    release, fact, other = spans
    assert release.context is not None and fact.context is not None and other.context is not None
    assert fact.context.trace_id == release.context.trace_id
    assert fact.parent is not None and fact.parent.span_id == release.context.span_id
    assert other.context.trace_id != release.context.trace_id
    # What travels on the wire says the same, for the consumers' process spans.
    [(_, release_ctx)] = await stored_messages(nc, subjects, OrderReleased)
    picks = {
        m.order_ref: ctx for m, ctx in await stored_messages(nc, subjects, WarehouseOrderPicked)
    }
    assert release_ctx.traceparent is not None
    assert trace_id_of(picks["WH/OUT/T1"].traceparent or "") == trace_id_of(release_ctx.traceparent)
    kept = await traces.trace_of("WH/OUT/T1")
    assert kept is not None and trace_id_of(kept.traceparent) == trace_id_of(
        release_ctx.traceparent
    )


async def test_the_first_recorded_trace_of_an_order_stays_its_trace(
    nc: NatsClient, nats_prefix: str
) -> None:
    traces = await traces_bucket(nc, SubjectMap(nats_prefix))
    first = OrderTrace("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    second = OrderTrace("00-11111111111111111111111111111111-2222222222222222-01")
    await traces.remember("WH/OUT/T3", first)
    await traces.remember("WH/OUT/T3", second)  # a concurrent first message lost the race
    assert await traces.trace_of("WH/OUT/T3") == first
    assert await traces.trace_of("WH/OUT/never") is None


async def test_without_an_sdk_nothing_is_kept_and_nothing_is_read(
    nc: NatsClient, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    traces = await traces_bucket(nc, subjects)
    publisher = Publisher(nc, subjects, service="odoo-gateway", order_traces=traces)
    await publisher.publish(released("WH/OUT/T4"))
    assert await traces.trace_of("WH/OUT/T4") is None
    [(_, context)] = await stored_messages(nc, subjects, OrderReleased)
    assert context.traceparent is None  # no SDK, no cause: no trace is invented


async def test_an_unreadable_bucket_costs_the_trace_not_the_message(
    nc: NatsClient,
    nats_prefix: str,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    subjects = SubjectMap(nats_prefix)
    traces = await traces_bucket(nc, subjects)
    await nc.jetstream().delete_key_value(subjects.kv_bucket("traces"))  # gone under the service
    publisher = Publisher(nc, subjects, service="odoo-gateway", order_traces=traces)
    with caplog.at_level(logging.WARNING, logger="waybill.telemetry"):
        await publisher.publish(released("WH/OUT/T5"))
    assert any("trace of WH/OUT/T5" in r.getMessage() for r in caplog.records)
    assert [m.order.ref for m, _ in await stored_messages(nc, subjects, OrderReleased)] == [
        "WH/OUT/T5"
    ]
    assert len(exporter.get_finished_spans()) == 1
