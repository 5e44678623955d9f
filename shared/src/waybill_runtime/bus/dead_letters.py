"""Dead letters: what could not be processed, kept whole so it can be replayed.

A dead letter keeps the original subject, headers and body byte for byte,
the error (type and message), the attempts made, the service and consumer
that gave up, and when. It is published before the original message is
terminated: if publishing fails, the original is redelivered instead, so no
path loses a message.
"""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from waybill_contracts import SubjectMap

REPLAYED_FROM_HEADER = "Waybill-Replayed-From"


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
    attempts: Annotated[int, msgspec.Meta(description="deliveries made, this one included")]
    failed_at: Annotated[datetime, msgspec.Meta(description="when the service gave up (UTC)")]
    original_subject: str
    original_headers: dict[str, str] = {}
    original_body: Annotated[bytes, msgspec.Meta(description="the body, byte for byte")] = b""
    original_stream: str = ""
    original_sequence: int = 0


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(DeadLetter).decode


def dead_letter_id(letter: DeadLetter) -> str:
    """Dedupe id: one dead letter per stored message, however often giving up is retried."""
    return f"dlq:{letter.original_stream}:{letter.original_sequence}:{letter.attempts}"


async def write_dead_letter(
    js: JetStreamContext, subjects: SubjectMap, letter: DeadLetter, *, timeout_s: float = 10.0
) -> None:
    """Publish ``letter`` to the service's dead-letter subject and wait for the ack."""
    await js.publish(
        subjects.dlq_subject(letter.service),
        _encode(letter),
        timeout=timeout_s,
        headers={"Nats-Msg-Id": dead_letter_id(letter), "content-type": "application/json"},
    )


class StoredDeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A dead letter as stored in the dead-letter stream, with its sequence there."""

    sequence: int
    letter: DeadLetter


def subject_matches(subject: str, pattern: str) -> bool:
    """NATS wildcard match: ``*`` is one token, ``>`` the rest; plain globs also work."""
    tokens, parts = subject.split("."), pattern.split(".")
    for index, part in enumerate(parts):
        if part == ">":
            return len(tokens) > index
        if index >= len(tokens):
            return False
        if part != "*" and not fnmatch.fnmatchcase(tokens[index], part):
            return False
    return len(tokens) == len(parts)


async def iter_dead_letters(
    js: JetStreamContext,
    subjects: SubjectMap,
    *,
    service: str | None = None,
    subject_filter: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    sequence: int | None = None,
    batch: int = 256,
) -> AsyncIterator[StoredDeadLetter]:
    """Dead letters in stream order, filtered; reads with a throw-away consumer, changes nothing."""
    stream = subjects.dlq_stream.name
    if sequence is not None:
        try:
            raw = await js.get_msg(stream, sequence)
        except NotFoundError:
            return
        yield StoredDeadLetter(sequence=sequence, letter=_decode(raw.data or b""))
        return
    filter_subject = subjects.dlq_subject(service) if service else subjects.dlq_stream.subjects[0]
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_TIME if since else DeliverPolicy.ALL,
        opt_start_time=since.astimezone(UTC) if since else None,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    info = await js.stream_info(stream)
    if info.state.messages == 0:
        return
    sub = await js.pull_subscribe(filter_subject, durable=None, stream=stream, config=config)
    try:
        while True:
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
            except TimeoutError:
                return
            for msg in msgs:
                try:
                    letter = _decode(msg.data)
                except msgspec.DecodeError:
                    continue  # not written by Waybill; nothing to replay
                if until is not None and letter.failed_at > until:
                    return
                if subject_filter and not subject_matches(letter.original_subject, subject_filter):
                    continue
                yield StoredDeadLetter(sequence=msg.metadata.sequence.stream, letter=letter)
            if msgs and msgs[-1].metadata.num_pending == 0:
                return
    finally:
        await sub.unsubscribe()


async def replay(
    js: JetStreamContext, subjects: SubjectMap, stored: StoredDeadLetter, *, keep: bool = False
) -> None:
    """Put a dead-lettered message back on its original subject, then drop the dead letter.

    The replay gets a fresh ``Nats-Msg-Id`` (the original id would be dropped as
    a duplicate inside the stream's window) but keeps ``ce-id``, so handlers'
    idempotency still recognises the message.
    """
    letter = stored.letter
    headers = dict(letter.original_headers)
    original_id = headers.get("Nats-Msg-Id") or headers.get("ce-id") or "unknown"
    headers["Nats-Msg-Id"] = f"{original_id}:replay:{stored.sequence}"
    headers[REPLAYED_FROM_HEADER] = str(stored.sequence)
    await js.publish(letter.original_subject, letter.original_body, headers=headers)
    if not keep:
        await js.delete_msg(subjects.dlq_stream.name, stored.sequence)


def now_utc() -> datetime:
    return datetime.now(UTC)
