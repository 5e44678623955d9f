"""Partner HTTP calls, observed: a CLIENT span and a duration sample for each request.

Every partner client (Odoo, the WMS, carriers, outbound webhooks) makes its
HTTP session with :func:`partner_session`. The session's trace hooks open a
CLIENT span per request, named and attributed by the HTTP semantic conventions
(``http.request.method``, ``server.address``, ``server.port``, ``url.full``
without credentials or query values, ``http.response.status_code``,
``error.type``), as a child of whatever span is current, which is the
handler's CONSUMER span when a message caused the call. Each request is also
counted in ``waybill_partner_call_duration_seconds`` by partner, operation and
outcome, in the registry of the service that made it (:func:`bind_partner_metrics`).

Without an SDK no span is made; the histogram is kept either way.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import aiohttp
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from yarl import URL

from waybill_runtime.circuit_news import bound_circuit_news
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.resilience.circuit import CircuitState, StateListener
from waybill_runtime.telemetry import get_tracer, tracing_active

__all__ = [
    "bind_partner_metrics",
    "call_outcome",
    "operation_of",
    "partner_call",
    "partner_session",
    "partner_trace_config",
    "safe_url",
    "watch_circuits",
]

_metrics_var: contextvars.ContextVar[MetricsRegistry | None] = contextvars.ContextVar(
    "waybill_partner_metrics", default=None
)

# A path segment that names one record (with digits: 17042, shp_8f2a, a uuid;
# or a long token) is not part of the operation: it would make one time series
# per record. Short numbers and versions (/json/2/, /v2/) are the API's own.
_RECORD_SEGMENT = re.compile(r"^(?!v?\d{1,2}$)(?=.*\d)[A-Za-z0-9_.:-]+$|^[A-Za-z0-9_-]{24,}$")
_MAX_SEGMENTS = 4
_REDACTED = "REDACTED"


def bind_partner_metrics(metrics: MetricsRegistry) -> None:
    """Count this service's partner calls in ``metrics`` (from here on, in this task's context).

    The service runner calls it before it builds its resources, so every
    session and every task started after it (handlers, sweeps) reports to the
    service's own registry, also when several services share one process.
    """
    _metrics_var.set(metrics)


def operation_of(method: str, url: URL) -> str:
    """``POST /v2/shipments/{id}``: the method and the path with record ids templated."""
    segments = [s for s in url.path.split("/") if s][:_MAX_SEGMENTS]
    template = "/".join("{id}" if _RECORD_SEGMENT.match(s) else s for s in segments)
    return f"{method.upper()} /{template}"


def safe_url(url: URL) -> str:
    """``url.full`` as the conventions want it: no user info, query values redacted."""
    shown = url.with_user(None).with_password(None).with_fragment(None)
    if url.query:
        shown = shown.with_query({key: _REDACTED for key in url.query})
    return str(shown)


def call_outcome(status: int | None, error: BaseException | None = None) -> str:
    """The outcome label: ok, client_error (4xx), server_error (5xx), timeout, network_error."""
    if error is not None:
        return "timeout" if isinstance(error, TimeoutError) else "network_error"
    assert status is not None
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "ok"


class _Call(SimpleNamespace):
    """One request's state between aiohttp's hooks."""

    session_operation: str | None = None
    requested: dict[str, Any]
    started: float
    operation: str
    span: Span | None

    def __init__(self, trace_request_ctx: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.requested = {"operation": self.session_operation} if self.session_operation else {}
        self.requested.update(trace_request_ctx or {})


def partner_trace_config(partner: str, operation: str | None = None) -> aiohttp.TraceConfig:
    """aiohttp trace hooks that observe every request of a session as a call to ``partner``
    (as ``operation`` when given: one name for URLs that are not the partner's API paths)."""
    # aiohttp makes one of these per request, from the request's trace_request_ctx.
    call_type = type("_SessionCall", (_Call,), {"session_operation": operation})
    config = aiohttp.TraceConfig(trace_config_ctx_factory=call_type)

    async def on_start(
        _session: aiohttp.ClientSession, call: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        call.started = time.perf_counter()
        call.operation = _operation(call, params.method, params.url)
        call.span = None
        if tracing_active():
            url = params.url
            attributes: dict[str, Any] = {
                "http.request.method": params.method.upper(),
                "server.address": url.host or "",
                "url.full": safe_url(url),
                "waybill.partner": partner,
                "waybill.partner.operation": call.operation,
            }
            if url.port is not None:
                attributes["server.port"] = url.port
            call.span = get_tracer().start_span(
                call.operation, kind=SpanKind.CLIENT, attributes=attributes
            )

    async def on_end(
        _session: aiohttp.ClientSession, call: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        status = params.response.status
        _finish(partner, call, status, None)

    async def on_error(
        _session: aiohttp.ClientSession, call: Any, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        _finish(partner, call, None, params.exception)

    config.on_request_start.append(on_start)
    config.on_request_end.append(on_end)
    config.on_request_exception.append(on_error)
    return config


def _operation(call: Any, method: str, url: URL) -> str:
    named = call.requested.get("operation")
    return str(named) if named else operation_of(method, url)


def _finish(partner: str, call: Any, status: int | None, error: BaseException | None) -> None:
    if not hasattr(call, "started"):
        return  # the request failed before it started
    duration_s = time.perf_counter() - call.started
    outcome = call_outcome(status, error)
    metrics = _metrics_var.get()
    if metrics is not None:
        metrics.partner_call(partner, call.operation, outcome).observe(duration_s)
    span: Span | None = call.span
    if span is None:
        return
    if status is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))
    if error is not None:
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


def watch_circuits(*breakers: str) -> StateListener:
    """A circuit breaker listener: the state in ``waybill_circuit_breaker_state``, a span
    event on the current span (the call that moved it) and, in a running service, a
    ``PartnerCircuitChanged`` event on the bus (:mod:`waybill_runtime.circuit_news`) at each
    change.

    ``breakers`` (the names the breakers will have) are shown closed from now
    on, so a breaker has its series before its first change.
    """
    news = bound_circuit_news()
    metrics = _metrics_var.get()
    if metrics is not None:
        for name in breakers:
            metrics.circuit_state(name, str(CircuitState.CLOSED))

    def changed(name: str, old: CircuitState, new: CircuitState, reason: str) -> None:
        if news is not None:
            news.announce(name, old, new, reason)
        registry = metrics or _metrics_var.get()
        if registry is not None:
            registry.circuit_state(name, str(new))
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "circuit_breaker.state_change",
                {
                    "waybill.circuit.name": name,
                    "waybill.circuit.from": str(old),
                    "waybill.circuit.to": str(new),
                },
            )

    return changed


@contextmanager
def partner_call(
    partner: str, operation: str, *, server_address: str, server_port: int | None = None
) -> Iterator[Span]:
    """A call to a partner that is not HTTP (the SMTP relay): a CLIENT span named
    ``operation`` and a duration sample; an exception leaving the block is its outcome."""
    started = time.perf_counter()
    span: Span = INVALID_SPAN
    if tracing_active():
        attributes: dict[str, Any] = {
            "server.address": server_address,
            "waybill.partner": partner,
            "waybill.partner.operation": operation,
        }
        if server_port is not None:
            attributes["server.port"] = server_port
        span = get_tracer().start_span(operation, kind=SpanKind.CLIENT, attributes=attributes)
    outcome = "ok"
    try:
        with trace.use_span(span, end_on_exit=False, record_exception=False):
            yield span
    except BaseException as error:
        outcome = "timeout" if isinstance(error, TimeoutError) else "error"
        if span.is_recording():
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        raise
    finally:
        metrics = _metrics_var.get()
        if metrics is not None:
            metrics.partner_call(partner, operation, outcome).observe(time.perf_counter() - started)
        span.end()


def partner_session(
    partner: str, *, operation: str | None = None, **session_options: Any
) -> aiohttp.ClientSession:
    """An ``aiohttp.ClientSession`` for calls to ``partner`` (``odoo``, ``wms``, a carrier's
    code, ``webhook``), observed by :func:`partner_trace_config`.

    ``session_options`` are ``ClientSession``'s (timeout, headers...). A
    request may name its operation (``trace_request_ctx={"operation": "book"}``),
    or the session all of them (``operation``, for URLs that vary by customer);
    otherwise the method and the path with record ids templated name it.
    """
    trace_configs = [
        *session_options.pop("trace_configs", []),
        partner_trace_config(partner, operation),
    ]
    return aiohttp.ClientSession(trace_configs=trace_configs, **session_options)
