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


_MOVE_FIELDS = ["product_id", "product_uom_qty", "product_uom", "state"]
_PRODUCT_FIELDS = ["default_code", "barcode", "name", "weight"]

_NAMED: dict[str, Any] = {"fields": {"display_name": {}}}
_PARTNER_SPEC: dict[str, Any] = {
    **{name: {} for name in _PARTNER_FIELDS},
    "state_id": {"fields": {"code": {}}},
    "country_id": {"fields": {"code": {}}},
}
_ORDER_SPEC: dict[str, Any] = {
    "partner_id": {"fields": _PARTNER_SPEC},
    "sale_id": {
        "fields": {
            "name": {},
            "client_order_ref": {},
            "commitment_date": {},
            "partner_id": {"fields": _PARTNER_SPEC},
            "carrier_id": _NAMED,
        }
    },
    "move_ids": {
        "fields": {
            "product_id": {
                "fields": {"display_name": {}, **{name: {} for name in _PRODUCT_FIELDS}}
            },
            "product_uom_qty": {},
            "product_uom": _NAMED,
            "state": {},
        }
    },
}
"""What a release reads in one ``web_read`` of the picking (17+): what the five reads of
16 ask, related records in place."""

_DECIDING_SPEC: dict[str, Any] = {
    **{name: {} for name in PICKING_FIELDS},
    **_ORDER_SPEC,
    "carrier_id": _NAMED,
    # The many2ones a release reads in place also name themselves, so the picking's own
    # row has them as ``search_read`` gives them: ``[id, name]``.
    "partner_id": {"fields": {"display_name": {}, **_PARTNER_SPEC}},
    "sale_id": {"fields": {"display_name": {}, **_ORDER_SPEC["sale_id"]["fields"]}},
}
"""What a picking is read with when a webhook announced it (17+): :data:`PICKING_FIELDS`
to decide on it and, in the same ``web_search_read``, everything its order is built from
(:data:`_ORDER_SPEC`)."""


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
    order_row: dict[str, Any] | None = None
    """17+: the picking as a release's ``web_read`` gives it (:data:`_ORDER_SPEC`), when it
    was read so at once (None: :meth:`DeliveryReader.order` reads it)."""

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
    def from_row(row: dict[str, Any], order_row: dict[str, Any] | None = None) -> Picking:
        """A picking from a ``read`` / ``search_read`` row (and its order's ``web_read``
        row, when read with it)."""
        return Picking(
            id=int(row["id"]),
            name=text(row.get("name")) or f"picking {row['id']}",
            state=str(row.get("state") or ""),
            outgoing=row.get("picking_type_code") == "outgoing",
            row=row,
            order_row=order_row,
        )


@dataclass(frozen=True, slots=True)
class _OrderRows:
    """What an order is built from, however it was read (``read`` shapes: many2one as
    ``[id, name]`` or the id): the sale order (empty without one), the delivery address,
    the customer (None: not read), the open moves and their products by id."""

    sale: dict[str, Any]
    ship_to: dict[str, Any] | None
    customer: dict[str, Any] | None
    moves: list[dict[str, Any]]
    products: dict[int, dict[str, Any]]


class DeliveryReader:
    """Reads pickings and the orders they carry from one Odoo."""

    def __init__(self, odoo: OdooClient) -> None:
        self._odoo = odoo
        # Country and state codes never change under a running gateway.
        self._codes: dict[tuple[str, int], str | None] = {}

    async def picking(
        self,
        picking_id: int,
        *,
        timeout_s: float | None = None,
        fields: list[str] = PICKING_FIELDS,
    ) -> Picking | None:
        """The picking as Odoo has it now (``fields`` of it); None when there is none with
        that id."""
        # search_read, not read: a missing id is an empty answer, not a MissingError.
        rows = await self._odoo.call(
            "stock.picking",
            "search_read",
            domain=[("id", "=", picking_id)],
            fields=fields,
            timeout_s=timeout_s,
        )
        return Picking.from_row(rows[0]) if rows else None

    async def picking_to_decide(
        self, picking_id: int, *, timeout_s: float | None = None
    ) -> Picking | None:
        """The picking as :meth:`picking` reads it; from 17 with what its order is built from
        in the same call (one ``web_search_read``; a release made two calls before). None
        when there is no such picking.

        Most pickings announced are released at once; the few that are not (a repeat,
        not ready yet, a return) cost a larger answer instead of a second call."""
        odoo = self._odoo
        await odoo.connect()  # the version decides the call
        if not odoo.dialect.has_web_read:
            return await self.picking(picking_id, timeout_s=timeout_s)
        answer = await odoo.call(
            "stock.picking",
            "web_search_read",
            domain=[("id", "=", picking_id)],
            specification=_DECIDING_SPEC,
            timeout_s=timeout_s,
        )
        records = answer.get("records") if isinstance(answer, dict) else None
        if not records:
            return None
        order_row = records[0]
        # The picking's own row as search_read has it: many2ones as [id, name], move ids.
        moves = order_row.get("move_ids") or []
        row = {**_flattened(order_row), "move_ids": [move["id"] for move in moves]}
        return Picking.from_row(row, order_row)

    async def picking_with_moves(
        self, picking_id: int, fields: list[str], move_fields: list[str]
    ) -> tuple[Picking, list[dict[str, Any]]] | None:
        """17+: the picking (``fields``) and all its moves (``move_fields``, the product as
        ``[id, name]``) in one ``web_search_read``; None when there is no such picking."""
        moves_spec = {name: _NAMED if name == "product_id" else {} for name in move_fields}
        answer = await self._odoo.call(
            "stock.picking",
            "web_search_read",
            domain=[("id", "=", picking_id)],
            specification={**{name: {} for name in fields}, "move_ids": {"fields": moves_spec}},
        )
        records = answer.get("records") if isinstance(answer, dict) else None
        if not records:
            return None
        row = records[0]
        moves = [_flattened(move) for move in row.get("move_ids") or []]
        return Picking.from_row({**row, "move_ids": [move["id"] for move in moves]}), moves

    async def order(self, picking: Picking) -> Order:
        """The order an outgoing picking carries, validated against the contract."""
        ship_to_id = many2one_id(picking.row.get("partner_id"))
        if ship_to_id is None:
            raise UnshippableOrder(f"{picking.name} has no delivery address (partner_id) in Odoo")
        if self._odoo.dialect.has_web_read:
            rows = await self._rows_at_once(picking)
        else:
            rows = await self._rows_one_by_one(picking, ship_to_id)
        if rows.ship_to is None:
            raise UnshippableOrder(f"{picking.name}: delivery address {ship_to_id} is gone")
        sale = rows.sale
        order = Order(
            ref=picking.name,
            odoo_picking_id=picking.id,
            odoo_sale_order_id=picking.sale_order_id,
            sale_order_ref=text(sale.get("name")),
            customer_reference=text(sale.get("client_order_ref")),
            customer=_party(rows.customer or rows.ship_to),
            ship_to=await self._address(rows.ship_to),
            lines=tuple(_lines(rows.moves, rows.products)),
            promised_at=parse_datetime(sale.get("commitment_date")),
            priority=Priority.URGENT if picking.row.get("priority") == "1" else Priority.NORMAL,
            # The picking's method wins: it is what the warehouse ships with, and
            # people change it there; the sale order's is what was sold.
            delivery_method=await self._delivery_method(
                picking.row.get("carrier_id") or sale.get("carrier_id")
            ),
        )
        return _validated(order, picking.name)

    async def _rows_at_once(self, picking: Picking) -> _OrderRows:
        # 17+: the picking's address, sale order, customer, moves and products in one
        # web_read (five reads one after the other before; 16 has no web_read), unless
        # the picking was read with them (picking_to_decide).
        row: Any = picking.order_row  # web_read's rows are JSON as Odoo sends it
        if row is None:
            [row] = await self._odoo.call(
                "stock.picking", "web_read", [picking.id], specification=_ORDER_SPEC
            ) or [{}]
        ship_to = row.get("partner_id")
        sale = row.get("sale_id") if isinstance(row.get("sale_id"), dict) else {}
        customer = sale.get("partner_id")
        moves = [m for m in row.get("move_ids") or [] if m.get("state") != "cancel"]
        products: dict[int, dict[str, Any]] = {}
        for move in moves:
            product = move.get("product_id")
            if isinstance(product, dict):
                products[product["id"]] = product
        return _OrderRows(
            sale=_flattened(sale),
            ship_to=self._flattened_partner(ship_to),
            customer=self._flattened_partner(customer),
            moves=[_flattened(move) for move in moves],
            products=products,
        )

    def _flattened_partner(self, partner: Any) -> dict[str, Any] | None:
        """A partner read by web_read, its country and state codes kept (no read for them)."""
        if not isinstance(partner, dict):
            return None
        for model, field in (("res.country.state", "state_id"), ("res.country", "country_id")):
            place = partner.get(field)
            if isinstance(place, dict):
                code = text(place.get("code"))
                self._codes[model, place["id"]] = code.upper() if code else None
        return _flattened(partner)

    async def _rows_one_by_one(self, picking: Picking, ship_to_id: int) -> _OrderRows:
        odoo = self._odoo
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
        moves: list[dict[str, Any]] = []
        products: dict[int, dict[str, Any]] = {}
        # From the stock moves, not the sale order lines: the moves are what
        # ships, and their fields are the same on every version (the sale
        # line's unit field was renamed in 19, the move's was not).
        if picking.move_ids:
            moves = await odoo.call("stock.move", "read", picking.move_ids, fields=_MOVE_FIELDS)
            moves = [m for m in moves if m.get("state") != "cancel"]
            product_ids = sorted({p for m in moves if (p := many2one_id(m.get("product_id")))})
            products = {
                row["id"]: row
                for row in await odoo.call(
                    "product.product", "read", product_ids, fields=_PRODUCT_FIELDS
                )
            }
        return _OrderRows(
            sale=sale,
            ship_to=partners.get(ship_to_id),
            customer=partners.get(customer_id),
            moves=moves,
            products=products,
        )

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


def _lines(moves: list[dict[str, Any]], products: dict[int, dict[str, Any]]) -> list[OrderLine]:
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


def _flattened(row: dict[str, Any]) -> dict[str, Any]:
    """A web_read row with its many2one dicts as ``read`` gives them: ``[id, name]`` when
    the name was asked, else the bare id (what the rest of the reader takes)."""
    flat: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, dict):
            shown = value.get("display_name")
            value = [value["id"], shown] if isinstance(shown, str) else value["id"]
        flat[name] = value
    return flat


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
