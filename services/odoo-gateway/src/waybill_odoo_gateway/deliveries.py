"""Reading outgoing pickings (Odoo "deliveries") and turning one into Waybill's ``Order``.

Webhook bodies are never trusted: whatever announced a picking, it is read
again here, with the fields the order needs, from the picking, its moves,
products, the delivery address and the sale order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from waybill_contracts.model import (
    Address,
    DeliveryMethod,
    Order,
    OrderLine,
    Party,
    Priority,
    Quantity,
)
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_values import (
    many2one_id,
    many2one_name,
    parse_datetime,
    text,
)
from waybill_runtime.outcomes import PermanentError

__all__ = ["PICKING_FIELDS", "DeliveryReader", "Picking", "UnshippableOrder"]

PICKING_FIELDS = [
    "name",
    "state",
    "picking_type_code",
    "partner_id",
    "sale_id",
    "scheduled_date",
    "carrier_id",
    "move_ids",
    "priority",
    "write_date",
    "date_done",
    "carrier_tracking_ref",
    "origin",
]
_PARTNER_FIELDS = [
    "name", "street", "street2", "zip", "city", "state_id", "country_id",
    "phone", "email", "lang", "is_company",
]  # fmt: skip


class UnshippableOrder(PermanentError):
    """The picking lacks what an order to ship needs (address, lines); a person must fix it."""


@dataclass(frozen=True, slots=True)
class Picking:
    """An Odoo picking as read now, with its raw many2one and x2many values."""

    id: int
    name: str
    state: str
    outgoing: bool
    row: dict[str, Any]

    @property
    def sale_order_id(self) -> int | None:
        return many2one_id(self.row.get("sale_id"))

    @property
    def write_date(self) -> datetime | None:
        return parse_datetime(self.row.get("write_date"))

    @property
    def date_done(self) -> datetime | None:
        return parse_datetime(self.row.get("date_done"))

    @property
    def tracking_ref(self) -> str | None:
        return text(self.row.get("carrier_tracking_ref"))

    @property
    def move_ids(self) -> list[int]:
        moves = self.row.get("move_ids")
        return [m for m in moves if isinstance(m, int)] if isinstance(moves, list) else []

    @staticmethod
    def from_row(row: dict[str, Any]) -> Picking:
        """A picking from a ``read`` / ``search_read`` row."""
        return Picking(
            id=int(row["id"]),
            name=text(row.get("name")) or f"picking {row['id']}",
            state=str(row.get("state") or ""),
            outgoing=row.get("picking_type_code") == "outgoing",
            row=row,
        )


class DeliveryReader:
    """Reads pickings and the orders they carry from one Odoo."""

    def __init__(self, odoo: OdooClient) -> None:
        self._odoo = odoo
        # Country and state codes never change under a running gateway.
        self._codes: dict[tuple[str, int], str | None] = {}

    async def picking(self, picking_id: int, *, timeout_s: float | None = None) -> Picking | None:
        """The picking as Odoo has it now; None when there is none with that id."""
        # search_read, not read: a missing id is an empty answer, not a MissingError.
        rows = await self._odoo.call(
            "stock.picking",
            "search_read",
            domain=[("id", "=", picking_id)],
            fields=PICKING_FIELDS,
            timeout_s=timeout_s,
        )
        return Picking.from_row(rows[0]) if rows else None

    async def order(self, picking: Picking) -> Order:
        """The order an outgoing picking carries, validated against the contract."""
        odoo = self._odoo
        ship_to_id = many2one_id(picking.row.get("partner_id"))
        if ship_to_id is None:
            raise UnshippableOrder(f"{picking.name} has no delivery address (partner_id) in Odoo")
        sale: dict[str, Any] = {}
        if picking.sale_order_id is not None:
            sales = await odoo.call(
                "sale.order",
                "read",
                [picking.sale_order_id],
                fields=["name", "client_order_ref", "commitment_date", "partner_id", "carrier_id"],
            )
            sale = sales[0] if sales else {}
        customer_id = many2one_id(sale.get("partner_id")) or ship_to_id
        partners = {
            row["id"]: row
            for row in await odoo.call(
                "res.partner", "read", sorted({ship_to_id, customer_id}), fields=_PARTNER_FIELDS
            )
        }
        if ship_to_id not in partners:
            raise UnshippableOrder(f"{picking.name}: delivery address {ship_to_id} is gone")
        ship_to = partners[ship_to_id]
        customer = partners.get(customer_id, ship_to)
        order = Order(
            ref=picking.name,
            odoo_picking_id=picking.id,
            odoo_sale_order_id=picking.sale_order_id,
            sale_order_ref=text(sale.get("name")),
            customer_reference=text(sale.get("client_order_ref")),
            customer=_party(customer),
            ship_to=await self._address(ship_to),
            lines=tuple(await self._lines(picking)),
            promised_at=parse_datetime(sale.get("commitment_date")),
            priority=Priority.URGENT if picking.row.get("priority") == "1" else Priority.NORMAL,
            # The picking's method wins: it is what the warehouse ships with, and
            # people change it there; the sale order's is what was sold.
            delivery_method=await self._delivery_method(
                picking.row.get("carrier_id") or sale.get("carrier_id")
            ),
        )
        return _validated(order, picking.name)

    async def _lines(self, picking: Picking) -> list[OrderLine]:
        # From the stock moves, not the sale order lines: the moves are what
        # ships, and their fields are the same on every version (the sale
        # line's unit field was renamed in 19, the move's was not).
        if not picking.move_ids:
            return []
        moves = await self._odoo.call(
            "stock.move",
            "read",
            picking.move_ids,
            fields=["product_id", "product_uom_qty", "product_uom", "state"],
        )
        moves = [m for m in moves if m.get("state") != "cancel"]
        product_ids = sorted({p for m in moves if (p := many2one_id(m.get("product_id")))})
        products = {
            row["id"]: row
            for row in await self._odoo.call(
                "product.product",
                "read",
                product_ids,
                fields=["default_code", "barcode", "name", "weight"],
            )
        }
        lines = []
        for move in moves:
            product = products.get(many2one_id(move.get("product_id")) or 0, {})
            quantity = Decimal(str(move.get("product_uom_qty") or 0))
            unit_weight = product.get("weight")
            weight = (
                float(unit_weight) * float(quantity)
                if isinstance(unit_weight, int | float) and unit_weight
                else None
            )
            lines.append(
                OrderLine(
                    # A product without an internal reference still needs a SKU.
                    sku=text(product.get("default_code"))
                    or text(product.get("barcode"))
                    or f"ODOO-{product.get('id', 0)}",
                    name=text(product.get("name")) or many2one_name(move.get("product_id")) or "",
                    quantity=Quantity(
                        value=quantity, uom=many2one_name(move.get("product_uom")) or "Units"
                    ),
                    weight_kg=round(weight, 3) if weight is not None else None,
                    barcode=text(product.get("barcode")),
                    odoo_move_id=move["id"],
                )
            )
        return lines

    async def _address(self, partner: dict[str, Any]) -> Address:
        name = text(partner.get("name")) or ""
        return Address(
            name=name,
            company=name if partner.get("is_company") is True else None,
            street=text(partner.get("street")) or "",
            street2=text(partner.get("street2")),
            postal_code=text(partner.get("zip")) or "",
            city=text(partner.get("city")) or "",
            state=await self._code("res.country.state", many2one_id(partner.get("state_id"))),
            country_code=await self._code("res.country", many2one_id(partner.get("country_id")))
            or "",
        )

    async def _delivery_method(self, carrier: Any) -> DeliveryMethod | None:
        """The delivery method a ``carrier_id`` many2one names; None when it is empty."""
        carrier_id = many2one_id(carrier)
        if carrier_id is None:
            return None
        name = many2one_name(carrier)
        if name is None:  # a bare id (some clients read many2one without the name)
            rows = await self._odoo.call("delivery.carrier", "read", [carrier_id], fields=["name"])
            name = text(rows[0].get("name")) if rows else None
        # The contract allows 256 characters; a longer name must not stop the order.
        return DeliveryMethod(name=name[:256], odoo_carrier_id=carrier_id) if name else None

    async def _code(self, model: str, record_id: int | None) -> str | None:
        if record_id is None:
            return None
        key = (model, record_id)
        if key not in self._codes:
            rows = await self._odoo.call(model, "read", [record_id], fields=["code"])
            code = text(rows[0].get("code")) if rows else None
            self._codes[key] = code.upper() if code else None
        return self._codes[key]


def _party(partner: dict[str, Any]) -> Party:
    return Party(
        name=text(partner.get("name")) or "",
        email=text(partner.get("email")),
        phone=text(partner.get("phone")),
        locale=text(partner.get("lang")),
        odoo_partner_id=partner["id"],
    )


def _validated(order: Order, picking_name: str) -> Order:
    # Structs built in Python are not checked by msgspec; a round trip through
    # the decoder applies the contract's constraints (non-empty street, ...).
    try:
        return msgspec.json.decode(msgspec.json.encode(order), type=Order)
    except msgspec.ValidationError as invalid:
        raise UnshippableOrder(
            f"{picking_name} cannot be shipped as it is in Odoo: {invalid}"
        ) from None
