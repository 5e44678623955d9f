"""The canonical logistics model every message is built from.

Units are part of the field names (``weight_kg``, ``length_cm``) so that no
reader has to guess. Money and quantities are :class:`~decimal.Decimal` and
travel as JSON strings (``"12.30"``): exact, with no float rounding and no
table of currency exponents to maintain (JPY has 0 decimals, BHD 3), and
the form carriers and Odoo exports already use. Readers also accept JSON
numbers there. Times are timezone-aware datetimes; writers send UTC.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from msgspec import Meta

from waybill_contracts.record import Record

# Reusable field types. Each carries its own description, so the JSON Schema
# documents a field the same way wherever it appears.
UtcDateTime = Annotated[datetime, Meta(tz=True)]
# Constrained bases. A constraint must sit on the number itself, not on a
# union with None, so optional fields wrap these: Annotated[PositiveInt | None, ...].
PositiveInt = Annotated[int, Meta(gt=0)]
NonNegative = Annotated[float, Meta(ge=0)]
OrderRef = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        description="Waybill's order reference: the name of the Odoo outgoing picking "
        "(e.g. WH/OUT/00012). One per shipment-able order; the usual correlation id.",
    ),
]
ShipmentId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        description="Shipment id assigned by the orchestrator when it asks for a booking; "
        "the carrier-router's idempotency key for buying a label.",
    ),
]
Sku = Annotated[
    str,
    Meta(min_length=1, max_length=128, description="Stock keeping unit (Odoo default_code)."),
]
OdooPickingId = Annotated[PositiveInt, Meta(description="Odoo stock.picking id of the delivery.")]
OdooSaleOrderId = Annotated[
    PositiveInt | None, Meta(description="Odoo sale.order id, if the order came from one.")
]
CurrencyCode = Annotated[
    str, Meta(pattern="^[A-Z]{3}$", description="ISO 4217 currency code, e.g. EUR.")
]
CountryCode = Annotated[
    str, Meta(pattern="^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code, e.g. NL.")
]
UnitCode = Annotated[
    str,
    Meta(min_length=1, max_length=32, description="Unit of measure as named in Odoo (Units, kg)."),
]
Carrier = Annotated[
    str, Meta(min_length=1, max_length=64, description="Carrier code as configured (e.g. dhl).")
]
TrackingNumber = Annotated[
    str, Meta(min_length=1, max_length=128, description="Carrier tracking number.")
]
WarehouseOrderId = Annotated[
    str, Meta(min_length=1, max_length=128, description="The warehouse system's id of the order.")
]
BatchId = Annotated[
    str, Meta(min_length=1, max_length=128, description="Id shared by every page of one batch.")
]
Page = Annotated[int, Meta(ge=1, description="Page number within the batch, from 1.")]
LastPage = Annotated[bool, Meta(description="True on the final page of the batch.")]
WeightKg = Annotated[NonNegative, Meta(description="Weight in kilograms.")]


class ServiceLevel(StrEnum):
    """How fast the customer was promised the goods."""

    ECONOMY = "economy"
    STANDARD = "standard"
    EXPRESS = "express"
    NEXT_DAY = "next_day"
    SAME_DAY = "same_day"


class Priority(StrEnum):
    """Picking priority, as Odoo has it (``"0"`` normal, ``"1"`` urgent)."""

    NORMAL = "normal"
    URGENT = "urgent"


class MilestoneCode(StrEnum):
    """The canonical tracking vocabulary every carrier status is mapped onto."""

    LABEL_CREATED = "label_created"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    DELIVERY_ATTEMPT_FAILED = "delivery_attempt_failed"
    DELIVERED = "delivered"
    RETURNED_TO_SENDER = "returned_to_sender"
    EXCEPTION = "exception"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


class InventorySystem(StrEnum):
    """Which system a stock figure comes from."""

    ODOO = "odoo"
    WAREHOUSE = "warehouse"


class NotificationChannel(StrEnum):
    """How a customer or partner is told."""

    EMAIL = "email"
    WEBHOOK = "webhook"
    SMS = "sms"


def _require_finite(owner: str, value: Decimal) -> None:
    # Decimal accepts "NaN" and "Infinity"; neither is an amount or a count.
    if not value.is_finite():
        raise ValueError(f"{owner} must be a finite decimal, got {value}")


class Address(Record, frozen=True, kw_only=True):
    """A postal address goods can be delivered to."""

    name: Annotated[str, Meta(min_length=1, max_length=256, description="Recipient name.")]
    company: Annotated[str | None, Meta(description="Company name, if any.")] = None
    street: Annotated[str, Meta(min_length=1, max_length=256, description="Street and number.")]
    street2: Annotated[str | None, Meta(description="Second address line.")] = None
    postal_code: Annotated[str, Meta(max_length=32, description="Postal (zip) code.")]
    city: Annotated[str, Meta(min_length=1, max_length=128, description="City.")]
    state: Annotated[str | None, Meta(description="State or province code, where used.")] = None
    country_code: CountryCode


class Party(Record, frozen=True, kw_only=True):
    """A customer: who ordered, and how to reach them."""

    name: Annotated[str, Meta(min_length=1, max_length=256, description="Display name.")]
    email: Annotated[str | None, Meta(description="E-mail address for notifications.")] = None
    phone: Annotated[str | None, Meta(description="Phone number, preferably E.164.")] = None
    locale: Annotated[
        str | None, Meta(description="Preferred language as Odoo has it (e.g. en_US, nl_NL).")
    ] = None
    odoo_partner_id: Annotated[PositiveInt | None, Meta(description="Odoo res.partner id.")] = None


class Money(Record, frozen=True, kw_only=True):
    """An amount of money in one currency."""

    amount: Annotated[Decimal, Meta(description='Amount as a decimal string, e.g. "12.30".')]
    currency: CurrencyCode

    def __post_init__(self) -> None:
        _require_finite("Money.amount", self.amount)


class Quantity(Record, frozen=True, kw_only=True):
    """A counted or measured amount of goods with its unit of measure."""

    value: Annotated[Decimal, Meta(description="Amount as a decimal string; may be negative.")]
    uom: UnitCode

    def __post_init__(self) -> None:
        _require_finite("Quantity.value", self.value)


class Dimensions(Record, frozen=True, kw_only=True):
    """Outer dimensions of a parcel."""

    length_cm: Annotated[float, Meta(gt=0, description="Length in centimetres.")]
    width_cm: Annotated[float, Meta(gt=0, description="Width in centimetres.")]
    height_cm: Annotated[float, Meta(gt=0, description="Height in centimetres.")]


class OrderLine(Record, frozen=True, kw_only=True):
    """One product line of an order to ship."""

    sku: Sku
    name: Annotated[str, Meta(max_length=512, description="Product name as shown to people.")]
    quantity: Annotated[Quantity, Meta(description="Quantity to ship.")]
    weight_kg: Annotated[
        NonNegative | None, Meta(description="Total weight of the line in kilograms, if known.")
    ] = None
    barcode: Annotated[str | None, Meta(description="Product barcode (EAN/GTIN).")] = None
    odoo_move_id: Annotated[
        PositiveInt | None, Meta(description="Odoo stock.move id of the line.")
    ] = None


class DeliveryMethod(Record, frozen=True, kw_only=True):
    """The delivery method chosen for an order in Odoo (a ``delivery.carrier``).

    What the customer was sold ("DHL Express", "Standard delivery"), not the
    carrier finally booked: the carrier-router's rules map it to a service
    level and the carriers that keep it.
    """

    name: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=256,
            description="The delivery method's name as configured in Odoo (e.g. DHL Express).",
        ),
    ]
    odoo_carrier_id: Annotated[
        PositiveInt | None, Meta(description="Odoo delivery.carrier id.")
    ] = None


class Order(Record, frozen=True, kw_only=True):
    """An outgoing order released for fulfilment: what to send, to whom, how fast."""

    ref: OrderRef
    odoo_picking_id: OdooPickingId
    odoo_sale_order_id: OdooSaleOrderId = None
    sale_order_ref: Annotated[str | None, Meta(description="Odoo sale order name (S00042).")] = None
    customer_reference: Annotated[
        str | None, Meta(description="The customer's own reference (client_order_ref).")
    ] = None
    customer: Annotated[Party, Meta(description="Who ordered.")]
    ship_to: Annotated[Address, Meta(description="Where the goods go.")]
    lines: Annotated[tuple[OrderLine, ...], Meta(min_length=1, description="Lines to ship.")]
    service_level: Annotated[ServiceLevel, Meta(description="Promised speed.")] = (
        ServiceLevel.STANDARD
    )
    promised_at: Annotated[
        UtcDateTime | None, Meta(description="Delivery promised to the customer (UTC).")
    ] = None
    priority: Annotated[Priority, Meta(description="Picking priority.")] = Priority.NORMAL
    channel: Annotated[
        str | None, Meta(description="Sales channel the order came from (web, marketplace).")
    ] = None
    warehouse: Annotated[str | None, Meta(description="Code of the shipping warehouse.")] = None
    delivery_method: Annotated[
        DeliveryMethod | None,
        Meta(
            description="The delivery method chosen in Odoo (picking, else sale order). Since 1.1."
        ),
    ] = None


class ParcelItem(Record, frozen=True, kw_only=True):
    """Goods packed in one parcel."""

    sku: Sku
    quantity: Annotated[Quantity, Meta(description="Quantity in this parcel.")]
    lot: Annotated[str | None, Meta(description="Lot or serial number, if tracked.")] = None


class Parcel(Record, frozen=True, kw_only=True):
    """A packed box, as the warehouse measured it."""

    reference: Annotated[
        str, Meta(min_length=1, max_length=64, description="Parcel id in the warehouse (SSCC).")
    ]
    weight_kg: WeightKg
    dimensions: Annotated[Dimensions | None, Meta(description="Outer size, if measured.")] = None
    contents: Annotated[tuple[ParcelItem, ...], Meta(description="What is inside.")] = ()


class Shipment(Record, frozen=True, kw_only=True):
    """A booked carrier shipment: the label bought for one order."""

    shipment_id: ShipmentId
    order_ref: OrderRef
    carrier: Carrier
    service: Annotated[
        str, Meta(min_length=1, max_length=64, description="Carrier service code booked.")
    ]
    tracking_number: TrackingNumber
    tracking_url: Annotated[str | None, Meta(description="Public tracking page.")] = None
    label_ref: Annotated[
        str, Meta(min_length=1, description="Where the label document is stored (URL or key).")
    ]
    carrier_reference: Annotated[
        str | None, Meta(description="The carrier's id of the purchase, for voids and lookups.")
    ] = None
    cost: Annotated[Money, Meta(description="What the label cost.")]


class Milestone(Record, frozen=True, kw_only=True):
    """A tracking event, in the canonical vocabulary and as the carrier said it."""

    code: Annotated[MilestoneCode, Meta(description="Canonical milestone.")]
    raw_status: Annotated[str, Meta(max_length=128, description="The carrier's own status.")]
    raw_detail: Annotated[
        str | None, Meta(description="The carrier's sub-status or status detail.")
    ] = None
    occurred_at: Annotated[UtcDateTime, Meta(description="When it happened, per the carrier.")]
    location: Annotated[str | None, Meta(description="Where it happened, free text.")] = None
    description: Annotated[str | None, Meta(description="Carrier's human-readable text.")] = None


class FulfilledLine(Record, frozen=True, kw_only=True):
    """How much of an order line the warehouse picked or shipped."""

    sku: Sku
    ordered: Annotated[Quantity, Meta(description="Quantity ordered.")]
    fulfilled: Annotated[Quantity, Meta(description="Quantity actually picked.")]
    lot: Annotated[str | None, Meta(description="Lot or serial number, if tracked.")] = None


class PickedLine(Record, frozen=True, kw_only=True):
    """How much of one order line the warehouse picked and packed: what ships of it."""

    sku: Sku
    quantity: Annotated[
        Quantity, Meta(description="Quantity picked to ship, in the order line's unit.")
    ]
    odoo_move_id: Annotated[
        PositiveInt | None, Meta(description="Odoo stock.move id of the order line, if known.")
    ] = None


class StockAdjustment(Record, frozen=True, kw_only=True):
    """A change of stock on hand that the warehouse made outside an order."""

    sku: Sku
    location: Annotated[str, Meta(min_length=1, description="Warehouse location code.")]
    delta: Annotated[Quantity, Meta(description="Signed change of stock on hand.")]
    reason: Annotated[
        str, Meta(min_length=1, description="Reason code from the warehouse (damaged, count).")
    ]
    reference: Annotated[str | None, Meta(description="The warehouse's id of the adjustment.")] = (
        None
    )
    lot: Annotated[str | None, Meta(description="Lot or serial number, if tracked.")] = None


class StockLevel(Record, frozen=True, kw_only=True):
    """Stock of one SKU at one location at snapshot time."""

    sku: Sku
    location: Annotated[str, Meta(min_length=1, description="Location code.")]
    on_hand: Annotated[Quantity, Meta(description="Quantity on hand.")]
    reserved: Annotated[Quantity | None, Meta(description="Quantity reserved, if known.")] = None


class FreightMatch(Record, frozen=True, kw_only=True):
    """A line of a carrier's freight invoice that bills a booked label as quoted."""

    line_id: Annotated[
        str, Meta(min_length=1, max_length=128, description="The carrier's id of the line.")
    ]
    shipment_id: ShipmentId
    order_ref: OrderRef
    quoted: Annotated[Money, Meta(description="What the label was bought for.")]
    billed: Annotated[
        Money, Meta(description="What the carrier billed, in all (within tolerance).")
    ]


class FreightDiscrepancy(Record, frozen=True, kw_only=True):
    """A line of a carrier's freight invoice that does not match the label Waybill booked."""

    line_id: Annotated[
        str, Meta(min_length=1, max_length=128, description="The carrier's id of the line.")
    ]
    kind: Annotated[
        Literal["over_tolerance", "unknown_label", "malformed"],
        Meta(
            description="over_tolerance: billed more or less than quoted beyond the tolerance; "
            "unknown_label: no label Waybill booked; malformed: the line cannot be read."
        ),
    ]
    carrier_reference: Annotated[
        str | None, Meta(description="The carrier's id of the purchase the line bills.")
    ] = None
    tracking_number: Annotated[
        TrackingNumber | None, Meta(description="The label's tracking number, if known.")
    ] = None
    shipment_id: Annotated[
        ShipmentId | None, Meta(description="Waybill's shipment the line bills, if any.")
    ] = None
    order_ref: Annotated[
        OrderRef | None, Meta(description="The order of that shipment, if any.")
    ] = None
    quoted: Annotated[Money | None, Meta(description="What the label was bought for.")] = None
    billed: Annotated[Money | None, Meta(description="What the carrier billed, in all.")] = None
    reason: Annotated[str, Meta(min_length=1, description="What is wrong, for ops.")]


class StockDiscrepancy(Record, frozen=True, kw_only=True):
    """A SKU whose stock differs between Odoo and the warehouse."""

    sku: Sku
    location: Annotated[str, Meta(min_length=1, description="Location code.")]
    odoo_on_hand: Annotated[Quantity | None, Meta(description="Odoo's figure; none if absent.")]
    warehouse_on_hand: Annotated[
        Quantity | None, Meta(description="The warehouse's figure; none if absent.")
    ]


class Product(Record, frozen=True, kw_only=True):
    """A product from the Odoo product master."""

    sku: Sku
    barcode: Annotated[str | None, Meta(description="Barcode (EAN/GTIN).")] = None
    name: Annotated[str, Meta(min_length=1, max_length=512, description="Product name.")]
    weight_kg: Annotated[NonNegative | None, Meta(description="Unit weight in kilograms.")] = None
    volume_m3: Annotated[NonNegative | None, Meta(description="Unit volume in cubic metres.")] = (
        None
    )
    uom: UnitCode
    active: Annotated[bool, Meta(description="False when archived in Odoo.")] = True
    odoo_product_id: Annotated[PositiveInt | None, Meta(description="Odoo product.product id.")] = (
        None
    )


class ProductRejection(Record, frozen=True, kw_only=True):
    """A product the warehouse refused during a product sync, and why."""

    sku: Sku
    reason: Annotated[str, Meta(min_length=1, description="Why it was refused.")]


class UnmappedProduct(Record, frozen=True, kw_only=True):
    """An Odoo product that cannot be described as a :class:`Product` (no internal
    reference, say), so it is never synced: named by its Odoo id, with the reason."""

    odoo_product_id: Annotated[PositiveInt, Meta(description="Odoo product.product id.")]
    name: Annotated[str, Meta(max_length=512, description="Its name in Odoo, if any.")] = ""
    reason: Annotated[str, Meta(min_length=1, description="Why it cannot be synced.")]
