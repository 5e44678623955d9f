"""Two orchestrators on one prefix share the work on the same orders at the same time,
with every event delivered twice: no order's state is corrupted, no command goes twice."""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack
from typing import Any

from nats.aio.client import Client as NatsClient

from tests.services.orchestrator.bus import commands, count_by_type, publish, wait_for_commands
from tests.services.orchestrator.journey import (
    POLICY,
    accepted,
    booked,
    delivery_recorded,
    milestone,
    packed,
    picked,
    released,
    shipment_recorded,
)
from waybill_contracts import SubjectMap
from waybill_contracts.events import Event
from waybill_contracts.model import MilestoneCode
from waybill_orchestrator.app import build_service
from waybill_orchestrator.stages import MAIN_LINE, Stage, rank
from waybill_orchestrator.workflow import WorkflowStore
from waybill_runtime.bus.provisioning import ensure_bucket
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.waiting import eventually

ORDERS = [f"WH/OUT/2{n:03d}" for n in range(12)]


async def publish_shuffled(nc: NatsClient, subjects: SubjectMap, batch: list[Event]) -> None:
    """Every event twice (as re-observed facts), all orders interleaved."""
    doubled = batch * 2
    random.Random(7).shuffle(doubled)
    await asyncio.gather(*(publish(nc, subjects, event) for event in doubled))


async def test_two_instances_on_one_prefix_never_corrupt_an_order(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    settings: dict[str, Any] = {
        "nats_url": nats_url,
        "subject_prefix": nats_prefix,
        "fetch_batch": 4,
        "retry_backoff_s": (0.1,),
    }
    async with AsyncExitStack() as stack:
        for _ in range(2):
            await stack.enter_async_context(running_service(build_service(), **settings))
        n = len(ORDERS)
        # Each phase only once the commands that cause its events were sent, as
        # in real life (no label is bought before BookShipment).
        await publish_shuffled(nc, subjects, [released(ref) for ref in ORDERS])
        await wait_for_commands(nc, subjects, {"ReleaseToWarehouse": n})
        await publish_shuffled(
            nc,
            subjects,
            [e for ref in ORDERS for e in (accepted(ref), picked(ref), packed(ref))],
        )
        await wait_for_commands(nc, subjects, {"BookShipment": n})
        await publish_shuffled(
            nc,
            subjects,
            [
                e
                for ref in ORDERS
                for e in (booked(ref), milestone(MilestoneCode.IN_TRANSIT, 50, ref))
            ],
        )
        await wait_for_commands(nc, subjects, {"RecordShipmentInOdoo": n})
        await publish_shuffled(
            nc,
            subjects,
            [
                e
                for ref in ORDERS
                for e in (shipment_recorded(ref), milestone(MilestoneCode.DELIVERED, 58, ref))
            ],
        )
        await wait_for_commands(nc, subjects, {"RecordDeliveryInOdoo": n})
        await publish_shuffled(nc, subjects, [delivery_recorded(ref) for ref in ORDERS])

        kv = await ensure_bucket(nc.jetstream(), subjects.kv_bucket("workflow"))
        publisher = Publisher(nc, subjects, service="tests")
        store = WorkflowStore(kv, publisher, POLICY)

        async def stages() -> list[Stage | None]:
            states = [(await store.read(ref))[0] for ref in ORDERS]
            return [state.stage if state is not None else None for state in states]

        await eventually(stages, until=lambda s: set(s) == {Stage.DELIVERED}, what="all delivered")

    found = await commands(nc, subjects)
    for ref in ORDERS:
        assert count_by_type(found, ref) == {
            "ReleaseToWarehouse": 1,
            "BookShipment": 1,
            "RecordShipmentInOdoo": 1,
            "RecordDeliveryInOdoo": 1,
        }, ref
        state, _ = await store.read(ref)
        assert state is not None
        # Forward only: a strictly rising walk down the main line (a stage may be
        # skipped when a later fact was handled first), from release to delivered.
        walked = [step.to_stage for step in state.timeline]
        assert [rank(stage) for stage in walked] == sorted({rank(stage) for stage in walked}), ref
        assert (walked[0], walked[-1]) == (MAIN_LINE[0], Stage.DELIVERED), ref
        assert state.seq >= len(state.timeline)
        assert state.outbox == ()
        assert state.last_milestone is not None
        assert state.last_milestone.code == MilestoneCode.DELIVERED
