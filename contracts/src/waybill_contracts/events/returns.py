"""Events of the return workflow (issue 20): requested, label bought and voided, parcel
received and inspected, stock posted, credited, completed or cancelled. Since 1.1.

Everything about a return is correlated by its return id (one trace per
return); the order it comes from is named in ``order_ref``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import Meta

from waybill_contracts.messages import Event
from waybill_contracts.model import (
    Address,
    Carrier,
    Money,
    OdooPickingId,
    OdooSaleOrderId,
    OrderRef,
    Party,
    PositiveInt,
    Shipment,
    UtcDateTime,
    WeightKg,
)
from waybill_contracts.returns import InspectedLine, ReturnId, ReturnLabelId, ReturnLine
from waybill_contracts.services import Service

_AGGREGATE = "return"
_WarehouseReturnId = Annotated[
    str, Meta(min_length=1, max_length=128, description="The warehouse's id of the return.")
]
_ReturnPickingId = Annotated[
    PositiveInt | None,
    Meta(description="Odoo stock.picking id of the return (incoming) picking, if one exists."),
]


class ReturnEvent(Event, frozen=True, kw_only=True):
    """What every return event carries: the return, keyed and correlated by its id."""

    aggregate: ClassVar[str] = _AGGREGATE

    return_id: ReturnId

    def business_key(self) -> str:
        return self.return_id


class ReturnRequested(ReturnEvent, frozen=True, kw_only=True):
    """A customer sends delivered goods back: a return picking made in Odoo from the
    delivered one, or an RMA taken by the gateway's API (no return picking yet)."""

    name: ClassVar[str] = "requested"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ODOO_GATEWAY,)

    order_ref: OrderRef
    odoo_picking_id: Annotated[OdooPickingId, Meta(description="The delivered picking.")]
    odoo_return_picking_id: _ReturnPickingId = None
    odoo_sale_order_id: OdooSaleOrderId = None
    lines: Annotated[tuple[ReturnLine, ...], Meta(min_length=1, description="What comes back.")]
    customer: Annotated[Party, Meta(description="Who sends it back (as on the order).")]
    pickup_address: Annotated[
        Address, Meta(description="Where the parcel leaves from: the delivery address.")
    ]
    warehouse: Annotated[str | None, Meta(description="Warehouse code it goes back to.")] = None
    weight_kg: Annotated[WeightKg, Meta(description="Expected weight of the parcel back.")]
    carrier: Annotated[
        Carrier | None, Meta(description="The carrier that delivered it, preferred for the label.")
    ] = None
    requested_at: Annotated[UtcDateTime, Meta(description="When the return was requested.")]


class ReturnLabelBooked(ReturnEvent, frozen=True, kw_only=True):
    """A return label was bought; the customer gets it."""

    name: ClassVar[str] = "label_booked"
    publishers: ClassVar[tuple[Service, ...]] = (Service.CARRIER_ROUTER,)

    label: Annotated[Shipment, Meta(description="The label: shipment_id is the return label id.")]
    booked_at: Annotated[UtcDateTime, Meta(description="When it was bought.")]


class ReturnLabelBookingFailed(ReturnEvent, frozen=True, kw_only=True):
    """No carrier sold a return label."""

    name: ClassVar[str] = "label_booking_failed"
    publishers: ClassVar[tuple[Service, ...]] = (Service.CARRIER_ROUTER,)

    label_id: ReturnLabelId
    reason: Annotated[str, Meta(min_length=1, description="Why, per carrier, in words.")]
    failed_at: Annotated[UtcDateTime, Meta(description="When the router gave up.")]


class ReturnLabelVoided(ReturnEvent, frozen=True, kw_only=True):
    """A return label was voided (cancelled before use, or the parcel never came)."""

    name: ClassVar[str] = "label_voided"
    publishers: ClassVar[tuple[Service, ...]] = (Service.CARRIER_ROUTER,)

    label_id: ReturnLabelId
    voided_at: Annotated[UtcDateTime, Meta(description="When the carrier confirmed.")]


class ReturnReceived(ReturnEvent, frozen=True, kw_only=True):
    """The warehouse received the parcel at its dock (inspection follows)."""

    name: ClassVar[str] = "received"
    publishers: ClassVar[tuple[Service, ...]] = (Service.WMS_BRIDGE,)

    warehouse_return_id: _WarehouseReturnId
    tracking_number: Annotated[
        str | None, Meta(description="The tracking number the dock matched.")
    ] = None
    received_at: Annotated[UtcDateTime, Meta(description="When the dock received it.")]


class ReturnInspected(ReturnEvent, frozen=True, kw_only=True):
    """The warehouse inspected what came back, line by line."""

    name: ClassVar[str] = "inspected"
    publishers: ClassVar[tuple[Service, ...]] = (Service.WMS_BRIDGE,)

    warehouse_return_id: _WarehouseReturnId
    lines: Annotated[tuple[InspectedLine, ...], Meta(min_length=1, description="Per line.")]
    inspected_at: Annotated[UtcDateTime, Meta(description="When inspection finished.")]


class ReturnStockPosted(ReturnEvent, frozen=True, kw_only=True):
    """Odoo received the return: resellable goods back in stock, damaged ones scrapped."""

    name: ClassVar[str] = "stock_posted"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ODOO_GATEWAY,)

    order_ref: OrderRef
    odoo_return_picking_id: Annotated[PositiveInt, Meta(description="The return picking done.")]
    lines: Annotated[tuple[InspectedLine, ...], Meta(description="What was posted, per line.")]
    posted_at: Annotated[UtcDateTime, Meta(description="When Odoo posted it.")]


class CreditNoteIssued(ReturnEvent, frozen=True, kw_only=True):
    """Odoo issued (posted) the credit note for the accepted lines."""

    name: ClassVar[str] = "credit_note_issued"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ODOO_GATEWAY,)

    order_ref: OrderRef
    odoo_credit_note_id: Annotated[PositiveInt, Meta(description="Odoo account.move id.")]
    credit_note_ref: Annotated[
        str, Meta(min_length=1, max_length=128, description="Its name in Odoo (RINV/...).")
    ]
    amount: Annotated[Money, Meta(description="Total credited, taxes included.")]
    issued_at: Annotated[UtcDateTime, Meta(description="When Odoo posted it.")]


class CreditNoteRefused(ReturnEvent, frozen=True, kw_only=True):
    """Odoo refused the credit note (no invoice to reverse, a locked period, ...)."""

    name: ClassVar[str] = "credit_note_refused"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ODOO_GATEWAY,)

    order_ref: OrderRef
    reason: Annotated[str, Meta(min_length=1, description="Odoo's reason, in words.")]
    refused_at: Annotated[UtcDateTime, Meta(description="When Odoo refused it.")]


class ReturnCancelled(ReturnEvent, frozen=True, kw_only=True):
    """The return was cancelled (the Odoo return picking or the RMA)."""

    name: ClassVar[str] = "cancelled"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ODOO_GATEWAY,)

    order_ref: OrderRef
    reason: Annotated[str | None, Meta(description="Why, if said.")] = None
    cancelled_at: Annotated[UtcDateTime, Meta(description="When it was cancelled.")]


class ReturnParcelOverdue(ReturnEvent, frozen=True, kw_only=True):
    """The parcel has not reached the warehouse in time: the customer is reminded."""

    name: ClassVar[str] = "parcel_overdue"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ORCHESTRATOR,)

    order_ref: OrderRef
    label: Annotated[Shipment, Meta(description="The return label the customer holds.")]
    reminder: Annotated[PositiveInt, Meta(description="Which reminder this is, from 1.")]
    overdue_at: Annotated[UtcDateTime, Meta(description="When the deadline passed.")]


class ReturnCompleted(ReturnEvent, frozen=True, kw_only=True):
    """The return is over: stock posted and the accepted lines credited."""

    name: ClassVar[str] = "completed"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ORCHESTRATOR,)

    order_ref: OrderRef
    lines: Annotated[tuple[InspectedLine, ...], Meta(description="What inspection found.")]
    credit_note_ref: Annotated[str | None, Meta(description="The credit note, if any.")] = None
    credited: Annotated[Money | None, Meta(description="Total credited, if any.")] = None
    completed_at: Annotated[UtcDateTime, Meta(description="When it completed.")]


RETURN_EVENT_TYPES: tuple[type[Event], ...] = (
    ReturnRequested,
    ReturnLabelBooked,
    ReturnLabelBookingFailed,
    ReturnLabelVoided,
    ReturnReceived,
    ReturnInspected,
    ReturnStockPosted,
    CreditNoteIssued,
    CreditNoteRefused,
    ReturnCancelled,
    ReturnParcelOverdue,
    ReturnCompleted,
)
"""Every return event, in flow order."""
