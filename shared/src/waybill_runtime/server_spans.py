"""The SERVER span of a request, waiting to learn the trace it belongs to.

A request that carries a ``traceparent`` is a child of it. A partner's
webhook carries none: what it reports belongs to an order whose trace began
long before (its release), and which order only the handler finds out. So
its SERVER span waits: it is started, back-dated to the request's arrival,
at the moment the handler publishes a fact into the order's trace
(:func:`adopt_order_trace`, called by the publisher), as a child there, and
the fact's PRODUCER span becomes its child. A request that joins no order
(a query, a refused webhook) gets its span as a root at the end.

The middleware is :mod:`waybill_runtime.http.tracing`; this module is the
part the publisher needs. Without an SDK nothing here runs.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from waybill_contracts.envelope import HEADER_TRACEPARENT
from waybill_runtime.telemetry import extract_trace, get_tracer

__all__ = ["PendingServerSpan", "adopt_order_trace", "pending_server_span"]


@dataclass
class PendingServerSpan:
    """A request's SERVER span before it knows its trace."""

    name: str
    attributes: dict[str, Any]
    started_ns: int
    span: Span | None = None
    token: contextvars.Token[Any] | None = field(default=None, repr=False)


pending_server_span: contextvars.ContextVar[PendingServerSpan | None] = contextvars.ContextVar(
    "waybill_pending_server_span", default=None
)


def adopt_order_trace(headers: Mapping[str, str]) -> None:
    """Start the waiting SERVER span of the request being handled, in the trace of ``headers``
    (the order's), or as the root of a new trace when they carry none (the order's first
    fact: its trace begins with this request).

    Called by the publisher for a fact without a cause; a no-op outside a
    request or once the span is started.
    """
    pending = pending_server_span.get()
    if pending is None or pending.span is not None:
        return
    parent = extract_trace(headers) if HEADER_TRACEPARENT in headers else None
    pending.span = get_tracer().start_span(
        pending.name,
        context=parent,
        kind=SpanKind.SERVER,
        attributes=pending.attributes,
        start_time=pending.started_ns,
    )
    # Current from here on in this request, so the fact's span is its child.
    pending.token = otel_context.attach(trace.set_span_in_context(pending.span))
