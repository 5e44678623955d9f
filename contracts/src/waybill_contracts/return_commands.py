"""Commands of the return workflow (issue 20), all sent by the orchestrator. Since 1.1.

Each is keyed so its owner acts once however often it is delivered: a label
by its label id, the warehouse's expected return and Odoo's return picking,
stock posting and credit note by the return id.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import Meta

from waybill_contracts.messages import Command
from waybill_contracts.model import (
    Address,
    Carrier,
    OdooPickingId,
    OdooSaleOrderId,
    OrderRef,
    Parcel,
    Party,
    PositiveInt,
    TrackingNumber,
)
from waybill_contracts.returns import (
    CreditedLine,
    InspectedLine,
    ReturnId,
    ReturnLabelId,
    ReturnLine,
)
from waybill_contracts.services import Service

_ORCHESTRATOR: tuple[Service, ...] = (Service.ORCHESTRATOR,)
_Reason = Annotated[str, Meta(min_length=1, max_length=500, description="Why, for the record.")]


class ReturnCommand(Command, frozen=True, kw_only=True):
    """What every return command carries: the return it is about."""

    senders: ClassVar[tuple[Service, ...]] = _ORCHESTRATOR

    return_id: ReturnId

    def business_key(self) -> str:
        return self.return_id


# --- carrier ------------------------------------------------------------------------


class BookReturnLabel(ReturnCommand, frozen=True, kw_only=True):
    """Buy a return label from the customer's address to the warehouse (cheapest rate)."""

    owner: ClassVar[str] = "carrier"
    service: ClassVar[Service] = Service.CARRIER_ROUTER
    name: ClassVar[str] = "book_return_label"

    label_id: ReturnLabelId
    order_ref: OrderRef
    customer: Annotated[Party, Meta(description="Who sends the parcel.")]
    pickup_address: Annotated[Address, Meta(description="Where the parcel leaves from.")]
    warehouse: Annotated[str | None, Meta(description="Warehouse it goes back to.")] = None
    parcels: Annotated[tuple[Parcel, ...], Meta(min_length=1, description="The parcel back.")]
    carrier: Annotated[Carrier | None, Meta(description="Carrier preferred, if any.")] = None

    def business_key(self) -> str:
        return self.label_id


class VoidReturnLabel(ReturnCommand, frozen=True, kw_only=True):
    """Void an unused return label (compensation)."""

    owner: ClassVar[str] = "carrier"
    service: ClassVar[Service] = Service.CARRIER_ROUTER
    name: ClassVar[str] = "void_return_label"

    label_id: ReturnLabelId
    carrier: Carrier
    tracking_number: TrackingNumber
    carrier_reference: Annotated[
        str | None, Meta(description="The carrier's id of the purchase.")
    ] = None
    reason: _Reason

    def business_key(self) -> str:
        return self.label_id


# --- warehouse ----------------------------------------------------------------------


class ExpectReturn(ReturnCommand, frozen=True, kw_only=True):
    """Announce the parcel to the warehouse, so its dock can match it by tracking number."""

    owner: ClassVar[str] = "warehouse"
    service: ClassVar[Service] = Service.WMS_BRIDGE
    name: ClassVar[str] = "expect_return"

    order_ref: OrderRef
    warehouse: Annotated[str | None, Meta(description="Warehouse code, if several.")] = None
    lines: Annotated[tuple[ReturnLine, ...], Meta(min_length=1, description="What comes back.")]
    tracking_number: Annotated[
        TrackingNumber | None, Meta(description="The return label's, which the dock matches.")
    ] = None
    carrier: Annotated[Carrier | None, Meta(description="The return label's carrier.")] = None


class CancelExpectedReturn(ReturnCommand, frozen=True, kw_only=True):
    """The warehouse should no longer expect the parcel (compensation)."""

    owner: ClassVar[str] = "warehouse"
    service: ClassVar[Service] = Service.WMS_BRIDGE
    name: ClassVar[str] = "cancel_return"

    reason: _Reason


# --- Odoo ---------------------------------------------------------------------------


class CreateReturnInOdoo(ReturnCommand, frozen=True, kw_only=True):
    """Make the return picking from the delivered one, as Odoo's return wizard does (for an
    RMA that has none)."""

    owner: ClassVar[str] = "odoo"
    service: ClassVar[Service] = Service.ODOO_GATEWAY
    name: ClassVar[str] = "create_return"

    order_ref: OrderRef
    odoo_picking_id: Annotated[OdooPickingId, Meta(description="The delivered picking.")]
    lines: Annotated[tuple[ReturnLine, ...], Meta(min_length=1, description="What comes back.")]


class ReceiveReturnInOdoo(ReturnCommand, frozen=True, kw_only=True):
    """Validate the return picking with what inspection found: resellable goods back to
    stock, damaged goods to the scrap location, missing ones not received."""

    owner: ClassVar[str] = "odoo"
    service: ClassVar[Service] = Service.ODOO_GATEWAY
    name: ClassVar[str] = "receive_return"

    order_ref: OrderRef
    odoo_picking_id: Annotated[OdooPickingId, Meta(description="The delivered picking.")]
    odoo_return_picking_id: Annotated[
        PositiveInt | None,
        Meta(description="The return picking; none = the one made for this return id."),
    ] = None
    lines: Annotated[tuple[InspectedLine, ...], Meta(min_length=1, description="Per line.")]


class IssueCreditNoteInOdoo(ReturnCommand, frozen=True, kw_only=True):
    """Issue and post a credit note for the accepted lines against the order's invoice."""

    owner: ClassVar[str] = "odoo"
    service: ClassVar[Service] = Service.ODOO_GATEWAY
    name: ClassVar[str] = "issue_credit_note"

    order_ref: OrderRef
    odoo_sale_order_id: OdooSaleOrderId = None
    attempt: Annotated[
        PositiveInt,
        Meta(
            description="Which try this is, from 1: a note Odoo refused is tried again under the "
            "next attempt once an operator fixed the cause; the gateway issues one credit note "
            "per return and acts on each attempt once."
        ),
    ] = 1
    lines: Annotated[tuple[CreditedLine, ...], Meta(min_length=1, description="What to credit.")]


RETURN_COMMAND_TYPES: tuple[type[Command], ...] = (
    BookReturnLabel,
    VoidReturnLabel,
    ExpectReturn,
    CancelExpectedReturn,
    CreateReturnInOdoo,
    ReceiveReturnInOdoo,
    IssueCreditNoteInOdoo,
)
"""Every return command, by owner."""
