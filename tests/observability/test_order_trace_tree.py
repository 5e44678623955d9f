"""One order's trace as a collector gets it: every hop, partner calls and webhooks included.

The mesh (every flow service and the partner sandboxes, in-process) runs with
the SDK configured from nothing but ``OTEL_EXPORTER_OTLP_ENDPOINT``, exporting
to an in-process OTLP receiver. The order's trace must hold a CLIENT span
for each partner call its handlers made (Odoo, the WMS, the carrier), each
a child of the CONSUMER span of the handler that made it, and a SERVER span
for each partner webhook that reported on it, with the fact it published as
that span's child. Every log line written while handling the order's
messages carries the order's trace id.
"""

from __future__ import annotations

import io
import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from opentelemetry.sdk.trace import TracerProvider

from tests.e2e.mesh import FLOW_SERVICES, running_mesh
from tests.e2e.test_order_to_ship import all_shipped, release_orders
from tests.observability.receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from waybill_runtime.logs import JsonFormatter
from waybill_runtime.telemetry import configure_telemetry
from waybill_runtime.testing.tracing import global_tracer_provider
from waybill_runtime.testing.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("mesh"))
    root = logging.getLogger()
    level = root.level
    # Waybill's own lines down to DEBUG: the orchestrator logs an order's decisions there
    # (its timeline and the audit trail have them), and they are lines written while handling.
    waybill = logging.getLogger("waybill")
    waybill_level = waybill.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    waybill.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        waybill.setLevel(waybill_level)


def _order_trace(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    released = [
        s for s in spans if s.name.endswith(".evt.order.released.v1") and s.kind == "PRODUCER"
    ]
    assert len(released) == 1, [s.name for s in spans]
    return [s for s in spans if s.trace_id == released[0].trace_id]


async def test_an_orders_trace_holds_its_partner_calls_and_webhooks(
    nc: NatsClient,
    nats_url: str,
    nats_prefix: str,
    tmp_path: Path,
    receiver: OtlpReceiver,
    log_lines: io.StringIO,
) -> None:
    provider = configure_telemetry(
        "mesh", {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}, set_global=False
    )
    assert isinstance(provider, TracerProvider), "tracing stayed off"
    with global_tracer_provider(provider):
        async with running_mesh(
            nc, nats_url, nats_prefix, services=FLOW_SERVICES, tmp_state_dir=str(tmp_path)
        ) as mesh:
            refs = release_orders(mesh, 1, seed=5)
            await all_shipped(mesh, refs)

            async def carrier_webhooks() -> list[ReceivedSpan]:
                # The carrier reports tracking after the picking is done: wait for it.
                provider.force_flush()
                return [
                    s
                    for s in receiver.spans
                    if s.kind == "SERVER"
                    and "carrier" in str(s.attributes.get("http.route"))
                    and 200 <= int(s.attributes.get("http.response.status_code") or 0) < 300
                ]

            await eventually(carrier_webhooks, timeout_s=60, what="a carrier's tracking webhook")
    # Shutting the provider down (above) flushed every batch to the receiver.
    assert all(encoding == "protobuf" for encoding in {s.encoding for s in receiver.spans})
    trace = _order_trace(receiver.spans)
    by_id = {s.span_id: s for s in trace}
    described = sorted(f"{s.kind} {s.name}" for s in trace)

    def parent(span: ReceivedSpan) -> ReceivedSpan:
        assert span.parent_id in by_id, f"{span.name}'s parent is not in the trace: {described}"
        return by_id[span.parent_id]

    client_calls: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in trace:
        if span.kind == "CLIENT":
            client_calls[str(span.attributes["waybill.partner"])].append(span)
    for partner in ("odoo", "wms"):
        assert client_calls[partner], f"no {partner} CLIENT span in the order's trace: {described}"
    carriers = [p for p in client_calls if p.startswith("carrier")]
    assert carriers, f"no carrier CLIENT span in the order's trace: {described}"
    for partner, calls in client_calls.items():
        for call in calls:
            handler = parent(call)
            assert handler.kind == "CONSUMER" and handler.name.startswith("process "), (
                f"{partner} call {call.name} is not under a handler but under {handler.name}"
            )
            assert call.attributes["server.address"] == "127.0.0.1"
            assert isinstance(call.attributes["http.response.status_code"], int)
            assert call.attributes["http.request.method"] in ("GET", "POST", "PUT", "DELETE")

    webhooks = [s for s in trace if s.kind == "SERVER"]
    routes = {str(s.attributes.get("http.route")) for s in webhooks}
    assert any("wms" in route for route in routes), f"no WMS webhook span: {described}"
    assert any("carrier" in route for route in routes), f"no carrier webhook span: {described}"
    for webhook in webhooks:
        # In the order's trace because it reported a fact on it (a refusal joins no trace).
        assert 200 <= int(webhook.attributes["http.response.status_code"]) < 300
        children = [s for s in trace if s.parent_id == webhook.span_id]
        assert any(c.kind == "PRODUCER" for c in children), (
            f"{webhook.name} published no fact under it: {described}"
        )

    # Log lines written while handling the order's messages carry its trace id.
    handling = [
        json.loads(line) for line in log_lines.getvalue().splitlines() if '"correlation_id"' in line
    ]
    assert handling, "no log line was written while handling the order"
    assert all(line.get("trace_id") == trace[0].trace_id for line in handling), [
        (line["message"], line.get("trace_id")) for line in handling
    ]
