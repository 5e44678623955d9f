"""One order is one trace, across every service and every partner's webhook.

With an OpenTelemetry SDK installed, every span the services make for an
order (sending and processing each of its messages, in every service,
including the facts that partners' webhooks report hours later) belongs to
the trace that began when the order was released.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from opentelemetry.trace import SpanKind

from tests.e2e.mesh import ALL_SERVICES, running_mesh
from tests.e2e.test_order_to_ship import all_shipped, release_orders, settled_shipped_emails
from waybill_runtime.testing.tracing import recorded_spans

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


async def test_every_message_of_an_order_is_in_the_trace_of_its_release(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    with recorded_spans() as exporter:
        async with running_mesh(
            nc, nats_url, nats_prefix, services=ALL_SERVICES, tmp_state_dir=str(tmp_path)
        ) as mesh:
            refs = release_orders(mesh, 3, seed=21)
            await all_shipped(mesh, refs)
            await settled_shipped_emails(mesh, refs, timeout_s=120)
        spans = exporter.get_finished_spans()
    by_trace: dict[int, list[str]] = defaultdict(list)
    for span in spans:
        assert span.context is not None
        by_trace[span.context.trace_id].append(span.name)
    # A partner poll or a webhook that reported nothing new is a trace of its own
    # (a CLIENT or SERVER span alone): only traces with messages are orders'.
    messaging = {
        s.context.trace_id
        for s in spans
        if s.context is not None and s.kind in (SpanKind.PRODUCER, SpanKind.CONSUMER)
    }
    by_trace = defaultdict(list, {t: names for t, names in by_trace.items() if t in messaging})
    described = {hex(t): sorted(set(names)) for t, names in by_trace.items()}
    assert len(by_trace) == len(refs), described
    for names in by_trace.values():
        assert any(n.startswith("send") and n.endswith(".evt.order.released.v1") for n in names)
        # Facts that partners' webhooks reported, long after the release:
        assert any(n.endswith(".evt.warehouse_order.picked.v1") for n in names)  # the WMS
        assert any(n.endswith(".evt.shipment.milestone_reached.v1") for n in names)  # the carrier
        assert any(n.startswith("process") and ".cmd.odoo." in n for n in names)  # back in Odoo
