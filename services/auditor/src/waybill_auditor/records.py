"""What the auditor stores of each message: one :class:`AuditRecord` per event, command or
dead letter, with the envelope's ids, where it sat on the bus, and its body."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import msgspec

from waybill_auditor.progress import Observation, observe
from waybill_contracts import (
    ContractError,
    Message,
    MessageContext,
    MessageKind,
    SubjectMap,
    binding,
    order_ref_of,
)
from waybill_contracts import decode as decode_message
from waybill_contracts.envelope import HEADER_NATS_MSG_ID, HEADER_TRACEPARENT, attributes_of
from waybill_runtime.bus.dead_letters import StoredDeadLetter, dead_letter_id
from waybill_runtime.bus.replay import ReplayMark

DEAD_LETTER = "dead_letter"
KINDS = (MessageKind.EVENT.value, MessageKind.COMMAND.value, DEAD_LETTER)

_encode = msgspec.json.Encoder().encode


class StoredMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the audit trail, as stored and as read back."""

    id: str
    """ce-id of an event or command; the dead letter's own id for a dead letter."""
    kind: str
    ce_type: str
    subject: str
    order_ref: str | None
    correlation_id: str | None
    causation_id: str | None
    source: str
    time: datetime
    """ce-time of an event or command; when the service gave up, for a dead letter."""
    stream: str
    stream_sequence: int
    nats_subject: str
    body: bytes
    original_id: str | None = None
    dl_service: str | None = None
    dl_consumer: str | None = None
    dl_reason: str | None = None
    dl_error_type: str | None = None
    dl_error_message: str | None = None
    dl_attempts: int | None = None
    replayed_from: int | None = None
    """For a replayed message: the dead letter's sequence it was replayed from."""
    replayed_by: str | None = None
    """For a replayed message: the operator who replayed it."""
    unconsumed: bool = False
    """No installed service but the auditor consumes this message's type."""
    trace_id: str | None = None
    """The W3C trace id the message travelled in (from its ``traceparent``), if any."""


_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-(?P<trace>[0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id a W3C ``traceparent`` names; None when absent, malformed or all zeros."""
    found = _TRACEPARENT.match(traceparent.strip().lower()) if traceparent else None
    if found is None or set(found["trace"]) == {"0"}:
        return None
    return found["trace"]


class AuditRecord(StoredMessage, frozen=True, kw_only=True):
    """A row about to be stored, with what it tells about its order's progress."""

    observation: Observation


def message_record(
    message: Message,
    envelope: MessageContext,
    *,
    subjects: SubjectMap,
    nats_subject: str,
    stream_sequence: int,
    replay: ReplayMark | None = None,
    unconsumed: bool = False,
) -> AuditRecord:
    """The record of an event or command as it was delivered from its stream.

    A replayed message (``replay``) has the original's ``ce-id``, which the
    trail holds already: it is recorded once more as the replay, with the
    dead letter it came from, the operator and when the auditor saw it, and
    tells nothing new about its order's progress.
    """
    kind = message.kind.value
    stream = (
        subjects.events_stream if message.kind is MessageKind.EVENT else subjects.commands_stream
    )
    observation = observe(message, envelope.time)
    record_id, time = envelope.id, envelope.time
    if replay is not None:
        record_id = f"{envelope.id}:replay:{replay.dead_letter}"
        time = datetime.now(UTC)
        observation = Observation(at=time)
    return AuditRecord(
        id=record_id,
        kind=kind,
        ce_type=envelope.type,
        subject=envelope.subject,
        order_ref=order_ref_of(message),
        correlation_id=envelope.correlation_id,
        causation_id=envelope.causation_id,
        source=envelope.source,
        time=time,
        stream=stream.name,
        stream_sequence=stream_sequence,
        nats_subject=nats_subject,
        # The decoded body, encoded again: the same JSON the publisher sent for
        # every field the contracts know.
        body=_encode(message),
        observation=observation,
        replayed_from=replay.dead_letter if replay is not None else None,
        replayed_by=replay.operator if replay is not None else None,
        unconsumed=unconsumed,
        trace_id=trace_id_of(envelope.traceparent),
    )


def dead_letter_record(stored: StoredDeadLetter, *, subjects: SubjectMap) -> AuditRecord:
    """The record of a dead letter: why it failed, and the original's ids and body.

    The original may be unreadable (that is often why it is a dead letter), so
    its ids come from its CloudEvents attributes as far as they can be read
    (any header case, percent-encoded or as v1 wrote them, structured mode),
    and its order from its body when that can be read, else from its
    correlation id.
    """
    letter = stored.letter
    headers = letter.original_headers
    order_ref: str | None = None
    try:
        decoded = decode_message(letter.original_subject, headers, letter.original_body, subjects)
    except ContractError:
        decoded = None
    if decoded is not None:
        order_ref = order_ref_of(decoded.message)
    attributes = attributes_of(headers, letter.original_body)
    correlation_id = attributes.get("correlationid")
    failed_at = letter.failed_at.astimezone(UTC)
    return AuditRecord(
        id=dead_letter_id(letter),
        kind=DEAD_LETTER,
        ce_type=attributes.get("type", ""),
        subject=attributes.get("subject", ""),
        order_ref=order_ref or correlation_id,
        correlation_id=correlation_id,
        causation_id=attributes.get("causationid"),
        source=attributes.get("source", ""),
        time=failed_at,
        stream=subjects.dlq_stream.name,
        stream_sequence=stored.sequence,
        nats_subject=letter.original_subject,
        body=letter.original_body,
        observation=Observation(at=failed_at),
        original_id=(
            attributes.get("id") or binding.find_header(headers, HEADER_NATS_MSG_ID.lower()) or None
        ),
        dl_service=letter.service,
        dl_consumer=letter.consumer,
        dl_reason=letter.reason,
        dl_error_type=letter.error_type,
        dl_error_message=letter.error_message,
        dl_attempts=letter.attempts,
        trace_id=trace_id_of(binding.find_header(headers, HEADER_TRACEPARENT)),
    )
