"""Commands: "do this", each executed by exactly one service.

Subjects are ``<prefix>.cmd.<owner>.<name>.v<major>``. Every command carries
the key its owner uses to make the side effect happen once, however often
the command is delivered.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import Meta

from waybill_contracts.messages import Command
from waybill_contracts.model import (
    Address,
    BatchId,
    Carrier,
    DeliveryMethod,
    LastPage,
    NonNegative,
    OdooPickingId,
    OdooSaleOrderId,
    Order,
    OrderRef,
    Page,
    Parcel,
    Party,
    PickedLine,
    Product,
    ServiceLevel,
    Shipment,
    ShipmentId,
    TrackingNumber,
    UtcDateTime,
)
from waybill_contracts.operations import OPERATOR_COMMAND_TYPES
from waybill_contracts.return_commands import RETURN_COMMAND_TYPES
from waybill_contracts.services import Service

_WAREHOUSE = "warehouse"
_CARRIER = "carrier"
_ODOO = "odoo"
# The orchestrator decides what happens next (the design's rule): it sends every
# command. SyncProducts and the two inventory snapshots are sent by nobody yet;
# the batch flows that will send them belong to the orchestrator too.
_ORCHESTRATOR: tuple[Service, ...] = (Service.ORCHESTRATOR,)


# --- warehouse ----------------------------------------------------------------------


class ReleaseToWarehouse(Command, frozen=True, kw_only=True):
    """Create the outbound order in the warehouse system. Idempotent per order ref."""

    owner: ClassVar[str] = _WAREHOUSE
    service: ClassVar[Service] = Service.WMS_BRIDGE
    senders: ClassVar[tuple[Service, ...]] = _ORCHESTRATOR
    name: ClassVar[str] = "release_order"

    order: Annotated[Order, Meta(description="The order to fulfil.")]

    def business_key(self) -> str:
        return self.order.ref


class CancelWarehouseOrder(Command, frozen=True, kw_only=True):
    """Cancel the outbound order in the warehouse system (compensation)."""

    owner: ClassVar[str] = _WAREHOUSE
    service: ClassVar[Service] = Service.WMS_BRIDGE
    senders: ClassVar[tuple[Service, ...]] = _ORCHESTRATOR
    name: ClassVar[str] = "cancel_order"

    order_ref: OrderRef
    reason: Annotated[str, Meta(min_length=1, description="Why, for the warehouse's records.")]

    def business_key(self) -> str:
        return self.order_ref


class SyncProducts(Command, frozen=True, kw_only=True):
    """Create or update one validated page of products in the warehouse system."""

    owner: ClassVar[str] = _WAREHOUSE
    service: ClassVar[Service] = Service.WMS_BRIDGE
    senders: ClassVar[tuple[Service, ...]] = _ORCHESTRATOR
    name: ClassVar[str] = "sync_products"

    batch_id: BatchId
    page: Page
    last_page: LastPage
    products: Annotated[tuple[Product, ...], Meta(min_length=1, description="Products to sync.")]

    def business_key(self) -> str:
        return self.batch_id


class SnapshotWarehouseInventory(Command, frozen=True, kw_only=True):
    """Read stock levels from the warehouse and publish them as snapshot pages."""

    owner: ClassVar[str] = _WAREHOUSE
    service: ClassVar[Service] = Service.WMS_BRIDGE
    senders: ClassVar[tuple[Service, ...]] = _ORCHESTRATOR
    name: ClassVar[str] = "snapshot_inventory"

    snapshot_id: BatchId
    warehouse: Annotated[str | None, Meta(description="Warehouse code; none = all.")] = None

    def business_key(self) -> str:
        return self.snapshot_id


# --- carrier ------------------------------------------------------------------------


class BookShipment(Command, frozen=True, kw_only=True):
    """Rate, choose a carrier and buy a label. ``shipment_id`` keys the purchase."""

    owner: ClassVar[str] = _CARRIER
    service: ClassVar[Service] = Service.CARRIER_ROUTER
    senders: ClassVar[tuple[Service, ...]] = _ORCHESTRATOR
    name: ClassVar[str] = "book_shipment"

    shipment_id: ShipmentId
    order_ref: OrderRef
    recipient: Annotated[Party, Meta(description="Who receives it (carriers notify them).")]
    ship_to: Annotated[Address, Meta(description="Delivery address.")]
    parcels: Annotated[tuple[Parcel, ...], Meta(min_length=1, description="Parcels to ship.")]
    service_level: Annotated[ServiceLevel, Meta(description="Promised speed.")] = (
        ServiceLevel.STANDARD
    )
    warehouse: Annotated[str | None, Meta(description="Warehouse shipping from.")] = None
    excluded_carriers: Annotated[
        tuple[str, ...], Meta(description="Carriers not to use (failed or circuit open).")
    ] = ()
    deliver_by: Annotated[
        UtcDateTime | None, Meta(description="Latest delivery the customer was promised.")
    ] = None
    delivery_method: Annotated[
        DeliveryMethod | None,
        Meta(
            description="The delivery method chosen in Odoo; the router's rules may derive "
            "the service level and the carriers from it. Since 1.1."
        ),
    ] = None

    def business_key(self) -> str:
        return self.shipment_id

    def correlation_key(self) -> str:
        return self.order_ref


class VoidShipment(Command, frozen=True, kw_only=True):
    """Cancel a bought label with its carrier (compensation)."""

    owner: ClassVar[str] = _CARRIER
    service: ClassVar[Service] = Service.CARRIER_ROUTER
    senders: ClassVar[tuple[Service, ...]] = _ORCHESTRATOR
    name: ClassVar[str] = "void_shipment"

    shipment_id: ShipmentId
    order_ref: OrderRef
    carrier: Carrier
    tracking_number: TrackingNumber
    carrier_reference: Annotated[
        str | None, Meta(description="The carrier's id of the purchase.")
    ] = None
    reason: Annotated[str, Meta(min_length=1, description="Why it is voided.")]

    def business_key(self) -> str:
        return self.shipment_id

    def correlation_key(self) -> str:
        return self.order_ref


# --- Odoo ---------------------------------------------------------------------------


class RecordShipmentInOdoo(Command, frozen=True, kw_only=True):
    """Write the tracking ref on the picking, post a chatter note, validate it."""

    owner: ClassVar[str] = _ODOO
    service: ClassVar[Service] = Service.ODOO_GATEWAY
    senders: ClassVar[tuple[Service, ...]] = _ORCHESTRATOR
    name: ClassVar[str] = "record_shipment"

    order_ref: OrderRef
    odoo_picking_id: OdooPickingId
    shipment: Annotated[Shipment, Meta(description="The booked shipment to record.")]
    shipping_weight_kg: Annotated[
        NonNegative | None, Meta(description="Total packed weight in kg, for the picking.")
    ] = None
    validate_picking: Annotated[
        bool, Meta(description="Validate the picking (without backorder).")
    ] = True
    lines: Annotated[
        tuple[PickedLine, ...],
        Meta(
            description="What was picked and packed per order line. The picking is validated "
            "only when this equals the demand; empty = not known, the whole demand ships "
            "(as in 1.0). Since 1.1."
        ),
    ] = ()
    ship_picked: Annotated[
        bool,
        Meta(
            description="When `lines` are short of the demand: validate the picking with the "
            "picked quantities and leave one backorder in Odoo for the rest (the sender's "
            "short-pick policy `ship_picked`); false = leave the picking for a person."
        ),
    ] = False

    def business_key(self) -> str:
        return self.order_ref


class RecordDeliveryInOdoo(Command, frozen=True, kw_only=True):
    """Tell Odoo the goods were delivered (chatter note on the picking)."""

    owner: ClassVar[str] = _ODOO
    service: ClassVar[Service] = Service.ODOO_GATEWAY
    senders: ClassVar[tuple[Service, ...]] = _ORCHESTRATOR
    name: ClassVar[str] = "record_delivery"

    order_ref: OrderRef
    odoo_picking_id: OdooPickingId
    shipment_id: ShipmentId
    tracking_number: TrackingNumber
    delivered_at: Annotated[UtcDateTime, Meta(description="When the carrier delivered.")]

    def business_key(self) -> str:
        return self.order_ref


class PostExceptionInOdoo(Command, frozen=True, kw_only=True):
    """Put an ops exception in front of people in Odoo: an activity and a chatter note."""

    owner: ClassVar[str] = _ODOO
    service: ClassVar[Service] = Service.ODOO_GATEWAY
    senders: ClassVar[tuple[Service, ...]] = _ORCHESTRATOR
    name: ClassVar[str] = "post_exception"

    exception_id: Annotated[str, Meta(min_length=1, description="The exception; keys the post.")]
    order_ref: OrderRef
    odoo_picking_id: OdooPickingId
    odoo_sale_order_id: OdooSaleOrderId = None
    summary: Annotated[str, Meta(min_length=1, description="Activity title.")]
    detail: Annotated[str | None, Meta(description="Chatter note body.")] = None
    assignee_login: Annotated[
        str | None, Meta(description="Odoo login of the ops user; none = configured default.")
    ] = None

    def business_key(self) -> str:
        # Each exception is its own post: keyed by the exception, not the order,
        # so a second exception on one order is never taken for a repeat.
        return self.exception_id

    def correlation_key(self) -> str:
        return self.order_ref


class PostNoteInOdoo(Command, frozen=True, kw_only=True):
    """Post a plain chatter note on the order's picking: for the record, nobody to act."""

    owner: ClassVar[str] = _ODOO
    service: ClassVar[Service] = Service.ODOO_GATEWAY
    senders: ClassVar[tuple[Service, ...]] = _ORCHESTRATOR
    name: ClassVar[str] = "post_note"

    note_id: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=256,
            description="Id of this note; keys the post, so a redelivery posts it once.",
        ),
    ]
    order_ref: OrderRef
    odoo_picking_id: OdooPickingId
    text: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=4000,
            description="The note, as plain text (the gateway escapes it for Odoo's HTML).",
        ),
    ]

    def business_key(self) -> str:
        return self.note_id

    def correlation_key(self) -> str:
        return self.order_ref


class SnapshotOdooInventory(Command, frozen=True, kw_only=True):
    """Read stock levels from Odoo and publish them as snapshot pages."""

    owner: ClassVar[str] = _ODOO
    service: ClassVar[Service] = Service.ODOO_GATEWAY
    senders: ClassVar[tuple[Service, ...]] = _ORCHESTRATOR
    name: ClassVar[str] = "snapshot_inventory"

    snapshot_id: BatchId
    warehouse: Annotated[str | None, Meta(description="Warehouse code; none = all.")] = None

    def business_key(self) -> str:
        return self.snapshot_id


COMMAND_TYPES: tuple[type[Command], ...] = (
    ReleaseToWarehouse,
    CancelWarehouseOrder,
    SyncProducts,
    SnapshotWarehouseInventory,
    BookShipment,
    VoidShipment,
    RecordShipmentInOdoo,
    RecordDeliveryInOdoo,
    PostExceptionInOdoo,
    PostNoteInOdoo,
    SnapshotOdooInventory,
    *RETURN_COMMAND_TYPES,
    *OPERATOR_COMMAND_TYPES,
)
"""Every command type, by owner (returns: :mod:`waybill_contracts.return_commands`, operator
actions: :mod:`waybill_contracts.operations`)."""
