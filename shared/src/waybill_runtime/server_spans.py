"""The SERVER span of a request, waiting to learn the trace it belongs to.

A request that carries a ``traceparent`` is a child of it. A partner's
webhook carries none: what it reports belongs to an order whose trace began
long before (its release), and which order only the handler finds out. So
its SERVER span waits: it is started, back-dated to the request's arrival,
at the moment the handler publishes a fact into the order's trace
(:func:`adopt_order_trace`, called by the publisher), as a child there, and
the fact's PRODUCER span becomes its child. A request that joins no order
(a query, a refused webhook) gets its span as a root at the end.

A handler that answers at once and does its work in a task of its own (Odoo's
webhook: answered 202, the record re-read afterwards) says so with
:func:`continue_server_span`: the span then stays pending past the answer, is
adopted by the fact the task publishes, and ends when the task does.

The middleware is :mod:`waybill_runtime.http.tracing`; this module is the
part the publisher needs. Without an SDK nothing here runs.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from waybill_contracts.envelope import HEADER_TRACEPARENT
from waybill_runtime.telemetry import extract_trace, get_tracer

__all__ = [
    "Continuation",
    "PendingServerSpan",
    "adopt_order_trace",
    "continue_server_span",
    "end_server_span",
    "finish_pending",
    "pending_server_span",
]

T = TypeVar("T")


@dataclass
class PendingServerSpan:
    """A request's SERVER span before it knows its trace."""

    name: str
    attributes: dict[str, Any]
    started_ns: int
    span: Span | None = None
    token: contextvars.Token[Any] | None = field(default=None, repr=False)
    continued: bool = False
    """A task of the handler's finishes it, not the middleware (see :class:`Continuation`)."""
    status: int | None = None
    """The answer's HTTP status, kept for whoever finishes the span."""


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


def end_server_span(span: Span, status: int | None, error: BaseException | None) -> None:
    """Set a SERVER span's HTTP outcome (a 5xx or an exception is an error) and end it."""
    if status is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:  # a 4xx is the client's error, not the server's (conventions)
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))
    if error is not None and status is None:
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


def finish_pending(pending: PendingServerSpan, error: BaseException | None) -> None:
    """End a request's SERVER span: in the trace it joined, or as a root if it joined none."""
    if pending.token is not None:
        # Attached in another task (work handed off) raises: nothing to undo here then.
        with contextlib.suppress(ValueError):
            pending.token.var.reset(pending.token)
        pending.token = None
    if pending.span is None:
        pending.span = get_tracer().start_span(
            pending.name,
            kind=SpanKind.SERVER,
            attributes=pending.attributes,
            start_time=pending.started_ns,
        )
    end_server_span(pending.span, pending.status, error)


class Continuation:
    """The request's SERVER span carried into work done after the answer.

    Made by :func:`continue_server_span` while the request is handled; the work
    goes through :meth:`around` into a task created in the request's context
    (which it inherits). If the work is never started (a full backlog),
    :meth:`abandon` hands the span back to the middleware.
    """

    def __init__(self, pending: PendingServerSpan | None) -> None:
        self._pending = pending
        if pending is not None:
            pending.continued = True

    def around(self, work: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
        """``work``, ending the span when it ends (its error, if any, on the span)."""
        pending = self._pending
        if pending is None:
            return work

        async def continued() -> T:
            error: BaseException | None = None
            try:
                return await work
            except BaseException as failed:
                error = failed
                raise
            finally:
                finish_pending(pending, error)

        return continued()

    def abandon(self) -> None:
        """The work will not run: the middleware ends the span with the answer."""
        if self._pending is not None:
            self._pending.continued = False


def continue_server_span() -> Continuation:
    """Keep the SERVER span of the request being handled open into work after the answer.

    A no-op outside a traced request (or in one whose caller was traced: its span is
    already in a trace and ends with the answer).
    """
    pending = pending_server_span.get()
    if pending is None or pending.span is not None:
        return Continuation(None)
    return Continuation(pending)
