"""An OTLP/HTTP span exporter that speaks JSON (``OTEL_EXPORTER_OTLP_PROTOCOL=http/json``).

The Python SDK ships OTLP exporters for ``grpc`` and ``http/protobuf`` only;
a collector or vendor that takes ``http/json`` would otherwise get protobuf
(and reject it). The messages are the same: the SDK's own encoder builds the
protobuf request, ``google.protobuf.json_format`` writes its JSON mapping, and
the ids are turned into hex strings as the OTLP specification asks (the
protobuf JSON mapping would write them in base64).

Configuration follows the exporter variables the SDK's exporters read:
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is) or
``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces`` appended), the headers and
the timeout, per signal or for all. Needs the ``otel`` extra.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.util.re import parse_env_headers

__all__ = ["OtlpJsonSpanExporter", "spans_as_otlp_json"]

logger = logging.getLogger(__name__)

_DEFAULT_ENDPOINT = "http://localhost:4318"
_TRACES_PATH = "/v1/traces"
_DEFAULT_TIMEOUT_S = 10.0
# Fields holding ids: bytes in protobuf, hex strings in OTLP/JSON.
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


def _hex_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: (base64.b64decode(item).hex() if key in _ID_FIELDS else _hex_ids(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_hex_ids(item) for item in value]
    return value


def spans_as_otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """An ``ExportTraceServiceRequest`` in the OTLP/JSON encoding (enums as numbers, hex ids)."""
    request = json_format.MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    result: dict[str, Any] = _hex_ids(request)
    return result


def _setting(environ: Mapping[str, str], name: str) -> str | None:
    signal = environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}", "").strip()
    return signal or environ.get(f"OTEL_EXPORTER_OTLP_{name}", "").strip() or None


def traces_endpoint(environ: Mapping[str, str]) -> str:
    """Where traces go, by the OTLP exporter rules (a per-signal endpoint is taken as is)."""
    signal = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if signal:
        return signal
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or _DEFAULT_ENDPOINT
    return base.rstrip("/") + _TRACES_PATH


class OtlpJsonSpanExporter(SpanExporter):
    """Posts batches of spans as OTLP/JSON; runs in the batch processor's thread."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.endpoint = traces_endpoint(environ)
        self.headers = {
            **parse_env_headers(_setting(environ, "HEADERS") or "", liberal=True),
            "Content-Type": "application/json",
        }
        timeout = _setting(environ, "TIMEOUT")
        # The variable is in milliseconds, as the SDK reads it.
        self.timeout_s = float(timeout) / 1000 if timeout else _DEFAULT_TIMEOUT_S
        self._shut_down = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut_down:
            return SpanExportResult.FAILURE
        body = json.dumps(spans_as_otlp_json(spans)).encode()
        request = urllib.request.Request(
            self.endpoint, data=body, headers=self.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except (urllib.error.URLError, OSError) as error:
            logger.warning(
                "could not export %d span(s) to %s: %s", len(spans), self.endpoint, error
            )
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._shut_down = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
