"""The notifier service: customers told by email, partners by signed webhooks, once each.

In: ``OrderReleased`` (who the customer is), ``ShipmentBooked`` and
``MilestoneReached`` events. Out: ``NotificationSent`` / ``NotificationFailed``
events, emails through SMTP, Standard Webhooks POSTs. It only consumes
events, so nothing in shipping ever waits for it.
``waybill run notifier`` starts it through :func:`main`.
"""

from __future__ import annotations

from waybill_contracts.events import MilestoneReached, OrderReleased, ShipmentBooked
from waybill_notifier.config import NotifierSettings
from waybill_notifier.notifier import NOTIFIER, open_notifier
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.service import Service

__all__ = ["main", "service"]

service = Service(
    "notifier",
    settings_type=NotifierSettings,
    description="Tells customers and subscribed partners about their shipments",
    # contacts (personal data) and tracking pages expire; workflow keeps disabled endpoints.
    buckets=("workflow", "contacts", "tracking"),
    # First deployed onto a running installation, the notifier must not mail
    # customers about every shipment still in the events stream.
    new_events_only=True,
)
service.uses(open_notifier)


@service.handles(OrderReleased)
async def order_released(event: OrderReleased, ctx: HandlerContext) -> None:
    """Remember the customer's contact and the order's channel."""
    assert ctx.runtime is not None
    await ctx.runtime.resource(NOTIFIER).order_released(event)


@service.handles(ShipmentBooked)
async def shipment_booked(event: ShipmentBooked, ctx: HandlerContext) -> None:
    """Send the "shipped" email and webhooks."""
    assert ctx.runtime is not None
    await ctx.runtime.resource(NOTIFIER).shipment_booked(event, ctx)


@service.handles(MilestoneReached)
async def milestone_reached(event: MilestoneReached, ctx: HandlerContext) -> None:
    """Out for delivery, delivered and exception: email and webhooks; others ignored."""
    assert ctx.runtime is not None
    await ctx.runtime.resource(NOTIFIER).milestone_reached(event, ctx)


main = service.main

if __name__ == "__main__":
    raise SystemExit(main())
