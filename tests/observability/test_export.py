"""Trace export as the OTel conventions define it: the standard OTEL_* variables, every protocol.

A real SDK provider (configured by :func:`configure_telemetry` from an
environment) exports to an in-process OTLP receiver; what arrives is decoded
as a collector would decode it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from tests.observability.receiver import OtlpReceiver, otlp_receiver
from waybill_runtime.telemetry import configure_telemetry, get_tracer, send_span


def _export_one(environ: dict[str, str], service: str = "carrier-router") -> None:
    provider = configure_telemetry(service, environ, version="1.2.3", set_global=False)
    assert isinstance(provider, TracerProvider), "tracing stayed off"
    headers: dict[str, str] = {}
    with send_span(
        "waybill.evt.shipment.booked.v1",
        message_id="m-1",
        headers=headers,
        tracer=get_tracer(provider),
    ):
        pass
    provider.shutdown()  # flushes the batch


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


def test_an_endpoint_alone_exports_protobuf_with_service_name_and_version(
    receiver: OtlpReceiver,
) -> None:
    _export_one({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    [span] = receiver.wait_for(1)
    assert span.encoding == "protobuf"
    assert span.name == "send waybill.evt.shipment.booked.v1" and span.kind == "PRODUCER"
    assert span.service == "carrier-router"
    assert span.resource["service.version"] == "1.2.3"
    assert receiver.requests[0][0] == "/v1/traces"


def test_http_json_is_honoured(receiver: OtlpReceiver) -> None:
    _export_one(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    )
    [span] = receiver.wait_for(1)
    assert span.encoding == "json"
    assert span.name == "send waybill.evt.shipment.booked.v1" and span.kind == "PRODUCER"
    assert len(span.trace_id) == 32 and int(span.trace_id, 16) != 0
    assert span.attributes["messaging.message.id"] == "m-1"


def test_per_signal_endpoint_and_headers_are_read_as_the_sdk_defines_them(
    receiver: OtlpReceiver,
) -> None:
    _export_one(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9/unused",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url + "/custom/traces",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme",
        }
    )
    receiver.wait_for(1)
    path, headers = receiver.requests[0]
    assert path == "/custom/traces"
    assert {k.lower(): v for k, v in headers.items()}["x-tenant"] == "acme"


def test_json_exporter_reads_per_signal_endpoint_and_headers(receiver: OtlpReceiver) -> None:
    _export_one(
        {
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url + "/json/traces",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=Bearer%20abc",
        }
    )
    [span] = receiver.wait_for(1)
    path, headers = receiver.requests[0]
    assert path == "/json/traces" and span.encoding == "json"
    assert {k.lower(): v for k, v in headers.items()}["authorization"] == "Bearer abc"


def test_the_platforms_service_name_and_resource_attributes_are_kept(
    receiver: OtlpReceiver,
) -> None:
    _export_one(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=router-eu,deployment.environment.name=prod",
        }
    )
    [span] = receiver.wait_for(1)
    assert span.service == "router-eu"
    assert span.resource["deployment.environment.name"] == "prod"
    assert span.resource["service.version"] == "1.2.3"


def test_the_sampler_is_read_from_the_environment(receiver: OtlpReceiver) -> None:
    _export_one({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_TRACES_SAMPLER": "always_off"})
    _export_one({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    receiver.wait_for(1)
    assert len(receiver.spans) == 1, "the always_off sampler's span was exported"
