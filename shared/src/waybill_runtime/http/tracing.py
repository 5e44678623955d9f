"""SERVER spans for inbound HTTP: webhooks and APIs, each in the trace it belongs to.

A request that carries a ``traceparent`` is a child of it. A partner's
webhook carries none: its span waits (:mod:`waybill_runtime.server_spans`)
until the handler publishes a fact into its order's trace, and is a root,
started when the request came in, when it joins none (a query, a refusal).
Without an SDK no span is made: the app's middleware answers directly.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from waybill_contracts.envelope import HEADER_TRACEPARENT
from waybill_runtime.http.redaction import loggable_path
from waybill_runtime.server_spans import (
    PendingServerSpan,
    end_server_span,
    finish_pending,
    pending_server_span,
)
from waybill_runtime.telemetry import extract_trace, get_tracer

__all__ = ["UNTRACED_PATHS", "Answer", "answer_in_span"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Probes and scrapes are not worth a span each.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _route(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def _attributes(request: web.Request, route: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "http.request.method": request.method,
        "url.path": loggable_path(request),  # secrets in the path (a token) redacted
        "url.scheme": request.scheme,
    }
    if route is not None:
        attributes["http.route"] = route
    host = request.host.rsplit(":", 1)
    attributes["server.address"] = host[0]
    if len(host) == 2 and host[1].isdigit():
        attributes["server.port"] = int(host[1])
    return attributes


Answer = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
"""How the app answers a request with its handler (the problem answers, auth, body limit)."""


class _Outcome:
    """How a request was answered: its status (a refusal's too) or the error it raised."""

    status: int | None = None
    error: BaseException | None = None

    async def of(
        self, answer: Answer, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        try:
            response = await answer(request, handler)
        except web.HTTPException as refused:
            self.status = refused.status
            raise
        except BaseException as failed:
            self.error = failed
            raise
        self.status = response.status
        return response


async def answer_in_span(
    request: web.Request, answer: Answer, handler: Handler
) -> web.StreamResponse:
    """``answer(request, handler)`` in a SERVER span ``<method> <route>`` that sees the answer
    the caller gets (with tracing on, for a path not in :data:`UNTRACED_PATHS`)."""
    route = _route(request)
    name = f"{request.method} {route}" if route else request.method
    attributes = _attributes(request, route)
    if HEADER_TRACEPARENT in request.headers:
        # The caller is traced: continue its trace, as any instrumented server does.
        span = get_tracer().start_span(
            name,
            context=extract_trace(dict(request.headers)),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        outcome = _Outcome()
        with trace.use_span(span, end_on_exit=False, record_exception=False):
            try:
                return await outcome.of(answer, request, handler)
            finally:
                end_server_span(span, outcome.status, outcome.error)
    pending = PendingServerSpan(name, attributes, time.time_ns())
    reset = pending_server_span.set(pending)
    outcome = _Outcome()
    try:
        return await outcome.of(answer, request, handler)
    finally:
        pending_server_span.reset(reset)
        pending.status = outcome.status
        # A span the handler's task carries on (it may still join the order's trace)
        # is ended by that task. Otherwise it ends here, as a root if it joined no
        # trace: work handed to a task without saying so no longer adopts it.
        if not (pending.continued and outcome.error is None):
            finish_pending(pending, outcome.error)
