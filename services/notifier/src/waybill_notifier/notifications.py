"""What a customer is told, worked out from the shipment events.

A booked shipment and three tracking milestones (out for delivery,
delivered, exception) are worth telling; other milestones are not. Each
notification has an id derived from the order, the kind and the shipment,
so a redelivered or re-published event yields the same notification, and
the same id travels as the email's Message-ID and the webhook's
``webhook-id``.
"""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from waybill_contracts import fact_id
from waybill_contracts.events import MilestoneReached, ShipmentBooked
from waybill_contracts.model import MilestoneCode

__all__ = ["Notification", "NotificationKind", "from_milestone", "from_shipment_booked"]


class NotificationKind(enum.StrEnum):
    """The kinds of notification; the value is the template's name."""

    SHIPPED = "shipped"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    EXCEPTION = "exception"

    @property
    def event_name(self) -> str:
        """The webhook event type (``type`` in the payload, ``events`` in subscriptions)."""
        return "shipment.booked" if self is NotificationKind.SHIPPED else f"shipment.{self.value}"


_KIND_OF_MILESTONE = {
    MilestoneCode.OUT_FOR_DELIVERY: NotificationKind.OUT_FOR_DELIVERY,
    MilestoneCode.DELIVERED: NotificationKind.DELIVERED,
    MilestoneCode.EXCEPTION: NotificationKind.EXCEPTION,
}


class MilestoneFacts(msgspec.Struct, frozen=True, kw_only=True):
    """The tracking event a milestone notification is about."""

    code: str
    occurred_at: datetime
    location: str | None = None
    description: str | None = None


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """One thing to tell about one shipment of one order."""

    notification_id: str
    kind: NotificationKind
    order_ref: str
    shipment_id: str
    carrier: str
    tracking_number: str
    tracking_url: str | None = None
    occurred_at: datetime
    """When the fact happened (booking or milestone time)."""
    milestone: MilestoneFacts | None = None


def notification_id(order_ref: str, kind: NotificationKind, shipment_id: str) -> str:
    """The id of the notification of ``kind`` for one shipment of one order.

    ``msg_`` + 32 hex digits: the shape Standard Webhooks ids usually have, and
    free of the characters a Message-ID or a NATS key would trip over.
    """
    return "msg_" + fact_id("notification", order_ref, kind.value, shipment_id)


def from_shipment_booked(event: ShipmentBooked) -> Notification:
    """The "shipped" notification of a booked shipment."""
    shipment = event.shipment
    return Notification(
        notification_id=notification_id(
            shipment.order_ref, NotificationKind.SHIPPED, shipment.shipment_id
        ),
        kind=NotificationKind.SHIPPED,
        order_ref=shipment.order_ref,
        shipment_id=shipment.shipment_id,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        tracking_url=shipment.tracking_url,
        occurred_at=event.booked_at,
    )


def from_milestone(event: MilestoneReached) -> Notification | None:
    """The notification a milestone is worth, or None for milestones customers are not told."""
    kind = _KIND_OF_MILESTONE.get(event.milestone.code)
    if kind is None:
        return None
    milestone = event.milestone
    return Notification(
        notification_id=notification_id(event.order_ref, kind, event.shipment_id),
        kind=kind,
        order_ref=event.order_ref,
        shipment_id=event.shipment_id,
        carrier=event.carrier,
        tracking_number=event.tracking_number,
        occurred_at=milestone.occurred_at,
        milestone=MilestoneFacts(
            code=milestone.code.value,
            occurred_at=milestone.occurred_at,
            location=milestone.location,
            description=milestone.description,
        ),
    )
