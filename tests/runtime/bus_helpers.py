"""Helpers for the runtime's bus tests: publishing commands, reading streams."""

from __future__ import annotations

import msgspec
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from waybill_contracts import Message, SubjectMap, encode, new_context
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.examples import example_of
from waybill_runtime.bus.dead_letters import DeadLetter


def release_command(ref: str) -> ReleaseToWarehouse:
    """A valid release command for order ``ref``."""
    example = example_of(ReleaseToWarehouse)
    return msgspec.structs.replace(example, order=msgspec.structs.replace(example.order, ref=ref))


async def send(nc: NatsClient, subjects: SubjectMap, message: Message) -> str:
    """Publish ``message`` as the orchestrator would; returns its id."""
    context = new_context(message, source="orchestrator")
    encoded = encode(message, context, subjects)
    await nc.jetstream().publish(encoded.subject, encoded.body, headers=dict(encoded.headers))
    return context.id


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


async def dead_letters(nc: NatsClient, subjects: SubjectMap) -> list[DeadLetter]:
    """Every dead letter stored, oldest first."""
    js = nc.jetstream()
    try:
        info = await js.stream_info(subjects.dlq_stream.name)
    except NotFoundError:
        return []
    if info.state.messages == 0:
        return []
    letters = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            raw = await js.get_msg(subjects.dlq_stream.name, seq)
        except NotFoundError:
            continue
        letters.append(msgspec.json.decode(raw.data or b"", type=DeadLetter))
    return letters


async def open_commands(nc: NatsClient, subjects: SubjectMap, service: str) -> int:
    """Commands ``service`` has not settled yet: pending plus delivered but unacknowledged."""
    try:
        info = await nc.jetstream().consumer_info(
            subjects.commands_stream.name, subjects.durable(service, "commands")
        )
    except NotFoundError:
        return -1
    return (info.num_pending or 0) + (info.num_ack_pending or 0)
