"""Messaging spans, trace context in headers, and the OTEL_* switch for the SDK."""

from __future__ import annotations

import logging
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from waybill_runtime.outcomes import PermanentError
from waybill_runtime.personal_data import hash_email
from waybill_runtime.telemetry import (
    configure_telemetry,
    extract_trace,
    get_tracer,
    inject_trace,
    process_span,
    send_span,
)

BOOK = "waybill.cmd.carrier.book_shipment.v1"
BOOKED = "waybill.evt.shipment.booked.v1"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return get_tracer(provider)


def finished(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_send_span_is_a_producer_span_with_messaging_attributes(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    headers: dict[str, str] = {}
    with send_span(BOOK, message_id="m-1", conversation_id="SO042", headers=headers, tracer=tracer):
        pass
    span = finished(exporter)[f"send {BOOK}"]
    assert span.kind is SpanKind.PRODUCER
    assert dict(span.attributes or {}) == {
        "messaging.system": "nats",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": BOOK,
        "messaging.destination.template": BOOK,
        "messaging.message.id": "m-1",
        "messaging.message.conversation_id": "SO042",
    }


def test_send_span_writes_its_context_into_the_headers(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    headers: dict[str, str] = {}
    with send_span(BOOK, message_id="m-1", headers=headers, tracer=tracer) as span:
        context = span.get_span_context()
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert version == "00"
    assert int(flags, 16) & 1  # sampled
    assert trace_id == f"{context.trace_id:032x}"
    assert span_id == f"{context.span_id:016x}"


def test_process_span_continues_the_trace_of_the_sent_message(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    headers: dict[str, str] = {}
    with send_span(BOOK, message_id="m-1", headers=headers, tracer=tracer):
        pass
    with process_span(
        BOOK,
        message_id="m-1",
        consumer_group="carrier-router",
        parent_headers=headers,
        destination="waybill.cmd.carrier.book_shipment.v1",
        tracer=tracer,
    ):
        pass
    spans = finished(exporter)
    sent, processed = spans[f"send {BOOK}"], spans[f"process {BOOK}"]
    assert processed.kind is SpanKind.CONSUMER
    assert processed.context is not None and sent.context is not None
    assert processed.context.trace_id == sent.context.trace_id
    assert processed.parent is not None
    assert processed.parent.span_id == sent.context.span_id
    attributes = dict(processed.attributes or {})
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.operation.name"] == "process"
    assert attributes["messaging.consumer.group.name"] == "carrier-router"
    assert attributes["messaging.system"] == "nats"
    assert attributes["messaging.message.id"] == "m-1"


def test_a_message_published_while_processing_joins_the_same_trace(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    incoming: dict[str, str] = {}
    with send_span(BOOK, message_id="m-1", headers=incoming, tracer=tracer):
        pass
    outgoing: dict[str, str] = {}
    with (
        process_span(
            BOOK,
            message_id="m-1",
            consumer_group="carrier-router",
            parent_headers=incoming,
            tracer=tracer,
        ),
        send_span(BOOKED, message_id="m-2", headers=outgoing, tracer=tracer),
    ):
        pass
    assert outgoing["traceparent"].split("-")[1] == incoming["traceparent"].split("-")[1]
    assert len({s.context.trace_id for s in exporter.get_finished_spans() if s.context}) == 1


def test_a_message_sent_outside_processing_continues_the_trace_its_headers_carry(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    # A sweep re-sending an outbox entry, a webhook fact of a known order: no
    # span is active, but the headers carry the cause's (or order's) trace.
    cause: dict[str, str] = {}
    with send_span(BOOK, message_id="m-1", headers=cause, tracer=tracer):
        pass
    outgoing = {"traceparent": cause["traceparent"]}
    with send_span(BOOKED, message_id="m-2", headers=outgoing, tracer=tracer):
        pass
    spans = finished(exporter)
    first, second = spans[f"send {BOOK}"], spans[f"send {BOOKED}"]
    assert first.context is not None and second.context is not None
    assert second.context.trace_id == first.context.trace_id
    assert second.parent is not None and second.parent.span_id == first.context.span_id
    assert outgoing["traceparent"] != cause["traceparent"]  # now names the new span


def test_a_message_sent_with_no_trace_at_all_starts_one(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    headers: dict[str, str] = {}
    with send_span(BOOKED, message_id="m-3", headers=headers, tracer=tracer):
        pass
    span = finished(exporter)[f"send {BOOKED}"]
    assert span.parent is None and headers["traceparent"]


def test_a_failing_handler_marks_the_span_with_error_type_and_masked_status(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with (
        pytest.raises(PermanentError),
        process_span(
            BOOK,
            message_id="m-1",
            consumer_group="carrier-router",
            parent_headers={},
            tracer=tracer,
        ),
    ):
        raise PermanentError("carrier refused address of jane.doe@example.com")
    span = finished(exporter)[f"process {BOOK}"]
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "waybill_runtime.outcomes.PermanentError"
    assert hash_email("jane.doe@example.com") in (span.status.description or "")
    [event] = span.events
    assert event.name == "exception"
    recorded = " ".join(str(value) for value in (event.attributes or {}).values())
    assert "jane.doe" not in recorded and "example.com" not in recorded
    assert hash_email("jane.doe@example.com") in recorded


def test_process_span_without_trace_headers_starts_a_new_trace(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with process_span(
        BOOK, message_id="m-1", consumer_group="c", parent_headers=None, tracer=tracer
    ):
        pass
    assert finished(exporter)[f"process {BOOK}"].parent is None


def test_without_an_sdk_spans_record_nothing_but_pass_the_trace_on() -> None:
    recording = TracerProvider()
    incoming: dict[str, str] = {}
    with send_span(BOOK, message_id="m-1", headers=incoming, tracer=get_tracer(recording)):
        pass
    no_sdk = trace.NoOpTracer()
    outgoing: dict[str, str] = {}
    with process_span(
        BOOK, message_id="m-1", consumer_group="c", parent_headers=incoming, tracer=no_sdk
    ) as span:
        assert not span.is_recording()
        with send_span(BOOKED, message_id="m-2", headers=outgoing, tracer=no_sdk):
            pass
    assert outgoing["traceparent"].split("-")[1] == incoming["traceparent"].split("-")[1]


def test_without_any_trace_no_traceparent_is_invented() -> None:
    headers: dict[str, str] = {}
    with send_span(BOOK, message_id="m-1", headers=headers, tracer=trace.NoOpTracer()):
        pass
    assert "traceparent" not in headers


def test_inject_and_extract_round_trip_the_trace_context(tracer: Tracer) -> None:
    with tracer.start_as_current_span("outer") as span:
        headers: dict[str, str] = {}
        inject_trace(headers)
    extracted = trace.get_current_span(extract_trace(headers)).get_span_context()
    assert extracted.trace_id == span.get_span_context().trace_id
    assert extracted.span_id == span.get_span_context().span_id
    assert extracted.is_remote


def test_extract_of_garbage_headers_gives_no_parent() -> None:
    context = extract_trace({"traceparent": "not-a-trace"})
    assert not trace.get_current_span(context).get_span_context().is_valid


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"},
    ],
    ids=["nothing-set", "exporter-none", "sdk-disabled"],
)
def test_telemetry_stays_off_unless_otel_variables_ask_for_it(environ: dict[str, str]) -> None:
    assert configure_telemetry("carrier-router", environ, set_global=False) is None


def test_console_exporter_switches_the_sdk_on_with_the_service_name() -> None:
    provider = configure_telemetry(
        "carrier-router", {"OTEL_TRACES_EXPORTER": "console"}, set_global=False
    )
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "carrier-router"
    provider.shutdown()


def test_otel_service_name_wins_over_the_service_name() -> None:
    provider = configure_telemetry(
        "carrier-router",
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "router-eu"},
        set_global=False,
    )
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "router-eu"
    provider.shutdown()


def test_missing_otlp_exporter_package_is_reported_in_one_line(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The otel extra installs the exporter: hide it as an image without it would.
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with caplog.at_level(logging.WARNING, logger="waybill_runtime.telemetry"):
        provider = configure_telemetry(
            "carrier-router",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
            set_global=False,
        )
    assert provider is None
    [record] = caplog.records
    assert "pip install opentelemetry-exporter-otlp-proto-http" in record.getMessage()
    assert "\n" not in record.getMessage()


def test_grpc_protocol_names_the_grpc_exporter_package(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    with caplog.at_level(logging.WARNING, logger="waybill_runtime.telemetry"):
        configure_telemetry(
            "carrier-router",
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            set_global=False,
        )
    assert "opentelemetry-exporter-otlp-proto-grpc" in caplog.text


def test_an_unknown_exporter_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="waybill_runtime.telemetry"):
        provider = configure_telemetry(
            "carrier-router", {"OTEL_TRACES_EXPORTER": "zipkin"}, set_global=False
        )
    assert provider is None
    assert "'zipkin'" in caplog.text and "use otlp or console" in caplog.text
