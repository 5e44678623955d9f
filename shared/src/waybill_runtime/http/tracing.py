"""SERVER spans for inbound HTTP: webhooks and APIs, each in the trace it belongs to.

A request that carries a ``traceparent`` is a child of it. A partner's
webhook carries none: its span waits (:mod:`waybill_runtime.server_spans`)
until the handler publishes a fact into its order's trace, and is a root,
started when the request came in, when it joins none (a query, a refusal).
Without an SDK the middleware passes requests through.
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
from waybill_runtime.telemetry import extract_trace, get_tracer, tracing_active

__all__ = ["server_span_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Probes and scrapes are not worth a span each.
_UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


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


@web.middleware
async def server_span_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A SERVER span ``<method> <route>`` per request (the outermost middleware)."""
    if not tracing_active() or request.path in _UNTRACED_PATHS:
        return await handler(request)
    route = _route(request)
    name = f"{request.method} {route}" if route else request.method
    attributes = _attributes(request, route)
    status: int | None = None
    error: BaseException | None = None
    if HEADER_TRACEPARENT in request.headers:
        # The caller is traced: continue its trace, as any instrumented server does.
        span = get_tracer().start_span(
            name,
            context=extract_trace(dict(request.headers)),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        with trace.use_span(span, end_on_exit=False, record_exception=False):
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as refused:
                status = refused.status
                raise
            except BaseException as failed:
                error = failed
                raise
            finally:
                end_server_span(span, status, error)
    pending = PendingServerSpan(name, attributes, time.time_ns())
    reset = pending_server_span.set(pending)
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as refused:
        status = refused.status
        raise
    except BaseException as failed:
        error = failed
        raise
    finally:
        pending_server_span.reset(reset)
        pending.status = status
        # A span the handler's task carries on (it may still join the order's trace)
        # is ended by that task. Otherwise it ends here, as a root if it joined no
        # trace: work handed to a task without saying so no longer adopts it.
        if not (pending.continued and error is None):
            finish_pending(pending, error)
