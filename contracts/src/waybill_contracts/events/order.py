"""Events about an order: released or cancelled in Odoo, fulfilled by the warehouse."""

from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import Meta

from waybill_contracts.messages import Event
from waybill_contracts.model import (
    FulfilledLine,
    OdooPickingId,
    OdooSaleOrderId,
    Order,
    OrderRef,
    Parcel,
    TrackingNumber,
    UtcDateTime,
    WarehouseOrderId,
)
from waybill_contracts.services import Service

# --- order (Odoo side) ---------------------------------------------------------------


class OrderReleased(Event, frozen=True, kw_only=True):
    """Odoo marked an outgoing picking ready to ship: the order-to-ship process starts."""

    aggregate: ClassVar[str] = "order"
    name: ClassVar[str] = "released"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ODOO_GATEWAY,)

    order: Annotated[Order, Meta(description="The order as Odoo has it now.")]
    released_at: Annotated[UtcDateTime, Meta(description="When Odoo made it ready.")]

    def business_key(self) -> str:
        return self.order.ref


class OrderCancelled(Event, frozen=True, kw_only=True):
    """The order was cancelled in Odoo: whatever was started must be compensated."""

    aggregate: ClassVar[str] = "order"
    name: ClassVar[str] = "cancelled"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ODOO_GATEWAY,)

    order_ref: OrderRef
    odoo_picking_id: OdooPickingId
    odoo_sale_order_id: OdooSaleOrderId = None
    reason: Annotated[str | None, Meta(description="Cancellation reason, if Odoo has one.")] = None
    cancelled_at: Annotated[UtcDateTime, Meta(description="When it was cancelled.")]

    def business_key(self) -> str:
        return self.order_ref


class ShipmentRecordedInOdoo(Event, frozen=True, kw_only=True):
    """Odoo now holds the tracking number (and the picking is validated if asked)."""

    aggregate: ClassVar[str] = "order"
    name: ClassVar[str] = "shipment_recorded"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ODOO_GATEWAY,)

    order_ref: OrderRef
    odoo_picking_id: OdooPickingId
    tracking_number: TrackingNumber
    picking_validated: Annotated[bool, Meta(description="Whether the picking is now done.")]
    recorded_at: Annotated[UtcDateTime, Meta(description="When Odoo was written.")]

    def business_key(self) -> str:
        return self.order_ref


class DeliveryRecordedInOdoo(Event, frozen=True, kw_only=True):
    """Odoo now shows the order as delivered."""

    aggregate: ClassVar[str] = "order"
    name: ClassVar[str] = "delivery_recorded"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ODOO_GATEWAY,)

    order_ref: OrderRef
    odoo_picking_id: OdooPickingId
    recorded_at: Annotated[UtcDateTime, Meta(description="When Odoo was written.")]

    def business_key(self) -> str:
        return self.order_ref


# --- warehouse order ----------------------------------------------------------------


class WarehouseOrderAccepted(Event, frozen=True, kw_only=True):
    """The warehouse system created (or already had) the outbound order."""

    aggregate: ClassVar[str] = "warehouse_order"
    name: ClassVar[str] = "accepted"
    publishers: ClassVar[tuple[Service, ...]] = (Service.WMS_BRIDGE,)

    order_ref: OrderRef
    warehouse_order_id: WarehouseOrderId
    warehouse: Annotated[str | None, Meta(description="Warehouse code, if several.")] = None
    accepted_at: Annotated[UtcDateTime, Meta(description="When the warehouse accepted it.")]

    def business_key(self) -> str:
        return self.order_ref


class WarehouseOrderPicked(Event, frozen=True, kw_only=True):
    """Every line was picked in full."""

    aggregate: ClassVar[str] = "warehouse_order"
    name: ClassVar[str] = "picked"
    publishers: ClassVar[tuple[Service, ...]] = (Service.WMS_BRIDGE,)

    order_ref: OrderRef
    warehouse_order_id: WarehouseOrderId
    lines: Annotated[tuple[FulfilledLine, ...], Meta(description="What was picked per line.")]
    picked_at: Annotated[UtcDateTime, Meta(description="When picking finished.")]

    def business_key(self) -> str:
        return self.order_ref


class WarehouseOrderShortPicked(Event, frozen=True, kw_only=True):
    """Picking finished with less than ordered on some lines."""

    aggregate: ClassVar[str] = "warehouse_order"
    name: ClassVar[str] = "short_picked"
    publishers: ClassVar[tuple[Service, ...]] = (Service.WMS_BRIDGE,)

    order_ref: OrderRef
    warehouse_order_id: WarehouseOrderId
    shortages: Annotated[
        tuple[FulfilledLine, ...], Meta(min_length=1, description="The lines picked short.")
    ]
    reported_at: Annotated[UtcDateTime, Meta(description="When the warehouse reported it.")]

    def business_key(self) -> str:
        return self.order_ref


class WarehouseOrderPacked(Event, frozen=True, kw_only=True):
    """The goods are packed; the parcels are measured and ready for a label."""

    aggregate: ClassVar[str] = "warehouse_order"
    name: ClassVar[str] = "packed"
    publishers: ClassVar[tuple[Service, ...]] = (Service.WMS_BRIDGE,)

    order_ref: OrderRef
    warehouse_order_id: WarehouseOrderId
    parcels: Annotated[tuple[Parcel, ...], Meta(min_length=1, description="Parcels packed.")]
    packed_at: Annotated[UtcDateTime, Meta(description="When packing finished.")]

    def business_key(self) -> str:
        return self.order_ref


class WarehouseOrderCancelled(Event, frozen=True, kw_only=True):
    """The warehouse cancelled the outbound order (on request or on its own)."""

    aggregate: ClassVar[str] = "warehouse_order"
    name: ClassVar[str] = "cancelled"
    publishers: ClassVar[tuple[Service, ...]] = (Service.WMS_BRIDGE,)

    order_ref: OrderRef
    warehouse_order_id: Annotated[
        str | None, Meta(description="The warehouse's id, if it ever had the order.")
    ] = None
    cancelled_at: Annotated[UtcDateTime, Meta(description="When it was cancelled.")]

    def business_key(self) -> str:
        return self.order_ref


class WarehouseOrderShipped(Event, frozen=True, kw_only=True):
    """The goods left the warehouse (the WMS's own "shipped" stage).

    A fact from the dock, not Waybill's shipped stage (that is Odoo recording
    the booked shipment, :class:`ShipmentRecordedInOdoo`). Once it is seen the
    warehouse can no longer cancel the order.
    """

    aggregate: ClassVar[str] = "warehouse_order"
    name: ClassVar[str] = "shipped"
    publishers: ClassVar[tuple[Service, ...]] = (Service.WMS_BRIDGE,)

    order_ref: OrderRef
    warehouse_order_id: WarehouseOrderId
    lines: Annotated[
        tuple[FulfilledLine, ...],
        Meta(description="What left per line (fulfilled = shipped quantity), if reported."),
    ] = ()
    shipped_at: Annotated[UtcDateTime, Meta(description="When the warehouse shipped it.")]

    def business_key(self) -> str:
        return self.order_ref


class WarehouseOrderCancelRefused(Event, frozen=True, kw_only=True):
    """The warehouse refused to cancel the order (it has shipped): a person must stop it."""

    aggregate: ClassVar[str] = "warehouse_order"
    name: ClassVar[str] = "cancel_refused"
    publishers: ClassVar[tuple[Service, ...]] = (Service.WMS_BRIDGE,)

    order_ref: OrderRef
    warehouse_order_id: Annotated[
        str | None, Meta(description="The warehouse's id of the order, if known.")
    ] = None
    reason: Annotated[str, Meta(min_length=1, description="The warehouse's reason.")]
    refused_at: Annotated[UtcDateTime, Meta(description="When the warehouse refused.")]

    def business_key(self) -> str:
        return self.order_ref
