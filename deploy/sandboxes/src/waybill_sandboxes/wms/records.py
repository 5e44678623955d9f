"""The WMS sandbox's wire shapes: requests it accepts, records it keeps and returns."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "STAGES",
    "Cancellation",
    "InventoryAdjustment",
    "OrderLine",
    "OrderLineRequest",
    "OrderStatus",
    "OutboundOrder",
    "OutboundOrderRequest",
    "Parcel",
    "ParcelContent",
    "Product",
    "ShipTo",
    "StockLevel",
    "WmsEvent",
]

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
PositiveQty = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class OrderStatus(enum.StrEnum):
    """Where an outbound order is in the warehouse."""

    RECEIVED = "received"
    ACCEPTED = "accepted"
    PICKED = "picked"
    PACKED = "packed"
    SHIPPED = "shipped"
    SHORT_PICKED = "short_picked"
    """Nothing at all could be picked: the order stops here for a human to decide."""
    CANCELLED = "cancelled"


#: The stages the lifecycle walks through, in order.
STAGES: tuple[OrderStatus, ...] = (
    OrderStatus.ACCEPTED,
    OrderStatus.PICKED,
    OrderStatus.PACKED,
    OrderStatus.SHIPPED,
)


class ShipTo(msgspec.Struct, kw_only=True, frozen=True):
    """Delivery address of an outbound order."""

    name: NonEmpty
    street1: NonEmpty
    city: NonEmpty
    postal_code: NonEmpty
    country: Annotated[str, msgspec.Meta(min_length=2, max_length=2)]
    """ISO 3166-1 alpha-2."""
    street2: str = ""
    state: str = ""
    phone: str = ""
    email: str = ""


class OrderLineRequest(msgspec.Struct, kw_only=True, frozen=True):
    """One line of an order as the client sends it."""

    sku: NonEmpty
    qty: PositiveQty
    uom: NonEmpty = "EA"
    line_no: int | None = None


Priority = Literal["normal", "high"]
"""How soon the warehouse works an order, echoed on the order and in its webhooks."""


class OutboundOrderRequest(msgspec.Struct, kw_only=True, frozen=True):
    """Body of ``POST /api/v1/outbound-orders``; idempotent on ``client_order_ref``."""

    client_order_ref: NonEmpty
    ship_to: ShipTo
    lines: Annotated[list[OrderLineRequest], msgspec.Meta(min_length=1)]
    warehouse: NonEmpty = "WH1"
    requested_ship_date: str | None = None
    carrier: str | None = None
    service_level: str | None = None
    priority: Priority = "normal"
    notes: str = ""


class OrderLine(msgspec.Struct, kw_only=True):
    """An order line with what the warehouse did with it."""

    line_no: int
    sku: str
    uom: str
    qty_ordered: float
    qty_picked: float = 0.0
    qty_shipped: float = 0.0


class ParcelContent(msgspec.Struct, kw_only=True, frozen=True):
    sku: str
    qty: float


class Parcel(msgspec.Struct, kw_only=True, frozen=True):
    """A packed carton, labelled with a GS1 SSCC."""

    sscc: str
    weight_kg: float
    length_cm: float
    width_cm: float
    height_cm: float
    contents: list[ParcelContent]


class OutboundOrder(msgspec.Struct, kw_only=True):
    """An outbound order as the WMS holds it and returns it."""

    order_id: str
    client_order_ref: str
    warehouse: str
    status: OrderStatus
    ship_to: ShipTo
    lines: list[OrderLine]
    created_at: datetime
    updated_at: datetime
    parcels: list[Parcel] = msgspec.field(default_factory=list)
    short_picked: bool = False
    requested_ship_date: str | None = None
    carrier: str | None = None
    service_level: str | None = None
    priority: Priority = "normal"
    notes: str = ""
    shipped_at: datetime | None = None
    cancelled_at: datetime | None = None


class Product(msgspec.Struct, kw_only=True, frozen=True):
    """A catalog item; weights and sizes drive the parcels the sandbox packs."""

    sku: NonEmpty
    description: str = ""
    barcode: str = ""
    uom: NonEmpty = "EA"
    weight_kg: NonNegative = 0.5
    length_cm: NonNegative = 20.0
    width_cm: NonNegative = 15.0
    height_cm: NonNegative = 10.0
    active: bool = True
    """False: archived in the master data; the warehouse keeps it but ships none."""


class StockLevel(msgspec.Struct, kw_only=True, frozen=True):
    """Inventory of one SKU."""

    sku: str
    on_hand: float
    allocated: float
    available: float
    locations: dict[str, float]


class InventoryAdjustment(msgspec.Struct, kw_only=True, frozen=True):
    """A stock change the warehouse made on its own (cycle count, damage...)."""

    sku: str
    location: str
    delta: float
    reason_code: str
    on_hand_after: float
    adjusted_at: datetime


class Cancellation(msgspec.Struct, kw_only=True, frozen=True):
    """A cancel request and what the warehouse answered."""

    order_id: str
    client_order_ref: str
    requested_at: datetime
    outcome: str
    """cancelled, already_cancelled, or refused (the order was past picking)."""


class WmsEvent(msgspec.Struct, kw_only=True, frozen=True):
    """The body of every WMS webhook."""

    event_id: str
    event_type: str
    """order.accepted|picked|short_picked|packed|shipped|cancelled, inventory.adjusted,
    return.received|inspected|cancelled."""
    occurred_at: datetime
    warehouse: str
    data: Any
