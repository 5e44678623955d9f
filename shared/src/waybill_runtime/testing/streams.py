"""Reading what a test's services stored in JetStream, without disturbing them.

Messages are read by sequence (``get_msg``): nothing is consumed, so the
services' own consumers see exactly what they would without the test.
"""

from __future__ import annotations

from typing import TypeVar

from nats.aio.client import Client as NatsClient
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from waybill_contracts import Decoded, Message, MessageContext, StreamSpec, SubjectMap, decode
from waybill_runtime.bus.dead_letter_format import read_dead_letter
from waybill_runtime.bus.dead_letters import DeadLetter
from waybill_runtime.testing.waiting import eventually

M = TypeVar("M", bound=Message)


async def _raw_messages(nc: NatsClient, stream: str) -> list[tuple[str, dict[str, str], bytes]]:
    js = nc.jetstream()
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    if info.state.messages == 0:
        return []
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            raw = await js.get_msg(stream, seq)
        except NotFoundError:
            continue  # deleted (a replayed dead letter, say)
        found.append((raw.subject or "", dict(raw.headers or {}), raw.data or b""))
    return found


async def stored_in(nc: NatsClient, subjects: SubjectMap, stream: StreamSpec) -> list[Decoded]:
    """Every message in ``stream`` (events or commands), decoded, oldest first."""
    return [
        decode(subject, headers, body, subjects)
        for subject, headers, body in await _raw_messages(nc, stream.name)
    ]


async def stored_messages(
    nc: NatsClient, subjects: SubjectMap, message_type: type[M]
) -> list[tuple[M, MessageContext]]:
    """Every stored message of ``message_type`` with its context, oldest first."""
    subject = subjects.subject_for(message_type)
    stream = next(
        s
        for s in (subjects.events_stream, subjects.commands_stream)
        if subject.startswith(s.subjects[0].removesuffix(">"))
    )
    return [
        (d.message, d.context)
        for d in await stored_in(nc, subjects, stream)
        if isinstance(d.message, message_type)
    ]


async def dead_letters(nc: NatsClient, subjects: SubjectMap) -> list[DeadLetter]:
    """Every dead letter stored, oldest first."""
    return [
        read_dead_letter(headers, body)
        for _subject, headers, body in await _raw_messages(nc, subjects.dlq_stream.name)
    ]


async def stream_count(nc: NatsClient, stream: str, subject: str | None = None) -> int:
    """Messages stored in ``stream`` (on ``subject`` when given)."""
    js = nc.jetstream()
    try:
        info = await js.stream_info(stream, subjects_filter=subject)
    except NotFoundError:
        return 0
    if subject is None:
        return info.state.messages
    return sum((info.state.subjects or {}).values())


async def unsettled(
    nc: NatsClient, subjects: SubjectMap, service: str, stream_key: str = "commands"
) -> int:
    """Messages ``service`` has not settled on its ``stream_key`` consumer: pending plus unacked.

    -1 while the consumer does not exist yet (the service has not provisioned).
    """
    stream = getattr(subjects, f"{stream_key}_stream").name
    js = nc.jetstream()
    try:
        info = await js.consumer_info(stream, subjects.durable(service, stream_key))
    except NotFoundError:
        return -1
    waiting = (info.num_pending or 0) + (info.num_ack_pending or 0)
    if waiting:
        return waiting
    # The server acknowledges a publish before it counts the message as pending
    # for the stream's consumers: a message sent just now can show 0 pending.
    # So 0 is trusted only when no message for this consumer is stored after
    # the last one it was handed.
    after = (info.delivered.stream_seq if info.delivered else 0) + 1
    not_counted = 0
    for subject in info.config.filter_subjects or [info.config.filter_subject or ">"]:
        not_counted += await _stored_from(js, stream, after, subject)
    return not_counted


async def _stored_from(js: JetStreamContext, stream: str, seq: int, subject: str) -> int:
    """1 when ``stream`` holds a message on ``subject`` at or after ``seq``, else 0."""
    try:
        await js.get_msg(stream, seq, subject=subject, next=True)
    except NotFoundError:
        return 0
    return 1


async def settled(
    nc: NatsClient, subjects: SubjectMap, service: str, stream_key: str = "commands"
) -> None:
    """Wait until ``service`` has settled every message of its ``stream_key`` consumer."""
    await eventually(
        lambda: unsettled(nc, subjects, service, stream_key),
        until=lambda n: n == 0,
        what=f"{service} to settle every message of its {stream_key} consumer",
    )
