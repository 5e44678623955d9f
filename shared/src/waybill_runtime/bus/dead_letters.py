"""Dead letters: what could not be processed, kept whole so it can be replayed.

A dead letter keeps the original subject, headers and body byte for byte,
the error (type and message), the attempts made, the service and consumer
that gave up, and when. It is published before the original message is
terminated: if publishing fails, the original is redelivered instead, so no
path loses a message. On the wire it is a CloudEvent
(:mod:`waybill_runtime.bus.dead_letter_format`); letters of v1 are read too.
"""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from waybill_contracts import SubjectMap
from waybill_runtime.bus.dead_letter_format import (
    DeadLetter,
    NotADeadLetter,
    dead_letter_id,
    dead_letter_message,
    fit_within,
    read_dead_letter,
)

__all__ = [
    "DeadLetter",
    "StoredDeadLetter",
    "dead_letter_id",
    "iter_dead_letters",
    "now_utc",
    "subject_matches",
    "write_dead_letter",
]


async def write_dead_letter(
    js: JetStreamContext,
    subjects: SubjectMap,
    letter: DeadLetter,
    *,
    max_payload: int | None = None,
    timeout_s: float = 10.0,
) -> DeadLetter:
    """Publish ``letter`` to the service's dead-letter subject and wait for the ack.

    With ``max_payload`` (the server's, ``nc.max_payload``) a letter that
    would not fit is written with its body cut (:func:`fit_within`). Returns
    the letter as written.
    """
    if max_payload is not None:
        letter = fit_within(letter, max_payload)
    headers, body = dead_letter_message(letter)
    await js.publish(subjects.dlq_subject(letter.service), body, timeout=timeout_s, headers=headers)
    return letter


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
        try:
            letter = read_dead_letter(raw.headers, raw.data or b"")
        except NotADeadLetter:
            return  # not written by Waybill; nothing to replay
        if service is not None and letter.service != service:
            return
        yield StoredDeadLetter(sequence=sequence, letter=letter)
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
                    letter = read_dead_letter(msg.headers, msg.data)
                except NotADeadLetter:
                    continue  # not written by Waybill; nothing to replay
                if until is not None and letter.failed_at > until:
                    return
                if subject_filter and not subject_matches(letter.original_subject, subject_filter):
                    continue
                if service is not None and letter.service != service:
                    continue  # on the service's subject, but written by another
                yield StoredDeadLetter(sequence=msg.metadata.sequence.stream, letter=letter)
            if msgs and msgs[-1].metadata.num_pending == 0:
                return
    finally:
        await sub.unsubscribe()


def now_utc() -> datetime:
    return datetime.now(UTC)
