"""The express lane on a real nats-server: its own durable and handler slots, ahead of a backlog."""

from __future__ import annotations

import asyncio
from typing import Any

from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import release_command, send
from waybill_contracts import Lane, SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.events import WarehouseOrderAccepted
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.service import Service
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import stored_messages
from waybill_runtime.testing.waiting import eventually


async def test_an_express_command_is_handled_while_every_standard_slot_is_busy(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    service = Service("wms-bridge")
    warehouse_open = asyncio.Event()
    handled: list[tuple[str, Lane]] = []

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        if ctx.envelope.lane is Lane.STANDARD:
            await warehouse_open.wait()  # the backlog: every standard slot stays taken
        handled.append((command.order.ref, ctx.envelope.lane))
        accepted = WarehouseOrderAccepted(
            order_ref=command.order.ref,
            warehouse_order_id=f"WMS-{command.order.ref}",
            accepted_at=ctx.envelope.time,
        )
        await ctx.publish(accepted)

    async with running_service(
        service,
        nats_url=nats_url,
        subject_prefix=nats_prefix,
        consumer_concurrency=2,
        fetch_wait_s=0.2,
    ):
        for n in range(20):
            await send(nc, subjects, release_command(f"WH/OUT/{n}"))
        await send(nc, subjects, release_command("WH/OUT/RUSH"), lane=Lane.EXPRESS)

        async def done() -> list[tuple[str, Lane]]:
            return handled

        await eventually(done, until=lambda h: len(h) == 1, what="the express command handled")
        assert handled == [("WH/OUT/RUSH", Lane.EXPRESS)]
        warehouse_open.set()
        await eventually(done, until=lambda h: len(h) == 21, what="the backlog handled")
        accepted = await eventually(
            lambda: stored_messages(nc, subjects, WarehouseOrderAccepted),
            until=lambda found: len(found) == 21,
            what="an accepted event per command",
        )
    # What the handler published followed its cause's lane.
    lanes = {message.order_ref: context.lane for message, context in accepted}
    assert lanes.pop("WH/OUT/RUSH") is Lane.EXPRESS
    assert set(lanes.values()) == {Lane.STANDARD}
    # Each lane has a durable of its own, filtered on its own subject.
    info = await nc.jetstream().consumer_info(
        subjects.commands_stream.name, subjects.durable("wms-bridge", "commands", Lane.EXPRESS)
    )
    twin = subjects.on_lane(subjects.subject_for(ReleaseToWarehouse), Lane.EXPRESS)
    assert twin in (info.config.filter_subjects or [info.config.filter_subject])
