"""Dead letters on the wire: the original event, as a CloudEvent, with why it failed.

A dead letter is a binary-mode CloudEvent (the NATS binding's rules, as
every Waybill message): its attributes are the original's, as far as they
can be read (:func:`waybill_contracts.envelope.attributes_of`), its data is
the original body byte for byte, and extension attributes add what the
runtime knows about the failure:

========================  ===================================================
``deadletterreason``      invalid message | permanent error | retries exhausted
``deadlettererror``       what went wrong, one line
``deadlettererrortype``   the exception type
``deadletterattempts``    deliveries made, the last one included (Integer)
``deadletterservice``     the service that gave up
``deadletterconsumer``    its durable consumer
``deadlettertime``        when it gave up (Timestamp)
``deadlettersubject``     the original NATS subject
``deadletterstream``      the stream the original was stored in
``deadlettersequence``    its sequence there (Integer)
``deadletterheaders``     the original headers exactly (a JSON object)
``deadlettertruncated``   ``true`` when the data is cut short (Boolean; only then)
``deadlettersize``        the original body's size in bytes (Integer; only when cut)
========================  ===================================================

A dead letter must fit the server's ``max_payload``: when the original body
would not (:func:`fit_within`), the data keeps only its start, marked as
truncated with the original size; the whole original stays in its stream at
``deadletterstream``/``deadlettersequence``, where a replay reads it.

The exact headers make a replay put back the very message that failed,
whatever its shape (structured mode, headers of another case, no headers at
all). An original that lacks a required attribute still makes a valid
CloudEvent: the dead letter supplies it (``id``: the dead letter's own id,
``source``: ``waybill/<service>``, ``type``: :data:`DEAD_LETTER_TYPE`). The
data of a structured-mode original is that whole event
(``application/cloudevents+json``).

Dead letters written before (v1: a JSON document of :class:`DeadLetter`
with ``content-type: application/json``) are read too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

import msgspec

from waybill_contracts import ContractError, binding
from waybill_contracts.envelope import (
    HEADER_CONTENT_TYPE,
    HEADER_NATS_MSG_ID,
    HEADER_TRACEPARENT,
    HEADER_TRACESTATE,
    SOURCE_PREFIX,
    SPEC_VERSION,
    attributes_of,
    format_time,
)
from waybill_runtime.json_input import decode_bounded

__all__ = [
    "DEAD_LETTER_TYPE",
    "EXTENSIONS",
    "OPTIONAL_EXTENSIONS",
    "DeadLetter",
    "NotADeadLetter",
    "dead_letter_id",
    "dead_letter_message",
    "fit_within",
    "read_dead_letter",
]

DEAD_LETTER_TYPE = "io.waybill.deadletter.v1"
"""The ``type`` of a dead letter whose original had none."""


# Counts and sequences fit a signed 64-bit integer (what JetStream and SQLite store): a
# larger one in a forged dead letter is refused as not a dead letter.
_MAX_INT64 = 2**63 - 1


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A message a service gave up on, with why."""

    service: Annotated[str, msgspec.Meta(description="the service that gave up")]
    consumer: Annotated[str, msgspec.Meta(description="durable consumer the message came from")]
    reason: Annotated[
        str,
        msgspec.Meta(description="invalid message | permanent error | retries exhausted"),
    ]
    error_type: Annotated[str, msgspec.Meta(description="exception type, e.g. ContractError")]
    error_message: Annotated[str, msgspec.Meta(description="what went wrong, one line")]
    attempts: Annotated[
        int, msgspec.Meta(ge=0, le=_MAX_INT64, description="deliveries made, this one included")
    ]
    failed_at: Annotated[datetime, msgspec.Meta(description="when the service gave up (UTC)")]
    original_subject: str
    original_headers: dict[str, str] = {}
    original_body: Annotated[bytes, msgspec.Meta(description="the body, byte for byte")] = b""
    original_stream: str = ""
    original_sequence: Annotated[int, msgspec.Meta(ge=0, le=_MAX_INT64)] = 0
    truncated: Annotated[
        bool, msgspec.Meta(description="the body is only the start of the original's")
    ] = False
    original_size: Annotated[
        int,
        msgspec.Meta(
            ge=0, le=_MAX_INT64, description="the original body's size in bytes, when truncated"
        ),
    ] = 0


EXTENSIONS: dict[str, str] = {
    "reason": "deadletterreason",
    "error_message": "deadlettererror",
    "error_type": "deadlettererrortype",
    "attempts": "deadletterattempts",
    "service": "deadletterservice",
    "consumer": "deadletterconsumer",
    "failed_at": "deadlettertime",
    "original_subject": "deadlettersubject",
    "original_stream": "deadletterstream",
    "original_sequence": "deadlettersequence",
    "original_headers": "deadletterheaders",
}
"""The extension attribute that carries each field of :class:`DeadLetter` but the body."""

OPTIONAL_EXTENSIONS: dict[str, str] = {
    "truncated": "deadlettertruncated",
    "original_size": "deadlettersize",
}
"""Extension attributes present only when they say something (a truncated body)."""

# Room kept under max_payload for what the size estimate does not count
# (the protocol line, the truncation attributes themselves).
_PAYLOAD_MARGIN = 1024

# What marks a dead letter of this format (v1 letters have no ce- headers).
_MARK = binding.ATTRIBUTE_PREFIX + EXTENSIONS["reason"]
_TRACE_HEADERS = (HEADER_TRACEPARENT, HEADER_TRACESTATE)

_encode_headers = msgspec.json.Encoder().encode
_decode_headers = msgspec.json.Decoder(dict[str, str]).decode
_decode_v1 = msgspec.json.Decoder(DeadLetter).decode


class NotADeadLetter(ValueError):
    """A message on a dead-letter subject that is not a dead letter (says why)."""


def dead_letter_id(letter: DeadLetter) -> str:
    """Dedupe id: one dead letter per stored message and consumer that gave up on it.

    The service and consumer are part of it: two services giving up on one
    event leave two letters, while one consumer retrying its giving-up (the
    term failed, say) leaves one.
    """
    return (
        f"dlq:{letter.service}:{letter.consumer}:"
        f"{letter.original_stream}:{letter.original_sequence}:{letter.attempts}"
    )


def _message_size(headers: Mapping[str, str], body: bytes) -> int:
    # NATS/1.0 line, "name: value" lines, the blank line, then the body.
    lines = sum(len(name.encode()) + len(value.encode()) + 4 for name, value in headers.items())
    return len(b"NATS/1.0\r\n") + lines + 2 + len(body)


def fit_within(letter: DeadLetter, max_payload: int) -> DeadLetter:
    """``letter``, or, when it would exceed ``max_payload`` bytes, the same with its body cut.

    The cut letter says so (``truncated``, ``original_size``); the original
    stays whole in its stream, which ``original_stream`` and
    ``original_sequence`` point to.
    """
    headers, body = dead_letter_message(letter)
    if _message_size(headers, body) + _PAYLOAD_MARGIN <= max_payload:
        return letter
    room = max(0, max_payload - _message_size(headers, b"") - 2 * _PAYLOAD_MARGIN)
    return msgspec.structs.replace(
        letter,
        original_body=letter.original_body[:room],
        truncated=True,
        original_size=len(letter.original_body),
    )


def dead_letter_message(letter: DeadLetter) -> tuple[dict[str, str], bytes]:
    """The headers and body that carry ``letter``: a CloudEvent in binary mode.

    Never fails on what the original holds: it is often broken, and the
    dead letter is the only place it is kept.
    """
    original = letter.original_headers
    attributes = attributes_of(original, letter.original_body)
    if binding.is_structured(binding.find_header(original, HEADER_CONTENT_TYPE)):
        attributes["datacontenttype"] = binding.STRUCTURED_JSON
    attributes["specversion"] = SPEC_VERSION
    attributes.setdefault("id", dead_letter_id(letter))
    attributes.setdefault("source", SOURCE_PREFIX + letter.service)
    attributes.setdefault("type", DEAD_LETTER_TYPE)
    attributes.update(_facts(letter))
    headers = {
        binding.ATTRIBUTE_PREFIX + name: _header_value(value) for name, value in attributes.items()
    }
    for name in _TRACE_HEADERS:
        value = binding.find_header(original, name)
        if value:
            headers[name] = value
    headers[HEADER_NATS_MSG_ID] = dead_letter_id(letter)
    return headers, letter.original_body


def _facts(letter: DeadLetter) -> dict[str, str]:
    facts = {
        EXTENSIONS["reason"]: letter.reason,
        EXTENSIONS["error_message"]: letter.error_message,
        EXTENSIONS["error_type"]: letter.error_type,
        EXTENSIONS["attempts"]: str(letter.attempts),
        EXTENSIONS["service"]: letter.service,
        EXTENSIONS["consumer"]: letter.consumer,
        EXTENSIONS["failed_at"]: format_time(letter.failed_at),
        EXTENSIONS["original_subject"]: letter.original_subject,
        EXTENSIONS["original_stream"]: letter.original_stream,
        EXTENSIONS["original_sequence"]: str(letter.original_sequence),
        EXTENSIONS["original_headers"]: _encode_headers(letter.original_headers).decode(),
    }
    if letter.truncated:
        facts[OPTIONAL_EXTENSIONS["truncated"]] = "true"
        facts[OPTIONAL_EXTENSIONS["original_size"]] = str(letter.original_size)
    return facts


def _header_value(value: str) -> str:
    try:
        return binding.encode_value(value)
    except UnicodeEncodeError:
        # A lone surrogate (from an exception's text, say): not worth losing the letter over.
        return binding.encode_value(value.encode("utf-8", "replace").decode("utf-8"))


def read_dead_letter(headers: Mapping[str, str] | None, body: bytes) -> DeadLetter:
    """The dead letter a message of the dead-letter stream carries, in either format.

    :class:`NotADeadLetter` naming what is missing or wrong when it is not one.
    """
    if headers is not None and binding.find_header(headers, _MARK) is not None:
        return _read_cloudevent(headers, body)
    try:
        return decode_bounded(body, _decode_v1)
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as error:
        raise NotADeadLetter(
            f"neither a {_MARK} header nor a dead letter of v1 in the body: {error}"
        ) from None


def _read_cloudevent(headers: Mapping[str, str], body: bytes) -> DeadLetter:
    fields: dict[str, object] = {"original_body": body}
    for field, extension in EXTENSIONS.items():
        header = binding.ATTRIBUTE_PREFIX + extension
        value = binding.find_header(headers, header)
        if value is None:
            raise NotADeadLetter(f"dead letter has no {header} header")
        try:
            fields[field] = binding.decode_value(value, header=header)
        except ContractError as error:
            raise NotADeadLetter(str(error)) from None
    for field, extension in OPTIONAL_EXTENSIONS.items():
        header = binding.ATTRIBUTE_PREFIX + extension
        value = binding.find_header(headers, header)
        if value is not None:
            try:
                fields[field] = binding.decode_value(value, header=header)
            except ContractError as error:
                raise NotADeadLetter(str(error)) from None
    header = binding.ATTRIBUTE_PREFIX + EXTENSIONS["original_headers"]
    try:
        fields["original_headers"] = decode_bounded(
            str(fields["original_headers"]), _decode_headers
        )
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise NotADeadLetter(f"{header} is not a JSON object of strings: {error}") from None
    try:
        return msgspec.convert(fields, DeadLetter, strict=False)
    except msgspec.ValidationError as error:
        raise NotADeadLetter(f"dead letter header {_named(str(error))}: {error}") from None


def _named(error_text: str) -> str:
    # msgspec names the struct field ("- at `$.attempts`"): name its header instead.
    for field, extension in (EXTENSIONS | OPTIONAL_EXTENSIONS).items():
        if f"`$.{field}`" in error_text:
            return binding.ATTRIBUTE_PREFIX + extension
    return "?"
