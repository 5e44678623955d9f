"""What a customer is told, worked out from the shipment and return events.

A booked shipment and three tracking milestones (out for delivery,
delivered, exception) are worth telling; other milestones are not. Of a
return (issue 20): its label, a reminder when the parcel is late, and the
credit once issued. Each
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
from waybill_contracts.events import (
    MilestoneReached,
    ReturnCompleted,
    ReturnLabelBooked,
    ReturnParcelOverdue,
    ShipmentBooked,
)
from waybill_contracts.model import MilestoneCode

__all__ = [
    "Notification",
    "NotificationKind",
    "from_milestone",
    "from_return_completed",
    "from_return_label",
    "from_return_overdue",
    "from_shipment_booked",
]


class NotificationKind(enum.StrEnum):
    """The kinds of notification; the value is the template's name."""

    SHIPPED = "shipped"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    RETURN_LABEL = "return_label"
    RETURN_REMINDER = "return_reminder"
    RETURN_CREDITED = "return_credited"

    @property
    def event_name(self) -> str:
        """The webhook event type (``type`` in the payload, ``events`` in subscriptions)."""
        return _EVENT_NAMES.get(self, f"shipment.{self.value}")


_EVENT_NAMES = {
    NotificationKind.SHIPPED: "shipment.booked",
    NotificationKind.RETURN_LABEL: "return.label_booked",
    NotificationKind.RETURN_REMINDER: "return.parcel_overdue",
    NotificationKind.RETURN_CREDITED: "return.credited",
}


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
    label_url: str | None = None
    """A return label's document, for the customer to print."""
    credit_note: str | None = None
    """A return's credit note (its name in Odoo) and what it credits, e.g. ``12.50 EUR``."""
    credited: str | None = None


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


def from_return_label(event: ReturnLabelBooked) -> Notification:
    """The customer's return label (the label's shipment id is the return label id)."""
    label = event.label
    return Notification(
        notification_id=notification_id(
            label.order_ref, NotificationKind.RETURN_LABEL, label.shipment_id
        ),
        kind=NotificationKind.RETURN_LABEL,
        order_ref=label.order_ref,
        shipment_id=label.shipment_id,
        carrier=label.carrier,
        tracking_number=label.tracking_number,
        tracking_url=label.tracking_url,
        label_url=label.label_ref,
        occurred_at=event.booked_at,
    )


def from_return_overdue(event: ReturnParcelOverdue) -> Notification:
    """A reminder that the return parcel has not reached the warehouse (one per reminder)."""
    label = event.label
    return Notification(
        notification_id=notification_id(
            event.order_ref,
            NotificationKind.RETURN_REMINDER,
            f"{label.shipment_id}#{event.reminder}",
        ),
        kind=NotificationKind.RETURN_REMINDER,
        order_ref=event.order_ref,
        shipment_id=label.shipment_id,
        carrier=label.carrier,
        tracking_number=label.tracking_number,
        tracking_url=label.tracking_url,
        label_url=label.label_ref,
        occurred_at=event.overdue_at,
    )


def from_return_completed(event: ReturnCompleted) -> Notification | None:
    """The credit confirmation; None for a return closed without a credit."""
    if event.credited is None or event.credit_note_ref is None:
        return None
    return Notification(
        notification_id=notification_id(
            event.order_ref, NotificationKind.RETURN_CREDITED, event.return_id
        ),
        kind=NotificationKind.RETURN_CREDITED,
        order_ref=event.order_ref,
        shipment_id=event.return_id,
        carrier="",
        tracking_number="",
        credit_note=event.credit_note_ref,
        credited=f"{event.credited.amount} {event.credited.currency}",
        occurred_at=event.completed_at,
    )
