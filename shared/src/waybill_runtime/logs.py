"""Logging: JSON lines that carry the service, the trace and the business correlation id.

Every line names the service and, while a message is being processed, the
trace id (from the current OpenTelemetry span) and the correlation id (the
order the message is about, set by the bus in :data:`correlation_id_var`), so
one order can be followed across services in the log store as in the traces.

Personal data (emails, phone numbers, names, addresses) is masked before a line
is written: obvious emails and phone numbers anywhere in the text, and extra
fields whose names say they hold personal data.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec
from opentelemetry import trace

__all__ = [
    "JsonFormatter",
    "PiiMaskingFilter",
    "TextFormatter",
    "configure_logging",
    "correlation_id_var",
    "correlation_scope",
    "mask_email",
    "mask_field",
    "mask_name",
    "mask_phone",
    "mask_text",
]

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "waybill_correlation_id", default=None
)
"""The business transaction (normally the order ref) of the message being processed."""

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MASK = "***"

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# International numbers ("+44 20 7946 0958", "+447911123456") and grouped
# national ones ("(555) 123-4567", "030 1234 5678"). Plain digit runs are left
# alone: in a logistics log they are order, shipment and tracking numbers.
_PHONE = re.compile(
    r"(?<![\w+])"
    r"(?:\+\d[\d \-()]{6,}\d"  # international
    r"|\(?\d{2,4}\)?[ \-]\d{2,4}[ \-]\d{2,5}(?:[ \-]\d{2,5})?)"  # grouped national
    r"(?!\w)"
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# Extra fields holding personal data, by exact name or by suffix.
_PII_EMAIL = ("email",)
_PII_PHONE = ("phone", "mobile")
_PII_NAME = ("customer_name", "contact_name", "partner_name", "recipient_name", "full_name")
_PII_ADDRESS = ("street", "street2", "address", "zip")


def mask_email(value: str) -> str:
    """``jane.doe@example.com`` → ``j***@example.com`` (the domain helps debugging)."""
    local, at, domain = value.strip().rpartition("@")
    if not at or not local or not domain:
        return _MASK if value else ""
    return f"{local[0]}{_MASK}@{domain}"


def mask_phone(value: str) -> str:
    """``+44 20 7946 0958`` → ``***58``: the last two digits tell numbers apart."""
    digits = re.sub(r"\D", "", value)
    if len(digits) < 4:
        return _MASK if value else ""
    return _MASK + digits[-2:]


def mask_name(value: str) -> str:
    """``Jane Doe`` → ``J*** D***``."""
    return " ".join(word[0] + _MASK for word in value.split())


def _mask_phone_match(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    international = text.startswith("+")
    if _ISO_DATE.match(text) or not (8 if international else 9) <= digits <= 15:
        return text
    return mask_phone(text)


def mask_text(text: str) -> str:
    """Mask obvious emails and phone numbers anywhere in a free text."""
    if "@" in text:
        text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    return _PHONE.sub(_mask_phone_match, text)


def _pii_kind(key: str) -> str | None:
    lowered = key.lower()
    for kind, names in (
        ("email", _PII_EMAIL),
        ("phone", _PII_PHONE),
        ("name", _PII_NAME),
        ("address", _PII_ADDRESS),
    ):
        if any(lowered == name or lowered.endswith("_" + name) for name in names):
            return kind
    return None


def mask_field(key: str, value: Any) -> Any:
    """Mask ``value`` if the field name ``key`` says it is personal data."""
    kind = _pii_kind(key)
    if kind is None or value is None:
        return value
    if not isinstance(value, str):
        return _MASK
    if kind == "email":
        return mask_email(value)
    if kind == "phone":
        return mask_phone(value)
    if kind == "name":
        return mask_name(value)
    return _MASK


class PiiMaskingFilter(logging.Filter):
    """Masks personal data in a record's message and in its personal-data extra fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRIBUTES:
                record.__dict__[key] = mask_field(key, value)
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


def _trace_ids() -> tuple[str, str] | None:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


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
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = _trace_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        correlation_id = correlation_id_var.get()
        if correlation_id is not None:
            entry["correlation_id"] = correlation_id
        for key, value in _extras(record).items():
            entry[f"extra_{key}" if key in entry else key] = value
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["exception"] = {
                "type": type(error).__name__,
                "message": mask_text(str(error)),
                "traceback": mask_text(self.formatException(record.exc_info)),
            }
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
        correlation_id = correlation_id_var.get()
        if correlation_id is not None:
            parts.append(f"correlation_id={correlation_id}")
        parts.extend(f"{key}={value}" for key, value in _extras(record).items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
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
    service: str, level: str | int, *, stream: TextIO | None = None, json: bool = True
) -> logging.Handler:
    """Send all logging to ``stream`` (default stderr) as JSON lines (or text), masked.

    Calling it again replaces the handler it installed before. Returns the
    handler, for callers that want to remove it again.
    """
    number = _level_number(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _WaybillHandler)]:
        root.removeHandler(old)
    handler = _WaybillHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(service) if json else TextFormatter(service))
    handler.addFilter(PiiMaskingFilter())
    root.addHandler(handler)
    root.setLevel(number)
    return handler
