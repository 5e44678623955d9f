"""The envelope: CloudEvents 1.0 NATS binary-mode headers around a JSON body.

:func:`encode` turns a message and its context into what NATS sends
(subject, headers, body); :func:`decode` turns what NATS delivered back into
a typed message and its context. ``decode`` raises only
:class:`~waybill_contracts.errors.ContractError`, whatever arrives, so a
consumer can dead-letter bad input instead of crashing.

Both run on every message, so everything that can be prepared is prepared
once at import: one JSON encoder, one typed decoder per message type.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, NamedTuple, TypeVar

import msgspec
from msgspec import Meta

from waybill_contracts import catalog
from waybill_contracts.errors import (
    ContractError,
    InvalidHeader,
    MalformedBody,
    MissingHeader,
)
from waybill_contracts.messages import Message, QueryRequest
from waybill_contracts.model import UtcDateTime
from waybill_contracts.record import Record
from waybill_contracts.subjects import SubjectMap

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
SOURCE_PREFIX = "waybill/"

HEADER_SPEC_VERSION = "ce-specversion"
HEADER_ID = "ce-id"
HEADER_SOURCE = "ce-source"
HEADER_TYPE = "ce-type"
HEADER_TIME = "ce-time"
HEADER_SUBJECT = "ce-subject"
HEADER_CORRELATION_ID = "ce-correlationid"
HEADER_CAUSATION_ID = "ce-causationid"
HEADER_CONTENT_TYPE = "content-type"
HEADER_TRACEPARENT = "traceparent"
HEADER_TRACESTATE = "tracestate"
HEADER_NATS_MSG_ID = "Nats-Msg-Id"
"""JetStream's de-duplication header; always equal to ``ce-id``."""


class MessageContext(Record, frozen=True, kw_only=True):
    """Everything about a message that travels in headers rather than in its body."""

    id: Annotated[str, Meta(min_length=1, description="ce-id, also Nats-Msg-Id.")]
    source: Annotated[str, Meta(min_length=1, description="ce-source, waybill/<service>.")]
    type: Annotated[str, Meta(min_length=1, description="ce-type of the body.")]
    time: Annotated[UtcDateTime, Meta(description="ce-time: when the message was made.")]
    subject: Annotated[str, Meta(description="ce-subject: the business key.")]
    correlation_id: Annotated[str, Meta(description="The business transaction.")]
    causation_id: Annotated[str | None, Meta(description="ce-id of the cause.")] = None
    traceparent: Annotated[str | None, Meta(description="W3C trace context.")] = None
    tracestate: Annotated[str | None, Meta(description="W3C trace state.")] = None


class Encoded(NamedTuple):
    """What to publish: the subject, the headers and the JSON body."""

    subject: str
    headers: dict[str, str]
    body: bytes


class Decoded(NamedTuple):
    """A message read from the wire, with its context."""

    message: Message
    context: MessageContext


_ENCODER = msgspec.json.Encoder()

M = TypeVar("M", bound=Message)
_DECODERS: dict[type[Message], msgspec.json.Decoder[Message]] = {
    message_type: msgspec.json.Decoder(message_type) for message_type in catalog.MESSAGE_TYPES
}


def new_id() -> str:
    """A fresh random message id (32 hex digits)."""
    return uuid.uuid4().hex


def fact_id(*parts: object) -> str:
    """A message id derived from the fact itself, stable across observations.

    When the same fact can be seen twice (a retried webhook, a poll that
    overlaps one), derive its id from what identifies it, e.g.
    ``fact_id("stock.picking", 42, write_date)``, so JetStream drops the
    duplicate. Include the message kind if one fact yields several messages.
    """
    if not parts:
        raise ValueError("fact_id needs at least one part that identifies the fact")
    # The unit separator cannot occur in ordinary text, so ("a", "b c") and
    # ("a b", "c") never collide.
    material = "\x1f".join(str(part) for part in parts).encode()
    return hashlib.sha256(material).hexdigest()[:32]


def new_context(
    message: Message,
    *,
    source: str,
    cause: MessageContext | None = None,
    correlation_id: str | None = None,
    message_id: str | None = None,
    time: datetime | None = None,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> MessageContext:
    """The context for a new message.

    ``source`` is a service name (``odoo-gateway``, made ``waybill/odoo-gateway``)
    or a full ``ce-source`` containing a ``/``. With a ``cause`` (the
    context of the message being handled) the new message inherits its
    correlation id and records it as the cause. The id is random unless
    ``message_id`` is given (see :func:`fact_id`).
    """
    inherited = cause.correlation_id if cause is not None else None
    return MessageContext(
        id=message_id or new_id(),
        source=source if "/" in source else SOURCE_PREFIX + source,
        type=catalog.ce_type_for(type(message)),
        time=time or datetime.now(UTC),
        subject=message.business_key(),
        correlation_id=correlation_id or inherited or message.correlation_key(),
        causation_id=cause.id if cause is not None else None,
        traceparent=traceparent,
        tracestate=tracestate,
    )


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as ``ce-time`` carries it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def encode(message: Message, context: MessageContext, subjects: SubjectMap) -> Encoded:
    """The subject, CloudEvents headers and JSON body to publish ``message`` with."""
    subject = subjects.subject_for(type(message))
    ce_type = catalog.ce_type_for(type(message))
    if context.type != ce_type:
        raise InvalidHeader(
            f"context type {context.type!r} does not match the message's {ce_type}",
            field=HEADER_TYPE,
        )
    headers = {
        HEADER_SPEC_VERSION: SPEC_VERSION,
        HEADER_ID: context.id,
        HEADER_SOURCE: context.source,
        HEADER_TYPE: ce_type,
        HEADER_TIME: format_time(context.time),
        HEADER_SUBJECT: context.subject,
        HEADER_CORRELATION_ID: context.correlation_id,
        HEADER_CONTENT_TYPE: CONTENT_TYPE,
        HEADER_NATS_MSG_ID: context.id,
    }
    if context.causation_id is not None:
        headers[HEADER_CAUSATION_ID] = context.causation_id
    if context.traceparent is not None:
        headers[HEADER_TRACEPARENT] = context.traceparent
    if context.tracestate is not None:
        headers[HEADER_TRACESTATE] = context.tracestate
    return Encoded(subject, headers, _ENCODER.encode(message))


def decode(
    subject: str,
    headers: Mapping[str, str] | None,
    body: bytes,
    subjects: SubjectMap,
) -> Decoded:
    """The typed message and context NATS delivered; :class:`ContractError` if malformed."""
    try:
        return _decode(subject, headers, body, subjects)
    except ContractError:
        raise
    except Exception as error:
        # The promise is "ContractError or a message". Anything else escaping
        # here would be a gap in the checks below; report it, never crash.
        raise ContractError(f"message could not be read: {error!r}") from error


def _decode(
    subject: str, headers: Mapping[str, str] | None, body: bytes, subjects: SubjectMap
) -> Decoded:
    if headers is None:
        raise MissingHeader(
            f"message on {subject!r} has no headers: CloudEvents headers are required",
            field=HEADER_TYPE,
        )
    ce_type = _required(headers, HEADER_TYPE)
    message_type = catalog.message_type_for_ce_type(ce_type)
    message_id = _required(headers, HEADER_ID)
    spec_version = _required(headers, HEADER_SPEC_VERSION)
    if spec_version != SPEC_VERSION:
        raise InvalidHeader(
            f"ce-specversion {spec_version!r} is not supported: expected {SPEC_VERSION}",
            field=HEADER_SPEC_VERSION,
        )
    source = _required(headers, HEADER_SOURCE)
    time = _parse_time(_required(headers, HEADER_TIME))
    content_type = _optional(headers, HEADER_CONTENT_TYPE)
    if content_type is not None and not _is_json(content_type):
        raise InvalidHeader(
            f"content-type {content_type!r} is not {CONTENT_TYPE}", field=HEADER_CONTENT_TYPE
        )
    _check_subject_carries(subjects, subject, message_type, ce_type)
    message = _decode_body(message_type, ce_type, body)
    return Decoded(
        message,
        MessageContext(
            id=message_id,
            source=source,
            type=ce_type,
            time=time,
            subject=_optional(headers, HEADER_SUBJECT) or message.business_key(),
            correlation_id=(_optional(headers, HEADER_CORRELATION_ID) or message.correlation_key()),
            causation_id=_optional(headers, HEADER_CAUSATION_ID),
            traceparent=_optional(headers, HEADER_TRACEPARENT),
            tracestate=_optional(headers, HEADER_TRACESTATE),
        ),
    )


def _optional(headers: Mapping[str, str], name: str) -> str | None:
    # NATS header names are case-sensitive; the binding spells them in lower case.
    value = headers.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidHeader(f"header {name} must be a string, got {value!r}", field=name)
    return value or None


def _required(headers: Mapping[str, str], name: str) -> str:
    value = _optional(headers, name)
    if value is None:
        raise MissingHeader(f"required header {name} is missing or empty", field=name)
    return value


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidHeader(
            f"ce-time {value!r} is not an RFC 3339 timestamp", field=HEADER_TIME
        ) from None
    if moment.tzinfo is None:
        raise InvalidHeader(f"ce-time {value!r} has no timezone offset", field=HEADER_TIME)
    return moment.astimezone(UTC)


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == CONTENT_TYPE


def _check_subject_carries(
    subjects: SubjectMap, subject: str, message_type: type[Message], ce_type: str
) -> None:
    # A subject of the map carries one type (a query subject: its request, or
    # the response on the way back). Inboxes and dead-letter subjects carry any.
    expected = subjects.find_message_type(subject)
    if expected is None or expected is message_type:
        return
    if issubclass(expected, QueryRequest) and expected.response_type is message_type:
        return
    raise InvalidHeader(
        f"subject {subject} carries {catalog.ce_type_for(expected)}, not {ce_type}",
        field=HEADER_TYPE,
    )


# msgspec reports where decoding failed as "... - at `$.path`"; the field named
# by "missing required field `name`" is one level below that path.
_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


def validate(message: M) -> M:
    """``message``, once it satisfies its contract's constraints; :class:`MalformedBody` if not.

    msgspec checks constraints (lengths, patterns, ranges) when it decodes,
    not when a struct is built in Python. An adapter that builds a message
    from a partner's data calls this before publishing, so a bad value is
    refused where it came in, naming the field, instead of being dead-lettered
    by every consumer.
    """
    try:
        checked: M = msgspec.json.decode(_ENCODER.encode(message), type=type(message))
    except msgspec.ValidationError as error:
        text = str(error)
        raise MalformedBody(
            f"{type(message).__name__} breaks its contract: {text}", field=_field_of(text)
        ) from None
    return checked


def _field_of(error_text: str) -> str:
    at = _AT_PATH.search(error_text)
    path = at.group(1) if at else ""
    missing = _MISSING_FIELD.search(error_text)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or "body"


def _decode_body(message_type: type[Message], ce_type: str, body: bytes) -> Message:
    try:
        return _DECODERS[message_type].decode(body)
    except msgspec.ValidationError as error:
        field = _field_of(str(error))
        raise MalformedBody(f"{ce_type} body is invalid at {field}: {error}", field=field) from None
    except msgspec.DecodeError as error:
        raise MalformedBody(f"{ce_type} body is not JSON: {error}", field="body") from None
    except UnicodeDecodeError as error:
        raise MalformedBody(f"{ce_type} body is not UTF-8: {error}", field="body") from None
    except TypeError as error:  # not bytes-like at all
        raise MalformedBody(f"{ce_type} body is not bytes: {error}", field="body") from None
