"""Reading what a test's services stored in JetStream, without disturbing them."""

from __future__ import annotations

from typing import TypeVar

from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from waybill_contracts import Message, MessageContext, SubjectMap, decode

M = TypeVar("M", bound=Message)


async def stored_messages(
    nc: NatsClient, subjects: SubjectMap, message_type: type[M]
) -> list[tuple[M, MessageContext]]:
    """Every stored message of ``message_type``, oldest first, read by a throw-away consumer."""
    subject = subjects.subject_for(message_type)
    stream_name = _stream_of(subjects, subject)
    js = nc.jetstream()
    try:
        info = await js.stream_info(stream_name, subjects_filter=subject)
    except NotFoundError:
        return []
    if not sum((info.state.subjects or {}).values()):
        return []
    sub = await js.pull_subscribe(
        subject,
        durable=None,
        stream=stream_name,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=10.0,
            mem_storage=True,
        ),
    )
    found: list[tuple[M, MessageContext]] = []
    try:
        while True:
            msgs = await sub.fetch(256, timeout=2.0)
            for msg in msgs:
                decoded = decode(msg.subject, msg.headers, msg.data, subjects)
                assert isinstance(decoded.message, message_type)
                found.append((decoded.message, decoded.context))
            if not msgs or msgs[-1].metadata.num_pending == 0:
                return found
    finally:
        await sub.unsubscribe()


def _stream_of(subjects: SubjectMap, subject: str) -> str:
    for stream in (subjects.events_stream, subjects.commands_stream):
        if subject.startswith(stream.subjects[0].removesuffix(">")):
            return stream.name
    raise ValueError(f"{subject} is in no Waybill stream")
