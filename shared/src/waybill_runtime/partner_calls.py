"""Partner HTTP calls, observed: a CLIENT span and a duration sample for each request.

Every partner client (Odoo, the WMS, carriers, outbound webhooks) makes its
HTTP session with :func:`partner_session`. The session's middleware opens a
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
import functools
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from aiohttp.client_middlewares import ClientHandlerType
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
    return _operation_of(method, url.path)


# Most calls repeat a path (an ERP's /jsonrpc, a carrier API's /shipments): templated once.
@functools.lru_cache(maxsize=1024)
def _operation_of(method: str, path: str) -> str:
    segments = [s for s in path.split("/") if s][:_MAX_SEGMENTS]
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


class _PartnerObserver:
    """An aiohttp client middleware that observes each request of a session as a call to
    its partner: a duration sample always, a CLIENT span when tracing is on.

    One middleware instead of aiohttp trace hooks: a session with trace configs
    sends about eight trace signals per request (each building its parameters
    and the URL with its query again) whether anyone listens or not; this
    wraps the request once. aiohttp runs a session's middlewares once per
    attempt, so a request it resends on a dropped keep-alive connection, or a
    redirect it follows, is a call (a sample, a span) of its own, as the HTTP
    conventions want each attempt.
    """

    __slots__ = ("operation", "partner")

    def __init__(self, partner: str, operation: str | None) -> None:
        self.partner = partner
        self.operation = operation

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        started = time.perf_counter()
        url = request.url
        operation = self.operation or _operation_of(request.method, url.path)
        span = (
            _client_span(self.partner, operation, request.method, url) if tracing_active() else None
        )
        try:
            response = await handler(request)
        except BaseException as error:
            _finish(self.partner, operation, started, span, None, error)
            raise
        _finish(self.partner, operation, started, span, response.status, None)
        return response


def _client_span(partner: str, operation: str, method: str, url: URL) -> Span:
    attributes: dict[str, Any] = {
        "http.request.method": method.upper(),
        "server.address": url.host or "",
        "url.full": safe_url(url),
        "waybill.partner": partner,
        "waybill.partner.operation": operation,
    }
    if url.port is not None:
        attributes["server.port"] = url.port
    return get_tracer().start_span(operation, kind=SpanKind.CLIENT, attributes=attributes)


def _finish(
    partner: str,
    operation: str,
    started: float,
    span: Span | None,
    status: int | None,
    error: BaseException | None,
) -> None:
    duration_s = time.perf_counter() - started
    metrics = _metrics_var.get()
    if metrics is not None:
        metrics.partner_call(partner, operation, call_outcome(status, error)).observe(duration_s)
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
    code, ``webhook``), each observed by :class:`_PartnerObserver`.

    ``session_options`` are ``ClientSession``'s (timeout, headers...). The
    session may name all its calls alike (``operation``, for URLs that vary by
    customer); otherwise the method and the path with record ids templated name
    each. Partners' cookies are not kept (no partner API uses a cookie
    session, and a jar parses every answer's cookies): pass ``cookie_jar`` for
    one that does.
    """
    middlewares = (
        *session_options.pop("middlewares", ()),
        _PartnerObserver(partner, operation),
    )
    session_options.setdefault("cookie_jar", aiohttp.DummyCookieJar())
    return aiohttp.ClientSession(middlewares=middlewares, **session_options)
