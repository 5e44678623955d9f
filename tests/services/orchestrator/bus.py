"""Helpers for the orchestrator's NATS tests: publish events as the adapters would, and
read what the orchestrator stored on the command and event streams without consuming it."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import nats
from nats.aio.client import Client as NatsClient

from waybill_contracts import (
    Decoded,
    Message,
    StreamSpec,
    SubjectMap,
    encode,
    new_context,
)
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.testing.streams import stored_in
from waybill_runtime.testing.waiting import eventually


class Clock:
    """The test's clock for a store or a sweep: it moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def unreachable_publisher(nats_url: str, subjects: SubjectMap) -> Publisher:
    """The runtime's publisher on a connection that is gone: every publish fails as when
    NATS refuses it (the workflow bucket, on the test's own connection, still works)."""
    gone = await nats.connect(nats_url)
    await gone.close()
    return Publisher(gone, subjects, service="orchestrator")


async def publish(
    nc: NatsClient, subjects: SubjectMap, message: Message, *, source: str = "wms-bridge"
) -> str:
    """Publish ``message`` with a fresh id, as its adapter would; returns the id."""
    context = new_context(message, source=source)
    encoded = encode(message, context, subjects)
    await nc.jetstream().publish(encoded.subject, encoded.body, headers=dict(encoded.headers))
    return context.id


async def stored(nc: NatsClient, subjects: SubjectMap, stream: StreamSpec) -> list[Decoded]:
    """Every message in ``stream``, oldest first (nothing is consumed)."""
    return await stored_in(nc, subjects, stream)


async def commands(nc: NatsClient, subjects: SubjectMap) -> list[Decoded]:
    return await stored(nc, subjects, subjects.commands_stream)


async def events(nc: NatsClient, subjects: SubjectMap) -> list[Decoded]:
    return await stored(nc, subjects, subjects.events_stream)


def count_by_type(found: list[Decoded], order_ref: str | None = None) -> Counter[str]:
    """How many messages of each type (about ``order_ref``, when given)."""
    return Counter(
        type(d.message).__name__
        for d in found
        if order_ref is None or d.context.correlation_id == order_ref
    )


async def wait_for_commands(
    nc: NatsClient, subjects: SubjectMap, wanted: dict[str, int], *, order_ref: str | None = None
) -> list[Decoded]:
    """Wait until the command stream holds at least ``wanted`` (type name -> count)."""

    async def probe() -> list[Decoded]:
        return await commands(nc, subjects)

    def enough(found: list[Decoded]) -> bool:
        counts = count_by_type(found, order_ref)
        return all(counts[name] >= n for name, n in wanted.items())

    return await eventually(probe, until=enough, what=f"commands {wanted} for {order_ref}")
