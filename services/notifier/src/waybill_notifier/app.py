"""The notifier service: customers told by email, partners by signed webhooks, once each.

In: ``OrderReleased`` (who the customer is), ``ShipmentBooked`` and
``MilestoneReached`` events; of returns ``ReturnRequested``, ``ReturnLabelBooked``,
``ReturnParcelOverdue`` and ``ReturnCompleted``. Out: ``NotificationSent`` / ``NotificationFailed``
events, emails through SMTP, Standard Webhooks POSTs. It only consumes
events, so nothing in shipping ever waits for it.
``waybill run notifier`` starts it through :func:`main`.
"""

from __future__ import annotations

from waybill_contracts.events import (
    MilestoneReached,
    OrderReleased,
    ReturnCompleted,
    ReturnLabelBooked,
    ReturnParcelOverdue,
    ReturnRequested,
    ShipmentBooked,
)
from waybill_notifier.config import NotifierSettings
from waybill_notifier.notifier import NOTIFIER, open_notifier
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.declaration import Bucket, Partner
from waybill_runtime.service import Service

__all__ = ["main", "service"]

service = Service(
    "notifier",
    settings_type=NotifierSettings,
    description="Tells customers and subscribed partners about their shipments",
    # contacts (personal data) and tracking pages expire; workflow keeps disabled endpoints.
    buckets=(Bucket("workflow"), Bucket("contacts"), Bucket("tracking")),
    partners=(
        Partner("smtp", settings={"smtp_host": "$host", "smtp_port": "$port"}),
        # Outbound Standard Webhooks go to whoever subscribes; locally, one receiver.
        Partner(
            "webhook-receiver",
            settings={
                "webhook_subscriptions": '[{"name": "$name", "url": "$url", "secret": "$secret"}]'
            },
        ),
    ),
    # First deployed onto a running installation, the notifier must not mail
    # customers about every shipment still in the events stream.
    new_events_only=True,
    # Locally a provider outage should not delay mail by minutes.
    local_settings={"retry_backoff_s": "0.5,1,2,5"},
)
service.resource(NOTIFIER)(open_notifier)


@service.handles(OrderReleased)
async def order_released(event: OrderReleased, ctx: HandlerContext[NotifierSettings]) -> None:
    """Remember the customer's contact and the order's channel."""
    await ctx.resource(NOTIFIER).order_released(event)


@service.handles(ShipmentBooked)
async def shipment_booked(event: ShipmentBooked, ctx: HandlerContext[NotifierSettings]) -> None:
    """Send the "shipped" email and webhooks."""
    await ctx.resource(NOTIFIER).shipment_booked(event, ctx)


@service.handles(MilestoneReached)
async def milestone_reached(event: MilestoneReached, ctx: HandlerContext[NotifierSettings]) -> None:
    """Out for delivery, delivered and exception: email and webhooks; others ignored."""
    await ctx.resource(NOTIFIER).milestone_reached(event, ctx)


@service.handles(ReturnRequested)
async def return_requested(event: ReturnRequested, ctx: HandlerContext[NotifierSettings]) -> None:
    """Who asked for a return (used when the order's release is no longer remembered)."""
    await ctx.resource(NOTIFIER).return_requested(event)


@service.handles(ReturnLabelBooked)
async def return_label_booked(
    event: ReturnLabelBooked, ctx: HandlerContext[NotifierSettings]
) -> None:
    """The customer's return label: email and webhooks."""
    await ctx.resource(NOTIFIER).return_event(event, ctx)


@service.handles(ReturnParcelOverdue)
async def return_parcel_overdue(
    event: ReturnParcelOverdue, ctx: HandlerContext[NotifierSettings]
) -> None:
    """A reminder that the return parcel has not arrived: email and webhooks."""
    await ctx.resource(NOTIFIER).return_event(event, ctx)


@service.handles(ReturnCompleted)
async def return_completed(event: ReturnCompleted, ctx: HandlerContext[NotifierSettings]) -> None:
    """The credit confirmation of a return (none for a return closed without a credit)."""
    await ctx.resource(NOTIFIER).return_event(event, ctx)


main = service.main

if __name__ == "__main__":
    raise SystemExit(main())
