"""Helpers for the runtime's bus tests: building and publishing commands.

Reading back what was stored lives in :mod:`waybill_runtime.testing.streams`.
"""

from __future__ import annotations

import msgspec
from nats.aio.client import Client as NatsClient

from waybill_contracts import Lane, Message, SubjectMap, encode, new_context
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.examples import example_of


def release_command(ref: str) -> ReleaseToWarehouse:
    """A valid release command for order ``ref``."""
    example = example_of(ReleaseToWarehouse)
    return msgspec.structs.replace(example, order=msgspec.structs.replace(example.order, ref=ref))


async def send(
    nc: NatsClient, subjects: SubjectMap, message: Message, *, lane: Lane = Lane.STANDARD
) -> str:
    """Publish ``message`` as the orchestrator would, on ``lane``; returns its id."""
    context = new_context(message, source="orchestrator", lane=lane)
    encoded = encode(message, context, subjects)
    await nc.jetstream().publish(encoded.subject, encoded.body, headers=dict(encoded.headers))
    return context.id
