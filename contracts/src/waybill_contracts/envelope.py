"""The envelope: a typed message as a CloudEvent on NATS, following the NATS protocol binding.

:func:`encode` turns a message and its context into what NATS sends
(subject, headers, body): binary mode, every attribute a percent-encoded
``ce-*`` header, the JSON body as the event's data. :func:`decode` turns
what NATS delivered back into a typed message and its context; it also
reads structured mode (``content-type: application/cloudevents+json``, the
whole event in the body), header names in any case, and what Waybill wrote
before it followed the binding to the letter (a bare ``content-type`` and
raw header values, see :func:`_writes_raw_values`). ``decode`` raises only
:class:`~waybill_contracts.errors.ContractError`, whatever arrives, so a
consumer can dead-letter bad input instead of crashing.

Both run on every message, so everything that can be prepared is prepared
once at import: one JSON encoder, one typed decoder per message type, the
``ce-type`` header of every type. The binding's value and name rules are in
:mod:`waybill_contracts.binding`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, NamedTuple, TypeVar

import msgspec
from msgspec import Meta

from waybill_contracts import binding, catalog
from waybill_contracts.errors import (
    ContractError,
    InvalidHeader,
    MalformedBody,
    MissingHeader,
    UnknownType,
)
from waybill_contracts.lanes import Lane
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
HEADER_DATA_CONTENT_TYPE = "ce-datacontenttype"
HEADER_CONTENT_TYPE = binding.CONTENT_TYPE_HEADER
"""Not written in binary mode; read to tell structured mode, and from messages of v1."""
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
    lane: Annotated[
        Lane, Meta(description="The lane it travels on: its subject says, not a header.")
    ] = Lane.STANDARD


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
# The ce-type header value of every message type, encoded once.
_TYPE_HEADERS: dict[type[Message], str] = {
    message_type: binding.encode_value(catalog.ce_type_for(message_type))
    for message_type in catalog.MESSAGE_TYPES
}


def new_id() -> str:
    """A fresh message id (32 hex digits): a UUID version 7 (RFC 9562), time-ordered.

    The first 48 bits are the Unix time in milliseconds, the rest random (74 bits, as
    unlikely to repeat as a version 4's 122 within one millisecond). Ids made later sort
    after earlier ones, so a store indexed by message id (the audit trail's primary key,
    in SQLite or PostgreSQL) appends at the end of its index instead of writing a random
    leaf page for every row: about 1.5 pages written a row instead of 2.5
    (docs/benchmarks.md, issue 18). The standard library has ``uuid.uuid7`` from Python
    3.14 only.
    """
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10))
    value = (
        (millis & _MILLIS_MASK) << 80
        | _VERSION_7 << 76
        | (random >> 62 & 0xFFF) << 64
        | _VARIANT_RFC << 62
        | random & _RAND_B_MASK
    )
    return f"{value:032x}"


_MILLIS_MASK = (1 << 48) - 1
_VERSION_7 = 0x7
_VARIANT_RFC = 0b10
_RAND_B_MASK = (1 << 62) - 1


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
    lane: Lane | None = None,
) -> MessageContext:
    """The context for a new message.

    ``source`` is a service name (``odoo-gateway``, made ``waybill/odoo-gateway``)
    or a full ``ce-source`` containing a ``/``. With a ``cause`` (the
    context of the message being handled) the new message inherits its
    correlation id and its lane, and records it as the cause. The id is
    random unless ``message_id`` is given (see :func:`fact_id`).
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
        lane=lane or (cause.lane if cause is not None else Lane.STANDARD),
    )


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as ``ce-time`` carries it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def encode(message: Message, context: MessageContext, subjects: SubjectMap) -> Encoded:
    """The subject, CloudEvents headers (binary mode) and JSON body to publish ``message`` with.

    Attribute values are percent-encoded as the binding says (values that
    need none, the usual case, are sent as they are). ``Nats-Msg-Id`` is
    the ``ce-id`` header exactly, so JetStream de-duplicates on the id.
    """
    subject = subjects.subject_for(type(message))
    if context.lane is not Lane.STANDARD:
        subject = subjects.on_lane(subject, context.lane)
    ce_type = catalog.ce_type_for(type(message))
    if context.type != ce_type:
        raise InvalidHeader(
            f"context type {context.type!r} does not match the message's {ce_type}",
            field=HEADER_TYPE,
        )
    message_id, source, subject_key = context.id, context.source, context.subject
    correlation_id, causation_id = context.correlation_id, context.causation_id
    # One look at every value: Waybill's own ids and keys need no encoding.
    if binding.needs_encoding(
        f"{message_id}{source}{subject_key}{correlation_id}{causation_id or ''}"
    ):
        try:
            message_id, source, subject_key, correlation_id = map(
                binding.encode_value, (message_id, source, subject_key, correlation_id)
            )
            if causation_id is not None:
                causation_id = binding.encode_value(causation_id)
        except UnicodeEncodeError:
            raise _not_unicode(context) from None
    headers = {
        HEADER_SPEC_VERSION: SPEC_VERSION,
        HEADER_ID: message_id,
        HEADER_SOURCE: source,
        HEADER_TYPE: _TYPE_HEADERS[type(message)],
        HEADER_TIME: format_time(context.time),
        HEADER_SUBJECT: subject_key,
        HEADER_CORRELATION_ID: correlation_id,
        HEADER_DATA_CONTENT_TYPE: CONTENT_TYPE,
        HEADER_NATS_MSG_ID: message_id,
    }
    if causation_id is not None:
        headers[HEADER_CAUSATION_ID] = causation_id
    # W3C trace context is not a CloudEvents attribute: its own format, sent as is.
    if context.traceparent is not None:
        headers[HEADER_TRACEPARENT] = context.traceparent
    if context.tracestate is not None:
        headers[HEADER_TRACESTATE] = context.tracestate
    return Encoded(subject, headers, _ENCODER.encode(message))


def _not_unicode(context: MessageContext) -> InvalidHeader:
    # Only a string holding a lone surrogate cannot be encoded: name the header.
    for header, value in (
        (HEADER_ID, context.id),
        (HEADER_SOURCE, context.source),
        (HEADER_SUBJECT, context.subject),
        (HEADER_CORRELATION_ID, context.correlation_id),
        (HEADER_CAUSATION_ID, context.causation_id or ""),
    ):
        if value.encode("utf-8", "replace").decode("utf-8") != value:
            return InvalidHeader(f"{header} {value!r} is not valid Unicode text", field=header)
    return InvalidHeader("the context holds text that is not valid Unicode")


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


class _Attributes(msgspec.Struct, frozen=True):
    """The CloudEvents attributes Waybill reads, by attribute name; None or "" when absent."""

    specversion: str | None = None
    id: str | None = None
    source: str | None = None
    type: str | None = None
    time: str | None = None
    subject: str | None = None
    correlationid: str | None = None
    causationid: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    datacontenttype: str | None = None


# The headers of _Attributes' fields in binary mode, in field order (all but
# datacontenttype, which decode checks on its own).
_BINARY_HEADERS = (
    HEADER_SPEC_VERSION,
    HEADER_ID,
    HEADER_SOURCE,
    HEADER_TYPE,
    HEADER_TIME,
    HEADER_SUBJECT,
    HEADER_CORRELATION_ID,
    HEADER_CAUSATION_ID,
    HEADER_TRACEPARENT,
    HEADER_TRACESTATE,
)
# W3C trace context is not a CloudEvents attribute: never percent-decoded.
_RAW_HEADERS = frozenset({HEADER_TRACEPARENT, HEADER_TRACESTATE})


class _StructuredEvent(_Attributes, frozen=True):
    """An event in the JSON event format; members Waybill does not read are ignored."""

    data: msgspec.Raw = msgspec.Raw(b"")
    data_base64: bytes | None = None


_STRUCTURED_DECODER = msgspec.json.Decoder(_StructuredEvent)


class _Mode(NamedTuple):
    """How errors name what is wrong: a header in binary mode, a JSON member in structured mode."""

    attribute_prefix: str
    data_member: str
    missing: type[ContractError]
    invalid: type[ContractError]

    def attribute(self, name: str) -> str:
        return self.attribute_prefix + name

    def data_field(self, path: str) -> str:
        if not path:
            return self.data_member
        return f"{self.data_member}.{path}" if self.data_member != "body" else path


_BINARY = _Mode(binding.ATTRIBUTE_PREFIX, "body", MissingHeader, InvalidHeader)
_STRUCTURED = _Mode("", "data", MalformedBody, MalformedBody)


def _decode(
    subject: str, headers: Mapping[str, str] | None, body: bytes, subjects: SubjectMap
) -> Decoded:
    if headers is None:
        raise MissingHeader(
            f"message on {subject!r} has no headers: CloudEvents headers are required",
            field=HEADER_TYPE,
        )
    found = binding.binding_headers(headers)
    content_type = found.get(HEADER_CONTENT_TYPE)
    raw = False
    if content_type is not None:  # structured mode, or a message of v1
        content_type = _header(found, HEADER_CONTENT_TYPE, raw=True)
        if binding.is_structured(content_type):
            return _decode_structured(subject, found, content_type or "", body, subjects)
        # In binary mode a content-type has no role of its own; one that is
        # there must not contradict the JSON body all the same.
        if content_type is not None and not _is_json(content_type):
            raise InvalidHeader(
                f"content-type {content_type!r} is not {CONTENT_TYPE}", field=HEADER_CONTENT_TYPE
            )
        raw = _writes_raw_values(found)
    data_content_type = found.get(HEADER_DATA_CONTENT_TYPE)
    if data_content_type is not None and data_content_type != CONTENT_TYPE:
        data_content_type = _header(found, HEADER_DATA_CONTENT_TYPE, raw=False)
        if data_content_type is not None and not _is_json(data_content_type):
            raise InvalidHeader(
                f"ce-datacontenttype {data_content_type!r} is not {CONTENT_TYPE}",
                field=HEADER_DATA_CONTENT_TYPE,
            )
    try:
        # One look at every value: Waybill's own messages need no decoding.
        plain = raw or not binding.needs_decoding("".join(found.values()))
    except TypeError:  # a value that is not a string: let _header name it
        plain = False
    if plain:
        attributes = _Attributes(*map(found.get, _BINARY_HEADERS))
    else:
        attributes = _Attributes(
            *(_header(found, name, raw or name in _RAW_HEADERS) for name in _BINARY_HEADERS)
        )
    return _decoded(subject, attributes, body, subjects, _BINARY)


def _writes_raw_values(headers: Mapping[str, str]) -> bool:
    """Whether the message comes from Waybill v1, which sent header values unencoded.

    v1 sent the data content type as a bare ``content-type``; the binding
    sends ``ce-datacontenttype``. Only that form is read raw, so a value of
    v1 holding a ``%`` or a ``"`` reads back as it was written.
    """
    return HEADER_CONTENT_TYPE in headers and HEADER_DATA_CONTENT_TYPE not in headers


def _header(headers: Mapping[str, str], name: str, raw: bool) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidHeader(f"header {name} must be a string, got {value!r}", field=name)
    if not value:
        return None
    return value if raw else binding.decode_value(value, header=name)


def _decode_structured(
    subject: str,
    headers: Mapping[str, str],
    content_type: str,
    body: bytes,
    subjects: SubjectMap,
) -> Decoded:
    if binding.media_type(content_type) != binding.STRUCTURED_JSON:
        raise InvalidHeader(
            f"content-type {content_type!r}: of the structured formats only "
            f"{binding.STRUCTURED_JSON} is read",
            field=HEADER_CONTENT_TYPE,
        )
    event = _read_json(
        _STRUCTURED_DECODER, body, "the structured CloudEvent", lambda path: path or "body"
    )
    data_content_type = event.datacontenttype
    if data_content_type and not _is_json(data_content_type):
        raise MalformedBody(
            f"datacontenttype {data_content_type!r} is not {CONTENT_TYPE}", field="datacontenttype"
        )
    if event.data_base64 is not None:
        if event.data:
            raise MalformedBody(
                "the structured CloudEvent has both data and data_base64", field="data_base64"
            )
        data: bytes | msgspec.Raw = event.data_base64
    elif event.data:
        data = event.data
    else:
        raise MalformedBody("the structured CloudEvent has no data", field="data")
    # Trace context in NATS headers is the transport's own and wins over the
    # distributed-tracing extension members in the body.
    traceparent = _header(headers, HEADER_TRACEPARENT, raw=True)
    if traceparent is not None:
        tracestate = _header(headers, HEADER_TRACESTATE, raw=True)
        event = msgspec.structs.replace(event, traceparent=traceparent, tracestate=tracestate)
    return _decoded(subject, event, data, subjects, _STRUCTURED)


def _decoded(
    subject: str,
    attributes: _Attributes,
    data: bytes | msgspec.Raw,
    subjects: SubjectMap,
    mode: _Mode,
) -> Decoded:
    ce_type, message_id, source = attributes.type, attributes.id, attributes.source
    if not (ce_type and message_id and source and attributes.specversion and attributes.time):
        raise _first_missing(attributes, mode)
    try:
        message_type = catalog.message_type_for_ce_type(ce_type)
    except UnknownType as error:
        raise UnknownType(str(error), field=mode.attribute("type")) from None
    if attributes.specversion != SPEC_VERSION:
        field = mode.attribute("specversion")
        raise mode.invalid(
            f"{field} {attributes.specversion!r} is not supported: expected {SPEC_VERSION}",
            field=field,
        )
    time = _parse_time(attributes.time, mode)
    _check_subject_carries(subjects, subject, message_type, ce_type, mode)
    message = _read_json(_DECODERS[message_type], data, ce_type, mode.data_field)
    return Decoded(
        message,
        MessageContext(
            id=message_id,
            source=source,
            type=ce_type,
            time=time,
            subject=attributes.subject or message.business_key(),
            correlation_id=attributes.correlationid or message.correlation_key(),
            causation_id=attributes.causationid or None,
            traceparent=attributes.traceparent or None,
            tracestate=attributes.tracestate or None,
            lane=subjects.lane_of(subject),
        ),
    )


def _first_missing(attributes: _Attributes, mode: _Mode) -> ContractError:
    for attribute in ("type", "id", "specversion", "source", "time"):
        if not getattr(attributes, attribute):
            name = mode.attribute(attribute)
            return mode.missing(f"required {name} is missing or empty", field=name)
    raise AssertionError("no required attribute is missing")


def _parse_time(value: str, mode: _Mode) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        field = mode.attribute("time")
        raise mode.invalid(f"{field} {value!r} is not an RFC 3339 timestamp", field=field) from None
    if moment.tzinfo is None:
        field = mode.attribute("time")
        raise mode.invalid(f"{field} {value!r} has no timezone offset", field=field)
    return moment.astimezone(UTC)


def _is_json(content_type: str) -> bool:
    return binding.media_type(content_type) == CONTENT_TYPE


def _check_subject_carries(
    subjects: SubjectMap, subject: str, message_type: type[Message], ce_type: str, mode: _Mode
) -> None:
    # A subject of the map carries one type (a query subject: its request, or
    # the response on the way back). Inboxes and dead-letter subjects carry any.
    expected = subjects.find_message_type(subject)
    if expected is None or expected is message_type:
        return
    if issubclass(expected, QueryRequest) and expected.response_type is message_type:
        return
    raise mode.invalid(
        f"subject {subject} carries {catalog.ce_type_for(expected)}, not {ce_type}",
        field=mode.attribute("type"),
    )


def attributes_of(headers: Mapping[str, str] | None, body: bytes) -> dict[str, str]:
    """The CloudEvents attributes a message carries, by attribute name, as far as they can be read.

    For tools that describe messages which may be broken (dead letters, the
    audit trail): never raises. Binary mode: every ``ce-*`` header in any
    case, decoded as the binding says (raw for messages of v1, whose
    ``content-type`` counts as ``datacontenttype``); a value that does not
    decode is kept as it came. Structured mode: the JSON event's members
    other than the data, in their canonical string form.
    """
    if not isinstance(headers, Mapping):
        return {}
    try:
        found = binding.binding_headers(headers)
    except (ContractError, AttributeError):
        found = {str(name).lower(): value for name, value in headers.items()}
    content_type = found.get(HEADER_CONTENT_TYPE)
    if isinstance(content_type, str) and binding.is_structured(content_type):
        return _structured_attributes(body)
    raw = _writes_raw_values(found)
    attributes: dict[str, str] = {}
    if raw and isinstance(content_type, str) and content_type:
        attributes["datacontenttype"] = content_type
    for name, value in found.items():
        if not name.startswith(binding.ATTRIBUTE_PREFIX) or not isinstance(value, str) or not value:
            continue
        attribute = name.removeprefix(binding.ATTRIBUTE_PREFIX)
        if not binding.is_attribute_name(attribute):
            continue
        if not raw:
            # A value that does not decode is kept as it came: better than none.
            with contextlib.suppress(ContractError):
                value = binding.decode_value(value, header=name)
        attributes[attribute] = value
    return attributes


def _structured_attributes(body: bytes) -> dict[str, str]:
    try:
        members = msgspec.json.decode(body)
    except (msgspec.DecodeError, TypeError, UnicodeDecodeError, RecursionError):
        return {}
    if not isinstance(members, dict):
        return {}
    return {
        name: _canonical(value)
        for name, value in members.items()
        if binding.is_attribute_name(name)
        and name != "data"
        and isinstance(value, str | int | bool)
        and value != ""
    }


def _canonical(value: str | int | bool) -> str:
    # The CloudEvents type system's canonical strings: Booleans in lower case.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# msgspec reports where decoding failed as "... - at `$.path`"; the field named
# by "missing required field `name`" is one level below that path.
_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


def validate(message: M) -> M:
    """``message``, once it satisfies its contract's constraints; :class:`MalformedBody` if not.

    msgspec checks constraints (lengths, patterns, ranges) when it decodes,
    not when a struct is built in Python. The runtime's publisher checks
    every message it sends (with :func:`check_body`, on the body it sends);
    this is for code that wants the answer before it publishes.
    """
    check_body(type(message), _ENCODER.encode(message))
    return message


def check_body(message_type: type[Message], body: bytes) -> None:
    """:class:`MalformedBody` naming the field when ``body`` breaks ``message_type``'s contract.

    ``body`` is the JSON :func:`encode` made of a message of that type: one
    typed decode applies the constraints, with no second encode.
    """
    decoder = _DECODERS.get(message_type)
    try:
        if decoder is None:
            msgspec.json.decode(body, type=message_type)
        else:
            decoder.decode(body)
    except msgspec.ValidationError as error:
        text = str(error)
        raise MalformedBody(
            f"{message_type.__name__} breaks its contract: {text}", field=_path_of(text) or "body"
        ) from None


def _path_of(error_text: str) -> str:
    at = _AT_PATH.search(error_text)
    path = at.group(1) if at else ""
    missing = _MISSING_FIELD.search(error_text)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path


T = TypeVar("T")


def _read_json(
    decoder: msgspec.json.Decoder[T],
    data: bytes | msgspec.Raw,
    label: str,
    field_for: Callable[[str], str],
) -> T:
    """``data`` decoded; :class:`MalformedBody` naming the field (``field_for`` of its path)."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as error:
        field = field_for(_path_of(str(error)))
        problem = f"is invalid at {field}: {error}"
    except msgspec.DecodeError as error:
        field, problem = field_for(""), f"is not JSON: {error}"
    except UnicodeDecodeError as error:
        field, problem = field_for(""), f"is not UTF-8: {error}"
    except RecursionError:  # a document nested deeper than the decoder's stack
        field, problem = field_for(""), "is nested too deeply to be read"
    except TypeError as error:  # not bytes-like at all
        field, problem = field_for(""), f"is not bytes: {error}"
    raise MalformedBody(f"{label} {field_for('')} {problem}", field=field)
