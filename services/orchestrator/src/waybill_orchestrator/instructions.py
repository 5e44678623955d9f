"""The commands and events the orchestrator sends, built from an order's state.

Pure functions: the same state always gives the same message, which is what
lets a deadline re-send a command its adapter will recognise (same business
key) and lets tests predict every message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from waybill_contracts.commands import (
    BookShipment,
    CancelWarehouseOrder,
    PostExceptionInOdoo,
    PostNoteInOdoo,
    RecordDeliveryInOdoo,
    RecordShipmentInOdoo,
    ReleaseToWarehouse,
    VoidShipment,
)
from waybill_contracts.events import ExceptionRaised
from waybill_contracts.model import FulfilledLine, Order, Parcel, PickedLine, Quantity, Shipment
from waybill_orchestrator.state import OrderState

_ID_LIMIT = 128
NOTE_LIMIT = 4000
"""Longest ``PostNoteInOdoo.text`` the contract allows."""
_PLAIN_REF = re.compile(r"[A-Za-z0-9/]+")
_NOT_READABLE = re.compile(r"[^A-Za-z0-9]+")


class MissingOrderData(ValueError):
    """A command needs data the state does not hold (a programming error upstream)."""


def shipment_id_for(order_ref: str, attempt: int, *, kind: str = "shp") -> str:
    """The shipment id of booking ``attempt`` (from 1) of an order, e.g. ``shp-WH-OUT-00042-1``.

    Readable where that stays unambiguous: refs made only of letters, digits
    and ``/`` (Odoo's picking names) map one to one. Any other ref also gets a
    hash of itself, so two refs never share a shipment id (the carrier-router
    buys at most one label per id) and the id stays within 128 characters.
    """
    if attempt < 1:
        raise ValueError(f"booking attempts count from 1, got {attempt}")
    readable = _NOT_READABLE.sub("-", order_ref).strip("-") or "order"
    plain = f"{kind}-{readable}-{attempt}"
    if _PLAIN_REF.fullmatch(order_ref) and len(plain) <= _ID_LIMIT:
        return plain
    digest = hashlib.sha256(order_ref.encode()).hexdigest()[:12]
    return f"{kind}-{readable[:80]}-{digest}-{attempt}"


def exception_id_for(order_ref: str, number: int) -> str:
    """The id of the ``number``-th exception raised about an order."""
    return f"exc-{order_ref}-{number}"


def cancellation_note_id(order_ref: str) -> str:
    """The id keying the Odoo note that reports a finished cancellation."""
    return f"cancel-{order_ref}"


def booking_retry_note_id(failed_shipment_id: str) -> str:
    """The id keying the Odoo note that reports a failed booking being tried again."""
    return f"rebook-{failed_shipment_id}"


def order_of(state: OrderState) -> Order:
    """The released order; only a cancellation that overtook the release has none."""
    if state.order is None:
        raise MissingOrderData(f"order {state.order_ref} was never released")
    return state.order


def shipment_of(state: OrderState) -> Shipment:
    """The booked shipment of an order that has one."""
    if state.shipment is None:
        raise MissingOrderData(f"order {state.order_ref} has no booked shipment")
    return state.shipment


def release(state: OrderState) -> ReleaseToWarehouse:
    """Create the warehouse order."""
    return ReleaseToWarehouse(order=order_of(state))


def book(state: OrderState) -> BookShipment:
    """Buy a label for the packed parcels (shipment id of the current attempt)."""
    order = order_of(state)
    if not state.parcels:
        raise MissingOrderData(f"order {state.order_ref} has no packed parcels")
    return BookShipment(
        shipment_id=shipment_id_for(state.order_ref, max(state.booking_attempt, 1)),
        order_ref=state.order_ref,
        recipient=order.customer,
        ship_to=order.ship_to,
        parcels=state.parcels,
        service_level=order.service_level,
        warehouse=order.warehouse,
        deliver_by=order.promised_at,
        delivery_method=order.delivery_method,
    )


def record_shipment(state: OrderState) -> RecordShipmentInOdoo:
    """Write tracking and carrier on the picking, note it, validate it if shipped in full."""
    weight = sum(parcel.weight_kg for parcel in state.parcels) if state.parcels else None
    return RecordShipmentInOdoo(
        order_ref=state.order_ref,
        odoo_picking_id=state.odoo_picking_id,
        shipment=shipment_of(state),
        shipping_weight_kg=weight,
        lines=picked_lines(state),
        ship_picked=state.ships_picked,
    )


def _by_sku(quantities: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for sku, value in quantities:
        totals[sku] = totals.get(sku, Decimal(0)) + value
    return totals


def _packed(parcels: Iterable[Parcel]) -> dict[str, Decimal]:
    return _by_sku((item.sku, item.quantity.value) for p in parcels for item in p.contents)


def _picked(lines: Iterable[FulfilledLine]) -> dict[str, Decimal]:
    return _by_sku((line.sku, line.fulfilled.value) for line in lines)


def picked_lines(state: OrderState) -> tuple[PickedLine, ...]:
    """What ships of each order line: the packed parcels' contents, else what was picked.

    What is packed is what leaves, so the parcels' contents win; a warehouse
    that reports no contents is taken at its picked lines. Neither known:
    empty, and the gateway ships the whole demand. A SKU on several order
    lines fills them in order, the last one taking what is left over.
    """
    order = order_of(state)
    left = _packed(state.parcels) or _picked(state.picked_lines)
    if not left:
        return ()
    last_line_of = {line.sku: index for index, line in enumerate(order.lines)}
    lines: list[PickedLine] = []
    for index, line in enumerate(order.lines):
        available = left.get(line.sku, Decimal(0))
        taken = (
            available if index == last_line_of[line.sku] else min(available, line.quantity.value)
        )
        left[line.sku] = available - taken
        lines.append(
            PickedLine(
                sku=line.sku,
                quantity=Quantity(value=taken, uom=line.quantity.uom),
                odoo_move_id=line.odoo_move_id,
            )
        )
    return tuple(lines)


def record_delivery(state: OrderState) -> RecordDeliveryInOdoo:
    """Tell Odoo the carrier delivered."""
    shipment = shipment_of(state)
    if state.delivered_at is None:
        raise MissingOrderData(f"order {state.order_ref} has no delivery time")
    return RecordDeliveryInOdoo(
        order_ref=state.order_ref,
        odoo_picking_id=state.odoo_picking_id,
        shipment_id=shipment.shipment_id,
        tracking_number=shipment.tracking_number,
        delivered_at=state.delivered_at,
    )


def cancel_in_warehouse(state: OrderState, reason: str) -> CancelWarehouseOrder:
    """Cancel the warehouse order (compensation)."""
    return CancelWarehouseOrder(order_ref=state.order_ref, reason=reason)


def void(shipment: Shipment, reason: str) -> VoidShipment:
    """Void a bought label (compensation)."""
    return VoidShipment(
        shipment_id=shipment.shipment_id,
        order_ref=shipment.order_ref,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        carrier_reference=shipment.carrier_reference,
        reason=reason,
    )


def odoo_note(
    state: OrderState,
    *,
    exception_id: str,
    summary: str,
    detail: str | None,
    assignee_login: str | None,
) -> PostExceptionInOdoo:
    """A chatter note and an activity for ops on the order's picking."""
    return PostExceptionInOdoo(
        exception_id=exception_id,
        order_ref=state.order_ref,
        odoo_picking_id=state.odoo_picking_id,
        odoo_sale_order_id=state.odoo_sale_order_id,
        summary=summary,
        detail=detail,
        assignee_login=assignee_login,
    )


def odoo_plain_note(state: OrderState, *, note_id: str, text: str) -> PostNoteInOdoo:
    """A chatter note on the order's picking, for the record: nobody needs to act."""
    return PostNoteInOdoo(
        note_id=note_id,
        order_ref=state.order_ref,
        odoo_picking_id=state.odoo_picking_id,
        text=text[:NOTE_LIMIT],  # a partner's long reason must not make the note unreadable
    )


def exception_raised(
    state: OrderState,
    *,
    exception_id: str,
    stage: str,
    code: str,
    summary: str,
    detail: str | None,
    order_held: bool,
    at: datetime,
) -> ExceptionRaised:
    """The event that puts a problem in front of ops (dashboards, notifier, auditor)."""
    return ExceptionRaised(
        exception_id=exception_id,
        order_ref=state.order_ref,
        stage=stage,
        code=code,
        summary=summary,
        detail=detail,
        order_held=order_held,
        raised_at=at,
    )
