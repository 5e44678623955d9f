"""Announcing a tracked shipment's milestone on the bus, whichever way it was learnt."""

from __future__ import annotations

from waybill_carrier_router.tracking_book import Announce, TrackedShipment
from waybill_contracts import fact_id
from waybill_contracts.events import MilestoneReached
from waybill_contracts.model import Milestone
from waybill_runtime.bus.publisher import Publisher

__all__ = ["milestone_announcer", "milestone_fact_id"]


def milestone_fact_id(tracked: TrackedShipment, milestone: Milestone) -> str:
    """The message id of a milestone: the same scan always gets the same id, so one learnt
    from a webhook and again from reconciliation is stored once."""
    return fact_id(
        "shipment.milestone",
        tracked.carrier,
        tracked.tracking_number,
        milestone.code.value,
        milestone.occurred_at.isoformat(),
    )


def milestone_announcer(publisher: Publisher) -> Announce:
    """Publishes ``MilestoneReached`` for a shipment's milestone."""

    async def announce(tracked: TrackedShipment, milestone: Milestone) -> None:
        reached = MilestoneReached(
            shipment_id=tracked.shipment_id,
            order_ref=tracked.order_ref,
            carrier=tracked.carrier,
            tracking_number=tracked.tracking_number,
            milestone=milestone,
        )
        await publisher.publish(reached, fact_id=milestone_fact_id(tracked, milestone))

    return announce
