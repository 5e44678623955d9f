"""Read-only views of what integrations did in the sandbox: for tests and the admin API.

Answers "was the tracking number written?", "was the picking validated?",
"which notes and to-dos were left?" without going through an Odoo protocol.
"""

from __future__ import annotations

from typing import Any

import msgspec

from waybill_sandboxes.odoo.registry import Registry
from waybill_sandboxes.odoo.stock import done_quantity


class ChatterMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A message in a record's chatter."""

    id: int
    body: str
    message_type: str
    subtype: str | None
    author: str | None
    date: str | None


class ScheduledActivity(msgspec.Struct, frozen=True, kw_only=True):
    """An activity (to-do) on a record."""

    id: int
    activity_type: str | None
    summary: str | None
    note: str | None
    date_deadline: str
    assigned_to: str | None  # the user's login


class MoveView(msgspec.Struct, frozen=True, kw_only=True):
    """One product line of a picking: demand and what was done."""

    id: int
    product: str  # the product's internal reference (SKU), or its name
    demand: float
    done: float
    state: str


class PickingView(msgspec.Struct, frozen=True, kw_only=True):
    """A transfer as an integration leaves it."""

    id: int
    name: str
    state: str
    picking_type_code: str | None
    origin: str | None
    partner: str | None
    carrier: str | None
    carrier_tracking_ref: str | None
    date_done: str | None
    write_date: str
    backorder_of: str | None
    moves: list[MoveView]
    messages: list[ChatterMessage]
    activities: list[ScheduledActivity]


class OrderView(msgspec.Struct, frozen=True, kw_only=True):
    """A sale order with the names of its pickings."""

    id: int
    name: str
    state: str
    partner: str
    client_order_ref: str | None
    pickings: list[str]
    messages: list[ChatterMessage]
    activities: list[ScheduledActivity]


def _text(value: object) -> str | None:
    return None if value is False or value is None else str(value)


def _name(registry: Registry, model: str, record_id: object) -> str | None:
    if isinstance(record_id, bool) or not isinstance(record_id, int):
        return None
    return registry.display_name(model, record_id)


def chatter(registry: Registry, model: str, record_id: int) -> list[ChatterMessage]:
    """The record's messages, oldest first."""
    ids = sorted(registry.value(model, record_id, "message_ids"))
    return [
        ChatterMessage(
            id=row["id"],
            body=row["body"] or "",
            message_type=row["message_type"],
            subtype=_name(registry, "mail.message.subtype", row["subtype_id"]),
            author=_name(registry, "res.partner", row["author_id"]),
            date=_text(row["date"]),
        )
        for row in registry.read("mail.message", ids, [
            "body", "message_type", "subtype_id", "author_id", "date",
        ])
    ]  # fmt: skip


def activities(registry: Registry, model: str, record_id: int) -> list[ScheduledActivity]:
    """The record's open activities, by deadline."""
    ids = registry.value(model, record_id, "activity_ids")
    return [
        ScheduledActivity(
            id=row["id"],
            activity_type=_name(registry, "mail.activity.type", row["activity_type_id"]),
            summary=_text(row["summary"]),
            note=_text(row["note"]),
            date_deadline=row["date_deadline"],
            assigned_to=(
                registry.value("res.users", row["user_id"], "login") if row["user_id"] else None
            ),
        )
        for row in registry.read("mail.activity", ids, [
            "activity_type_id", "summary", "note", "date_deadline", "user_id",
        ])
    ]  # fmt: skip


def picking_view(registry: Registry, picking_id: int) -> PickingView:
    """Everything about one picking that an integration can change."""

    def value(name: str) -> Any:
        return registry.value("stock.picking", picking_id, name)

    moves = [
        MoveView(
            id=move_id,
            product=_text(registry.value("product.product", product, "default_code"))
            or registry.display_name("product.product", product),
            demand=float(registry.value("stock.move", move_id, "product_uom_qty")),
            done=done_quantity(registry, move_id),
            state=registry.value("stock.move", move_id, "state"),
        )
        for move_id in value("move_ids")
        for product in [registry.value("stock.move", move_id, "product_id")]
    ]
    return PickingView(
        id=picking_id,
        name=value("name"),
        state=value("state"),
        picking_type_code=_text(value("picking_type_code")),
        origin=_text(value("origin")),
        partner=_name(registry, "res.partner", value("partner_id")),
        carrier=_name(registry, "delivery.carrier", value("carrier_id")),
        carrier_tracking_ref=_text(value("carrier_tracking_ref")),
        date_done=_text(value("date_done")),
        write_date=value("write_date"),
        backorder_of=_name(registry, "stock.picking", value("backorder_id")),
        moves=moves,
        messages=chatter(registry, "stock.picking", picking_id),
        activities=activities(registry, "stock.picking", picking_id),
    )


def order_view(registry: Registry, order_id: int) -> OrderView:
    """A sale order, its pickings' names, its chatter and activities."""

    def value(name: str) -> Any:
        return registry.value("sale.order", order_id, name)

    return OrderView(
        id=order_id,
        name=value("name"),
        state=value("state"),
        partner=registry.display_name("res.partner", value("partner_id")),
        client_order_ref=_text(value("client_order_ref")),
        pickings=[registry.value("stock.picking", p, "name") for p in value("picking_ids")],
        messages=chatter(registry, "sale.order", order_id),
        activities=activities(registry, "sale.order", order_id),
    )


class InvoiceView(msgspec.Struct, frozen=True, kw_only=True):
    """A customer invoice or credit note of a sale order."""

    id: int
    name: str
    move_type: str
    """``out_invoice`` or ``out_refund`` (a credit note)."""
    state: str
    amount_total: float


def invoice_views(registry: Registry, order_name: str) -> list[InvoiceView]:
    """The order's customer invoices and credit notes, oldest first."""
    moves = registry.search("account.move", [("invoice_origin", "=", order_name)])
    return [
        InvoiceView(
            id=move,
            name=str(registry.value("account.move", move, "name") or ""),
            move_type=str(registry.value("account.move", move, "move_type")),
            state=str(registry.value("account.move", move, "state")),
            amount_total=float(registry.value("account.move", move, "amount_total") or 0.0),
        )
        for move in sorted(moves)
    ]
