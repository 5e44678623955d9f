"""Events about shipments, customer notifications and exceptions for ops."""

from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import Meta

from waybill_contracts.messages import Event
from waybill_contracts.model import (
    BatchId,
    Carrier,
    FreightDiscrepancy,
    FreightMatch,
    Milestone,
    Money,
    NotificationChannel,
    OrderRef,
    Shipment,
    ShipmentId,
    TrackingNumber,
    UtcDateTime,
)
from waybill_contracts.services import Service

# --- shipment -----------------------------------------------------------------------


class ShipmentBooked(Event, frozen=True, kw_only=True):
    """A label was bought: carrier, tracking number, label and cost are known."""

    aggregate: ClassVar[str] = "shipment"
    name: ClassVar[str] = "booked"
    publishers: ClassVar[tuple[Service, ...]] = (Service.CARRIER_ROUTER,)

    shipment: Annotated[Shipment, Meta(description="The booked shipment.")]
    booked_at: Annotated[UtcDateTime, Meta(description="When the label was bought.")]

    def business_key(self) -> str:
        return self.shipment.shipment_id

    def correlation_key(self) -> str:
        return self.shipment.order_ref


class ShipmentBookingFailed(Event, frozen=True, kw_only=True):
    """No label could be bought with the carriers tried."""

    aggregate: ClassVar[str] = "shipment"
    name: ClassVar[str] = "booking_failed"
    publishers: ClassVar[tuple[Service, ...]] = (Service.CARRIER_ROUTER,)

    shipment_id: ShipmentId
    order_ref: OrderRef
    carriers_tried: Annotated[tuple[str, ...], Meta(description="Carriers tried, in order.")]
    reason: Annotated[str, Meta(description="Why the last attempt failed.")]
    retryable: Annotated[bool, Meta(description="Whether trying later may succeed.")]
    failed_at: Annotated[UtcDateTime, Meta(description="When the router gave up.")]

    def business_key(self) -> str:
        return self.shipment_id

    def correlation_key(self) -> str:
        return self.order_ref


class ShipmentVoided(Event, frozen=True, kw_only=True):
    """A bought label was cancelled with the carrier."""

    aggregate: ClassVar[str] = "shipment"
    name: ClassVar[str] = "voided"
    publishers: ClassVar[tuple[Service, ...]] = (Service.CARRIER_ROUTER,)

    shipment_id: ShipmentId
    order_ref: OrderRef
    carrier: Carrier
    tracking_number: TrackingNumber
    refund: Annotated[Money | None, Meta(description="Refund promised, if any.")] = None
    voided_at: Annotated[UtcDateTime, Meta(description="When the carrier confirmed.")]

    def business_key(self) -> str:
        return self.shipment_id

    def correlation_key(self) -> str:
        return self.order_ref


class ShipmentVoidRefused(Event, frozen=True, kw_only=True):
    """The carrier refused to void a label (already scanned): it stays bought and billed."""

    aggregate: ClassVar[str] = "shipment"
    name: ClassVar[str] = "void_refused"
    publishers: ClassVar[tuple[Service, ...]] = (Service.CARRIER_ROUTER,)

    shipment_id: ShipmentId
    order_ref: OrderRef
    carrier: Carrier
    tracking_number: TrackingNumber
    reason: Annotated[str, Meta(min_length=1, description="The carrier's reason.")]
    refused_at: Annotated[UtcDateTime, Meta(description="When the carrier refused.")]

    def business_key(self) -> str:
        return self.shipment_id

    def correlation_key(self) -> str:
        return self.order_ref


class MilestoneReached(Event, frozen=True, kw_only=True):
    """A carrier reported tracking progress for a shipment."""

    aggregate: ClassVar[str] = "shipment"
    name: ClassVar[str] = "milestone_reached"
    publishers: ClassVar[tuple[Service, ...]] = (Service.CARRIER_ROUTER,)

    shipment_id: ShipmentId
    order_ref: OrderRef
    carrier: Carrier
    tracking_number: TrackingNumber
    milestone: Annotated[Milestone, Meta(description="What happened.")]

    def business_key(self) -> str:
        return self.shipment_id

    def correlation_key(self) -> str:
        return self.order_ref


# --- notifications and exceptions ---------------------------------------------------


class FreightInvoiceReconciled(Event, frozen=True, kw_only=True):
    """A carrier's freight invoice was checked against the labels booked and their quotes."""

    aggregate: ClassVar[str] = "freight"
    name: ClassVar[str] = "invoice_reconciled"
    publishers: ClassVar[tuple[Service, ...]] = (Service.CARRIER_ROUTER,)

    reconciliation_id: BatchId
    carrier: Carrier
    invoice_id: Annotated[
        str, Meta(min_length=1, max_length=128, description="The carrier's id of the invoice.")
    ]
    page: Annotated[
        int,
        Meta(ge=1, description="A large invoice is told in pages, from 1; counts are the page's."),
    ] = 1
    last_page: Annotated[bool, Meta(description="True on the invoice's final page.")] = True
    lines: Annotated[int, Meta(ge=0, description="Lines (shipments) on this page.")]
    matched: Annotated[int, Meta(ge=0, description="Lines billed as quoted, within tolerance.")]
    matched_total: Annotated[
        Money | None, Meta(description="What the matched lines bill in all; none if no line.")
    ] = None
    matched_lines: Annotated[
        tuple[FreightMatch, ...],
        Meta(description="The matched lines: the shipment, its order, quoted and billed."),
    ] = ()
    discrepancies: Annotated[
        tuple[FreightDiscrepancy, ...],
        Meta(description="Lines over the tolerance, for no known label, or unreadable."),
    ] = ()
    reconciled_at: Annotated[UtcDateTime, Meta(description="When the invoice was checked.")]

    def business_key(self) -> str:
        return self.reconciliation_id


class NotificationSent(Event, frozen=True, kw_only=True):
    """A customer or partner was told something."""

    aggregate: ClassVar[str] = "notification"
    name: ClassVar[str] = "sent"
    publishers: ClassVar[tuple[Service, ...]] = (Service.NOTIFIER,)

    notification_id: Annotated[str, Meta(min_length=1, description="Id of this notification.")]
    order_ref: OrderRef
    channel: Annotated[NotificationChannel, Meta(description="How it was sent.")]
    template: Annotated[str, Meta(min_length=1, description="Template used (shipped, ...).")]
    recipient: Annotated[str, Meta(description="Address it went to (personal data).")]
    provider_message_id: Annotated[
        str | None, Meta(description="The provider's id of the message.")
    ] = None
    sent_at: Annotated[UtcDateTime, Meta(description="When the provider accepted it.")]

    def business_key(self) -> str:
        return self.notification_id

    def correlation_key(self) -> str:
        return self.order_ref


class NotificationFailed(Event, frozen=True, kw_only=True):
    """A notification could not be delivered (yet, or for good)."""

    aggregate: ClassVar[str] = "notification"
    name: ClassVar[str] = "failed"
    publishers: ClassVar[tuple[Service, ...]] = (Service.NOTIFIER,)

    notification_id: Annotated[str, Meta(min_length=1, description="Id of this notification.")]
    order_ref: OrderRef
    channel: Annotated[NotificationChannel, Meta(description="How it was to be sent.")]
    template: Annotated[str, Meta(min_length=1, description="Template used.")]
    reason: Annotated[str, Meta(description="The provider's error.")]
    attempts: Annotated[int, Meta(ge=1, description="Attempts made so far.")]
    permanent: Annotated[bool, Meta(description="True when no retry will follow.")]
    failed_at: Annotated[UtcDateTime, Meta(description="When the last attempt failed.")]
    recipient: Annotated[
        str | None,
        Meta(
            description="Address it was to go to (personal data); none when there was none "
            "or the writer is older than 1.1."
        ),
    ] = None

    def business_key(self) -> str:
        return self.notification_id

    def correlation_key(self) -> str:
        return self.order_ref


class ExceptionRaised(Event, frozen=True, kw_only=True):
    """Something needs a person: an order is held, a stage is late, a pick was short."""

    aggregate: ClassVar[str] = "exception"
    name: ClassVar[str] = "raised"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ORCHESTRATOR,)

    exception_id: Annotated[str, Meta(min_length=1, description="Id of this exception.")]
    order_ref: Annotated[str | None, Meta(description="Order concerned, if any.")] = None
    stage: Annotated[
        str,
        Meta(
            min_length=1,
            description="Process stage it arose in: an OrderStage value (booking, ...).",
        ),
    ]
    code: Annotated[
        str, Meta(min_length=1, description="Machine-readable cause (all_carriers_failed, ...).")
    ]
    summary: Annotated[str, Meta(min_length=1, description="One line for ops.")]
    detail: Annotated[str | None, Meta(description="More context for ops.")] = None
    order_held: Annotated[bool, Meta(description="True when the order waits for a person.")]
    raised_at: Annotated[UtcDateTime, Meta(description="When it was raised.")]

    def business_key(self) -> str:
        return self.order_ref or self.exception_id
