"""What a collector must get from a demo run of the multi-process local stack.

The in-process trace test (test_order_trace_tree.py) judges one order's span
tree in detail; these checks judge a real `waybill up --demo` run, where every
service is its own process configured from nothing but the OTLP endpoint.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from tests.observability.receiver import ReceivedSpan

RELEASED = ".evt.order.released.v1"


def _traces(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    by_trace: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    return by_trace


def assert_booked_orders_traced_whole(spans: list[ReceivedSpan]) -> None:
    """Each order that got a label has, in its one trace, CLIENT spans for its
    Odoo, WMS and carrier calls and SERVER spans for the WMS's and the
    carrier's webhooks; at least half of the demo's orders got a label."""
    assert spans, "the collector received no span: the endpoint alone did not switch export on"
    assert {s.encoding for s in spans} == {"protobuf"}, "the SDK's default protocol is protobuf"
    orders = [
        trace
        for trace in _traces(spans).values()
        if any(s.kind == "PRODUCER" and s.name.endswith(RELEASED) for s in trace)
    ]
    assert orders, "no order's release was exported"
    booked = [
        trace
        for trace in orders
        if any(
            s.kind == "CLIENT" and str(s.attributes.get("waybill.partner")).startswith("carrier")
            for s in trace
        )
    ]
    assert len(booked) * 2 >= len(orders), (
        f"{len(booked)} of {len(orders)} orders reached a carrier"
    )
    for trace in booked:
        described = sorted(f"{s.service}: {s.kind} {s.name}" for s in trace)
        partners = {str(s.attributes.get("waybill.partner")) for s in trace if s.kind == "CLIENT"}
        assert {"odoo", "wms"} <= partners, f"partner calls missing from the trace: {described}"
        routes = {str(s.attributes.get("http.route")) for s in trace if s.kind == "SERVER"}
        assert any("wms" in route for route in routes), f"no WMS webhook span: {described}"
        assert any("carrier" in route for route in routes), f"no carrier webhook span: {described}"


def assert_handling_log_lines_carry_trace_ids(logs: Path, spans: list[ReceivedSpan]) -> None:
    """Every service log line written while handling an order's message (it
    names the order's correlation id) carries that order's one trace id, a
    trace the collector received."""
    exported = {span.trace_id for span in spans}
    traces_by_order: dict[str, set[str | None]] = defaultdict(set)
    lines = 0
    for path in sorted(logs.glob("*.log")):
        for text in path.read_text(errors="replace").splitlines():
            if not text.startswith("{") or '"correlation_id"' not in text:
                continue
            line = json.loads(text)
            lines += 1
            trace_id = line.get("trace_id")
            assert trace_id in exported, (
                f"{path.name}: {line.get('message')!r} has trace {trace_id}"
            )
            traces_by_order[line["correlation_id"]].add(trace_id)
    assert lines, f"no service under {logs} logged while handling an order"
    split = {order: ids for order, ids in traces_by_order.items() if len(ids) > 1}
    assert not split, f"an order's log lines name more than one trace: {split}"
