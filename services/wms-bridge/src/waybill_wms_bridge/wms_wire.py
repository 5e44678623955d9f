"""The WMS's wire shapes as the bridge sends and reads them (REST ``/api/v1`` and webhooks).

Readers are lenient on purpose: unknown fields are ignored and statuses stay
plain text, so a WMS that adds a field or a status does not break the bridge.
Only what the bridge uses is declared.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

__all__ = [
    "OrderPriority",
    "OrderStatus",
    "WmsInventoryAdjustment",
    "WmsLineRequest",
    "WmsOrder",
    "WmsOrderLine",
    "WmsOrderList",
    "WmsOrderRequest",
    "WmsParcel",
    "WmsParcelContent",
    "WmsProblem",
    "WmsProduct",
    "WmsProductResult",
    "WmsProductResults",
    "WmsShipTo",
    "WmsWebhook",
]

AwareDateTime = Annotated[datetime, msgspec.Meta(tz=True)]


class OrderStatus:
    """The order statuses the WMS reports (plain strings on the wire)."""

    RECEIVED = "received"
    ACCEPTED = "accepted"
    PICKED = "picked"
    PACKED = "packed"
    SHIPPED = "shipped"
    SHORT_PICKED = "short_picked"
    """Nothing at all could be picked; the order stops there."""
    CANCELLED = "cancelled"


class OrderPriority:
    """How soon the warehouse should work an order (plain strings on the wire)."""

    NORMAL = "normal"
    HIGH = "high"
    """Picked first; the bridge sends it for orders on the express lane."""


# --- what the bridge sends -------------------------------------------------------------


class WmsShipTo(msgspec.Struct, kw_only=True, frozen=True):
    """Delivery address of an outbound order."""

    name: str
    street1: str
    street2: str = ""
    city: str
    postal_code: str
    state: str = ""
    country: str
    phone: str = ""
    email: str = ""


class WmsLineRequest(msgspec.Struct, kw_only=True, frozen=True):
    """One line of an outbound order as sent."""

    line_no: int
    sku: str
    qty: float
    uom: str


class WmsOrderRequest(msgspec.Struct, kw_only=True, frozen=True):
    """Body of ``POST /api/v1/outbound-orders``; the WMS is idempotent on the client order ref.

    A replay must be byte-for-byte the same request: the WMS answers 409 when
    a ref comes back with different content.
    """

    client_order_ref: str
    warehouse: str
    ship_to: WmsShipTo
    lines: list[WmsLineRequest]
    service_level: str | None = None
    priority: str = OrderPriority.NORMAL
    notes: str = ""


# --- what the bridge reads -------------------------------------------------------------


class WmsOrderLine(msgspec.Struct, kw_only=True, frozen=True):
    """An order line with what the warehouse did with it."""

    line_no: int = 0
    sku: str
    uom: str = "EA"
    qty_ordered: float
    qty_picked: float = 0.0
    qty_shipped: float = 0.0


class WmsParcelContent(msgspec.Struct, kw_only=True, frozen=True):
    sku: str
    qty: float


class WmsParcel(msgspec.Struct, kw_only=True, frozen=True):
    """A packed carton, identified by its GS1 SSCC."""

    sscc: str
    weight_kg: float
    length_cm: float = 0.0
    width_cm: float = 0.0
    height_cm: float = 0.0
    contents: list[WmsParcelContent] = msgspec.field(default_factory=list)


class WmsOrder(msgspec.Struct, kw_only=True, frozen=True):
    """An outbound order as the WMS returns it, in the API and in order webhooks."""

    order_id: str
    client_order_ref: str
    warehouse: str = ""
    status: str
    priority: str = OrderPriority.NORMAL
    lines: list[WmsOrderLine] = msgspec.field(default_factory=list)
    created_at: AwareDateTime
    updated_at: AwareDateTime
    parcels: list[WmsParcel] = msgspec.field(default_factory=list)
    short_picked: bool = False
    shipped_at: AwareDateTime | None = None
    cancelled_at: AwareDateTime | None = None


class WmsOrderList(msgspec.Struct, kw_only=True, frozen=True):
    """Answer of ``GET /api/v1/outbound-orders``: oldest change first."""

    orders: list[WmsOrder]


class WmsInventoryAdjustment(msgspec.Struct, kw_only=True, frozen=True):
    """The ``data`` of an ``inventory.adjusted`` webhook."""

    sku: str
    location: str
    delta: float
    reason_code: str
    adjusted_at: AwareDateTime


class WmsWebhook(msgspec.Struct, kw_only=True, frozen=True):
    """The body of every WMS webhook; ``data`` is decoded once the type is known."""

    event_id: Annotated[str, msgspec.Meta(min_length=1)]
    event_type: Annotated[str, msgspec.Meta(min_length=1)]
    occurred_at: AwareDateTime
    warehouse: str = ""
    data: msgspec.Raw


class WmsProduct(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One catalogue item as the bridge uploads it (``POST /api/v1/products``)."""

    sku: str
    description: str
    barcode: str = ""
    uom: str
    weight_kg: float = 0.0
    active: bool = True


class WmsProductResult(msgspec.Struct, kw_only=True, frozen=True):
    """What the WMS did with one uploaded product: created, updated, unchanged or rejected."""

    sku: str
    status: str
    reason: str | None = None


class WmsProductResults(msgspec.Struct, kw_only=True, frozen=True):
    """The WMS's answer to one upload: a result per product (a partial failure is a 200)."""

    results: list[WmsProductResult]


class WmsShelfStock(msgspec.Struct, kw_only=True, frozen=True):
    """Stock of one SKU on one shelf (``GET /api/v1/stock-on-hand``)."""

    sku: str
    location: str
    on_hand: float
    uom: str = ""


class WmsStockCursor(msgspec.Struct, kw_only=True, frozen=True):
    """Where the next page of stock starts: after this SKU and location."""

    after_sku: str
    after_location: str


class WmsStockPage(msgspec.Struct, kw_only=True, frozen=True):
    """One page of stock on hand; ``next`` is None on the last page."""

    items: list[WmsShelfStock]
    next: WmsStockCursor | None = None


class WmsProblem(msgspec.Struct, kw_only=True, frozen=True):
    """An RFC 9457 problem document, as the WMS answers errors."""

    title: str = ""
    detail: str = ""
