"""Logging: JSON lines that carry the service, the trace and the business correlation id.

Every line names the service and, while a message is being processed, the
trace id and the correlation id (the order the message is about), so one
order can be followed across services in the log store as in the traces. The
trace id is the current OpenTelemetry span's or, when no SDK records spans,
the one the message being handled carries (its ``traceparent``, set by the
bus in :data:`handled_message_var`): a line has it either way.

Field names follow the OpenTelemetry log data model where a collector looks
for them: ``severity_text`` and ``severity_number``, ``trace_id``, ``span_id``
and ``trace_flags``, ``service.name``, ``exception.type``,
``exception.message`` and ``exception.stacktrace``.

Personal data is treated by the policy of :mod:`waybill_runtime.personal_data`
before a line is written (emails hashed, phones and names masked, addresses
dropped), and the service's secrets are cut out of every line.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec
from opentelemetry import trace

from waybill_contracts import MessageContext
from waybill_runtime.personal_data import (
    DROP,
    MASK,
    log_field,
    mask_email,
    mask_field,
    mask_name,
    mask_phone,
    mask_text,
)

__all__ = [
    "SEVERITY_NUMBERS",
    "JsonFormatter",
    "PiiMaskingFilter",
    "SecretRedactingFilter",
    "TextFormatter",
    "configure_logging",
    "correlation_id_var",
    "correlation_scope",
    "handled_message_var",
    "mask_email",
    "mask_field",
    "mask_name",
    "mask_phone",
    "mask_text",
]

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "waybill_correlation_id", default=None
)
"""The business transaction (normally the order ref) of a block (:func:`correlation_scope`)."""

handled_message_var: contextvars.ContextVar[MessageContext | None] = contextvars.ContextVar(
    "waybill_handled_message", default=None
)
"""The message being handled (set by the bus): its correlation id and trace context.

One variable for both, set once per message, so a line while handling it has
its ids with no work per message beyond what the bus did before; they are
read only when a line is written.
"""

# The OpenTelemetry log data model's SeverityNumber of each logging level.
SEVERITY_NUMBERS = {"DEBUG": 5, "INFO": 9, "WARNING": 13, "ERROR": 17, "CRITICAL": 21}

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "_redacted_error",
}

_SECRET_MIN_LENGTH = 6  # shorter values would mask ordinary words


def _log_value(key: str, value: Any, depth: int = 0) -> Any:
    """An extra field's value as the personal-data policy lets it into a line."""
    judged = log_field(key, value)
    if judged is not value or depth > 8:
        return judged
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        kept = {k: _log_value(str(k), v, depth + 1) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not DROP}
    if isinstance(value, list | tuple):
        return [_log_value(key, item, depth + 1) for item in value]
    return value


class PiiMaskingFilter(logging.Filter):
    """Applies the personal-data policy to a record: its message and its extra fields.

    Emails and phone numbers in the message are hashed and masked; extra
    fields are judged by name (see :mod:`waybill_runtime.personal_data`):
    addresses are dropped, the rest masked.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRIBUTES:
                judged = _log_value(key, value)
                if judged is DROP:
                    del record.__dict__[key]
                else:
                    record.__dict__[key] = judged
        return True


class SecretRedactingFilter(logging.Filter):
    """Replaces every occurrence of the given secret values in a record by ``***``.

    The service's own credentials (the settings marked secret) are known at
    start; whatever path they take into a line (an exception quoting a URL, a
    partner echoing a key), they are cut out of the message, the extra fields
    and the traceback before it is written.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted(
            {s for s in secrets if len(s) >= _SECRET_MIN_LENGTH}, key=len, reverse=True
        )

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        record.msg = self.redact(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRIBUTES and isinstance(value, str):
                record.__dict__[key] = self.redact(value)
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, redacted; the formatter then uses the text.
            record.exc_text = self.redact(
                "".join(traceback.format_exception(*record.exc_info)).rstrip()
            )
            error = record.exc_info[1]
            record.__dict__["_redacted_error"] = self.redact(str(error))
        return True


@contextmanager
def correlation_scope(correlation_id: str | None) -> Iterator[None]:
    """Tag every log line inside the block with ``correlation_id``."""
    token = correlation_id_var.set(correlation_id)
    try:
        yield
    finally:
        correlation_id_var.reset(token)


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _trace_ids() -> tuple[str, str, str] | None:
    """(trace id, span id, trace flags) of the current span, or of the message being handled."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        return (
            trace.format_trace_id(context.trace_id),
            trace.format_span_id(context.span_id),
            f"{context.trace_flags:02x}",
        )
    message = handled_message_var.get()
    if message is None or not message.traceparent:
        return None
    # version-traceid-parentid-flags (W3C); the parent is the span that sent the message.
    parts = message.traceparent.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    return parts[1].lower(), parts[2].lower(), parts[3][:2].lower()


def _correlation_id() -> str | None:
    correlation_id = correlation_id_var.get()
    if correlation_id is None:
        message = handled_message_var.get()
        if message is not None:
            correlation_id = message.correlation_id
    return correlation_id


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRIBUTES}


def _encode_fallback(value: Any) -> Any:
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, logger, message, ids, extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._encoder = msgspec.json.Encoder(enc_hook=_encode_fallback)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "severity_text": record.levelname,
            "severity_number": SEVERITY_NUMBERS.get(record.levelname, 0),
            "service.name": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = _trace_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"], entry["trace_flags"] = ids
        correlation_id = _correlation_id()
        if correlation_id is not None:
            entry["correlation_id"] = correlation_id
        for key, value in _extras(record).items():
            entry[f"extra_{key}" if key in entry else key] = value
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["exception.type"] = type(error).__name__
            entry["exception.message"] = mask_text(
                record.__dict__.get("_redacted_error", str(error))
            )
            entry["exception.stacktrace"] = mask_text(
                record.exc_text or self.formatException(record.exc_info)
            )
        if record.stack_info:
            entry["stack"] = record.stack_info
        try:
            return self._encoder.encode(entry).decode()
        except (TypeError, ValueError, OverflowError):
            # An extra field msgspec cannot encode even as text: keep the line.
            entry = {
                k: (v if isinstance(v, str | int | float | bool | None) else repr(v))
                for k, v in entry.items()
            }
            return self._encoder.encode(entry).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, with the same ids as the JSON form."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def formatException(self, ei: Any) -> str:
        return mask_text("".join(traceback.format_exception(*ei)).rstrip())

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _timestamp(record),
            record.levelname,
            self.service,
            f"{record.name}:",
            record.getMessage(),
        ]
        ids = _trace_ids()
        if ids is not None:
            parts.append(f"trace_id={ids[0]}")
        correlation_id = _correlation_id()
        if correlation_id is not None:
            parts.append(f"correlation_id={correlation_id}")
        parts.extend(f"{key}={value}" for key, value in _extras(record).items())
        line = " ".join(parts)
        if record.exc_info:
            shown = mask_text(record.exc_text) if record.exc_text else None
            line += "\n" + (shown or self.formatException(record.exc_info))
        return line


class _WaybillHandler(logging.StreamHandler[TextIO]):
    """Marks the handler configure_logging installed, so reconfiguring replaces it."""


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    name = level.strip().upper()
    if name not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(_LEVELS)}")
    return logging.getLevelNamesMapping()[name]


def configure_logging(
    service: str,
    level: str | int,
    *,
    stream: TextIO | None = None,
    json: bool = True,
    secrets: Iterable[str] = (),
) -> logging.Handler:
    """Send all logging to ``stream`` (default stderr) as JSON lines (or text), masked.

    ``secrets`` (the service's credentials) are cut out of every line.
    Calling it again replaces the handler it installed before. Returns the
    handler, for callers that want to remove it again.
    """
    number = _level_number(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _WaybillHandler)]:
        root.removeHandler(old)
    handler = _WaybillHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(service) if json else TextFormatter(service))
    handler.addFilter(SecretRedactingFilter(secrets))
    handler.addFilter(PiiMaskingFilter())
    root.addHandler(handler)
    root.setLevel(number)
    return handler
