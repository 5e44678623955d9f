"""An in-process OTLP/HTTP trace receiver: what a collector would get, both encodings.

It answers ``POST /v1/traces`` in ``application/x-protobuf`` and
``application/json`` as the OTLP specification defines them, and keeps each
span with its resource's ``service.name`` and the encoding it came in.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

SPAN_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    attributes: dict[str, Any]
    status_code: int
    events: tuple[str, ...]
    encoding: str
    resource: dict[str, Any] = field(default_factory=dict)


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _from_json(body: bytes) -> ExportTraceServiceRequest:
    """OTLP/JSON: hex ids (which the protobuf JSON mapping would read as base64)."""
    document = json.loads(body)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in _ID_FIELDS:
                    if span.get(key):
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    request = ExportTraceServiceRequest()
    json_format.ParseDict(document, request)
    return request


class OtlpReceiver:
    """Collects the spans posted to it; ``url`` is the value for OTEL_EXPORTER_OTLP_ENDPOINT."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, headers)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                content_type = self.headers.get("Content-Type", "")
                receiver._record(self.path, dict(self.headers.items()), content_type, body)
                if content_type.startswith("application/json"):
                    answer, answer_type = b"{}", "application/json"
                else:
                    answer = ExportTraceServiceResponse().SerializeToString()
                    answer_type = "application/x-protobuf"
                self.send_response(200)
                self.send_header("Content-Type", answer_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _record(self, path: str, headers: dict[str, str], content_type: str, body: bytes) -> None:
        if content_type.startswith("application/json"):
            request, encoding = _from_json(body), "json"
        else:
            request, encoding = ExportTraceServiceRequest.FromString(body), "protobuf"
        received = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            service=str(resource.get("service.name")),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=SPAN_KINDS.get(span.kind, str(span.kind)),
                            attributes=_attributes(span.attributes),
                            status_code=span.status.code,
                            events=tuple(event.name for event in span.events),
                            encoding=encoding,
                            resource=resource,
                        )
                    )
        with self._lock:
            self.requests.append((path, headers))
            self.spans.extend(received)

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[ReceivedSpan]:
        """The spans received once there are at least ``count`` (fails after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.spans) >= count:
                    return list(self.spans)
            time.sleep(0.05)
        raise AssertionError(f"{count} span(s) expected, {len(self.spans)} received")


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    thread = threading.Thread(target=receiver._server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver._server.shutdown()
        receiver._server.server_close()
