"""Tracing: spans for publishing and processing messages, context carried in headers.

Code here uses the OpenTelemetry API only. Without an SDK the API hands out
non-recording spans that still pass an incoming ``traceparent`` on, so a trace
stays whole across a service that records nothing. :func:`configure_telemetry`
switches the SDK on from the standard ``OTEL_*`` variables when it is installed.

Span names and attributes follow the messaging conventions: ``send <subject
template>`` (PRODUCER) and ``process <subject template>`` (CONSUMER) with
``messaging.system = nats``. Templates keep span names low-cardinality.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
)

from waybill_contracts import MessageContext
from waybill_contracts.envelope import HEADER_TRACEPARENT, HEADER_TRACESTATE
from waybill_runtime.logs import mask_text
from waybill_runtime.outcomes import error_type_name

__all__ = [
    "configure_telemetry",
    "dead_letter_span",
    "extract_trace",
    "get_tracer",
    "inject_trace",
    "process_span",
    "query_span",
    "send_span",
    "trace_headers",
]

logger = logging.getLogger(__name__)

_INSTRUMENTATION = "waybill"
_SYSTEM = "nats"

# OTLP protocol → (module with an ``OTLPSpanExporter``, package to install).
# The SDK has no JSON exporter: Waybill's own speaks http/json (waybill_runtime.otlp_json).
_OTLP_EXPORTERS = {
    "grpc": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry-exporter-otlp-proto-grpc",
    ),
    "http/protobuf": (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry-exporter-otlp-proto-http",
    ),
    "http/json": (
        "waybill_runtime.otlp_json",
        "opentelemetry-exporter-otlp-proto-common",
    ),
}
_INSTALL_HINT = "pip install 'waybill-runtime[otel]'"


def get_tracer(provider: TracerProvider | None = None) -> Tracer:
    """Waybill's tracer, from ``provider`` or the global provider.

    Without a provider the API returns a proxy that follows the global provider
    even when it is set later, so the result may be kept.
    """
    if provider is None:
        return _global_tracer()
    return trace.get_tracer(_INSTRUMENTATION, tracer_provider=provider)


@functools.cache
def _global_tracer() -> Tracer:
    # A proxy: it follows the global provider even when that is set later.
    return trace.get_tracer(_INSTRUMENTATION)


def tracing_active() -> bool:
    """Whether a tracer provider (the SDK) is installed; without one spans record nothing.

    Per message this decides between real spans and the cheap path that only
    passes the incoming trace context on (the publisher copies ``traceparent``
    from the message being handled), which is what a no-op tracer would do
    at a fraction of the cost. The API's own lookup reads the environment on
    every call, so the installed provider is read directly when the API
    exposes it.
    """
    provider = getattr(trace, "_TRACER_PROVIDER", _NOT_EXPOSED)
    if provider is _NOT_EXPOSED:
        return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
    return provider is not None


_NOT_EXPOSED = object()


def inject_trace(headers: dict[str, str], context: Context | None = None) -> None:
    """Write the current (or ``context``'s) trace context into message headers."""
    propagate.inject(headers, context=context)


def extract_trace(headers: Mapping[str, str] | None) -> Context:
    """The trace context carried by message headers (empty if there is none)."""
    return propagate.extract(headers or {})


def trace_headers(context: MessageContext) -> dict[str, str]:
    """The W3C trace headers of a decoded message, in the spelling the propagator reads.

    ``decode`` finds them in any case; the propagator looks for lower-case
    names only, so a span's parent is taken from here, not from raw headers.
    """
    headers: dict[str, str] = {}
    if context.traceparent:
        headers[HEADER_TRACEPARENT] = context.traceparent
        if context.tracestate:
            headers[HEADER_TRACESTATE] = context.tracestate
    return headers


def _record_failure(span: Span, error: Exception) -> None:
    if not span.is_recording():
        return
    error_type = error_type_name(error)
    span.set_attribute("error.type", error_type)
    # Exception messages can quote customer data: mask before it leaves the process.
    message = mask_text(str(error))
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {message}"[:300]))
    span.record_exception(
        error,
        attributes={
            "exception.message": message,
            "exception.stacktrace": mask_text("".join(traceback.format_exception(error))),
        },
    )


@contextmanager
def _messaging_span(
    tracer: Tracer, name: str, kind: SpanKind, context: Context | None
) -> Iterator[Span]:
    # Exceptions are recorded by hand (masked) rather than by the API's defaults.
    with tracer.start_as_current_span(
        name, context=context, kind=kind, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield span
        except Exception as error:
            _record_failure(span, error)
            raise


@contextmanager
def send_span(
    destination_template: str,
    *,
    message_id: str,
    headers: dict[str, str],
    conversation_id: str | None = None,
    destination: str | None = None,
    tracer: Tracer | None = None,
) -> Iterator[Span]:
    """A PRODUCER span ``send <template>`` around a publish; injects its context into ``headers``.

    ``destination`` is the concrete subject when it differs from the template.
    The span is a child of the active span (the message being processed) or,
    when none is active (a sweep, a webhook), of the trace context ``headers``
    already carry (the cause's, or the order's), so the message stays in its
    order's trace. Without a tracer provider no span is made and ``headers``
    keep the trace context they already carry.
    """
    if tracer is None and not tracing_active():
        yield INVALID_SPAN
        return
    parent = None
    if HEADER_TRACEPARENT in headers and not trace.get_current_span().get_span_context().is_valid:
        parent = extract_trace(headers)
    with _messaging_span(
        tracer or get_tracer(), f"send {destination_template}", SpanKind.PRODUCER, parent
    ) as span:
        if span.is_recording():
            attributes: dict[str, Any] = {
                "messaging.system": _SYSTEM,
                "messaging.operation.name": "send",
                "messaging.operation.type": "send",
                "messaging.destination.name": destination or destination_template,
                "messaging.destination.template": destination_template,
                "messaging.message.id": message_id,
            }
            if conversation_id is not None:
                attributes["messaging.message.conversation_id"] = conversation_id
            span.set_attributes(attributes)
        inject_trace(headers)
        yield span


@contextmanager
def process_span(
    destination_template: str,
    *,
    message_id: str,
    consumer_group: str,
    parent_headers: Mapping[str, str] | None,
    conversation_id: str | None = None,
    destination: str | None = None,
    tracer: Tracer | None = None,
) -> Iterator[Span]:
    """A CONSUMER span ``process <template>``, a child of the trace in ``parent_headers``.

    An exception leaving the block sets ``error.type`` and an error status (with
    personal data masked), then propagates. Without a tracer provider no span
    is made (the publisher passes the incoming trace context on by itself).
    """
    if tracer is None and not tracing_active():
        yield INVALID_SPAN
        return
    parent = extract_trace(parent_headers)
    with _messaging_span(
        tracer or get_tracer(), f"process {destination_template}", SpanKind.CONSUMER, parent
    ) as span:
        if span.is_recording():
            attributes: dict[str, Any] = {
                "messaging.system": _SYSTEM,
                "messaging.operation.name": "process",
                "messaging.operation.type": "process",
                "messaging.destination.name": destination or destination_template,
                "messaging.destination.template": destination_template,
                "messaging.message.id": message_id,
                "messaging.consumer.group.name": consumer_group,
            }
            if conversation_id is not None:
                attributes["messaging.message.conversation_id"] = conversation_id
            span.set_attributes(attributes)
        yield span


@contextmanager
def query_span(
    subject: str, *, kind: SpanKind, headers: dict[str, str] | None = None
) -> Iterator[Span]:
    """A span ``query <subject>`` around a NATS query: CLIENT for the asker (its context
    injected into ``headers``), SERVER for the service answering (a child of ``headers``).

    Without a tracer provider no span is made and ``headers`` are left alone.
    """
    if not tracing_active():
        yield INVALID_SPAN
        return
    parent = extract_trace(headers) if kind is SpanKind.SERVER else None
    with _messaging_span(get_tracer(), f"query {subject}", kind, parent) as span:
        if span.is_recording():
            span.set_attributes(
                {
                    "rpc.system": "nats",
                    "messaging.system": _SYSTEM,
                    "messaging.destination.name": subject,
                }
            )
        if kind is SpanKind.CLIENT and headers is not None:
            inject_trace(headers)
        yield span


def dead_letter_span(
    destination_template: str,
    *,
    headers: Mapping[str, str] | None,
    consumer_group: str,
    reason: str,
    error_type: str,
    error_message: str,
    attempts: int,
    dead_letter_stream: str,
) -> None:
    """A finished span ``dead_letter <template>`` in the message's trace: error status, the
    reason. Also for a message that could not be decoded, which no ``process`` span covers.

    Only on the failure path, and only with a tracer provider.
    """
    if not tracing_active():
        return
    # Raw headers may spell traceparent in any case; the propagator reads lower case.
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    parent = extract_trace(lowered)
    span = get_tracer().start_span(
        f"dead_letter {destination_template}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": _SYSTEM,
            "messaging.operation.name": "dead_letter",
            "messaging.operation.type": "send",
            "messaging.destination.name": dead_letter_stream,
            "messaging.destination.template": destination_template,
            "messaging.consumer.group.name": consumer_group,
            "waybill.dead_letter.reason": reason,
            "waybill.delivery.attempts": attempts,
            "error.type": error_type,
        },
    )
    # Error messages can quote customer data: masked, as everywhere else.
    span.set_status(Status(StatusCode.ERROR, f"{reason}: {mask_text(error_message)}"[:300]))
    span.end()


def _wanted_exporters(environ: Mapping[str, str]) -> list[str]:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if named:
        return [
            n.strip().lower() for n in named.split(",") if n.strip().lower() not in ("", "none")
        ]
    if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        return ["otlp"]  # an endpoint alone means "send traces there"
    return []


def _otlp_exporter(environ: Mapping[str, str]) -> Any | None:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in _OTLP_EXPORTERS:
        logger.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported: use grpc, http/protobuf or "
            "http/json; traces are not exported",
            protocol,
        )
        return None
    module_name, package = _OTLP_EXPORTERS[protocol]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        logger.warning(
            "OTLP trace export is configured but %s is not installed: %s (or pip install %s); "
            "traces are not exported until then",
            package,
            _INSTALL_HINT,
            package,
        )
        return None
    if protocol == "http/json":
        return module.OtlpJsonSpanExporter(environ)
    # The SDK's exporters read their OTEL_EXPORTER_OTLP_* variables (endpoint per
    # signal, headers, timeout, compression, certificates) themselves.
    return module.OTLPSpanExporter()


def service_resource(
    service: str, version: str | None, environ: Mapping[str, str] = os.environ
) -> Any:
    """The SDK resource: ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` as the SDK reads
    them, with Waybill's service name and version where the platform sets none."""
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    with _environment(environ):
        from_environment = OTELResourceDetector().detect().attributes
        ours: dict[str, str] = {}
        if "service.name" not in from_environment:
            ours["service.name"] = service
        if version and "service.version" not in from_environment:
            ours["service.version"] = version
        return Resource.create(ours)


@contextmanager
def _environment(environ: Mapping[str, str]) -> Iterator[None]:
    """``environ`` as os.environ for the SDK's readers (a no-op for os.environ itself)."""
    if environ is os.environ:
        yield
        return
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def configure_telemetry(
    service: str,
    environ: Mapping[str, str] = os.environ,
    *,
    version: str | None = None,
    set_global: bool = True,
) -> TracerProvider | None:
    """Switch on the OpenTelemetry SDK if the ``OTEL_*`` variables ask for it.

    Tracing is on when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``,
    ``console``) or an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set, and
    ``OTEL_SDK_DISABLED`` is not ``true``. Everything else is the SDK's own
    reading of the standard variables: the resource (``OTEL_RESOURCE_ATTRIBUTES``,
    ``OTEL_SERVICE_NAME``; ``service`` and ``version`` fill ``service.name`` and
    ``service.version`` when they name none), the sampler (``OTEL_TRACES_SAMPLER``),
    the exporter's endpoint, headers and timeout. ``OTEL_EXPORTER_OTLP_PROTOCOL``
    may be ``http/protobuf`` (the default), ``grpc`` or ``http/json``.
    Returns the SDK tracer provider (call its ``shutdown()`` on exit to flush),
    or None when tracing stays off; a missing package is reported in one log
    line naming what to install.
    """
    wanted = _wanted_exporters(environ)
    if not wanted:
        return None
    try:
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError:
        logger.warning(
            "tracing is configured (OTEL_TRACES_EXPORTER=%s) but opentelemetry-sdk is not "
            "installed: %s",
            ",".join(wanted),
            _INSTALL_HINT,
        )
        return None

    with _environment(environ):
        # The sampler and the span limits come from the environment too.
        provider = SdkTracerProvider(resource=service_resource(service, version, environ))
        exporting = False
        for name in wanted:
            if name == "console":
                provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
                exporting = True
            elif name == "otlp":
                exporter = _otlp_exporter(environ)
                if exporter is not None:
                    provider.add_span_processor(BatchSpanProcessor(exporter))
                    exporting = True
            else:
                logger.warning(
                    "OTEL_TRACES_EXPORTER names %r, which Waybill does not know: "
                    "use otlp or console",
                    name,
                )
    if not exporting:
        provider.shutdown()
        return None
    if set_global:
        trace.set_tracer_provider(provider)
    return provider
