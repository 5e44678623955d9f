"""``ReturnRequested`` of a delivered order: what the orchestrator needs to run a return.

One builder for both ways a return is requested: a return picking made in
Odoo from the delivery (``odoo_returns.py``) and an RMA taken by the gateway's
API (``rma_api.py``). The customer and the pickup address are the order's
(the delivery's partner, as for its release), the weight back is the
delivered lines' weight in proportion, the carrier the one that delivered it
when ``WAYBILL_ODOO_CARRIER_NAMES`` names its Odoo delivery method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from waybill_contracts.events import ReturnRequested
from waybill_contracts.returns import ReturnLine
from waybill_odoo_gateway.deliveries import DeliveryReader, Picking
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_values import decimal_quantity, many2one_id
from waybill_odoo_gateway.return_pickings import delivered_moves

__all__ = ["return_requested", "returnable"]


async def returnable(odoo: OdooClient, delivery: Picking) -> dict[str, tuple[int, Decimal]]:
    """What of a done delivery can still come back, by SKU: (delivered move, quantity), the
    quantities on its open or done returns already taken off."""
    moves = await delivered_moves(odoo, dict(delivery.row, id=delivery.id))
    by_move = {move["move"]: sku for sku, move in moves.items()}
    left = {sku: move["delivered"] for sku, move in moves.items()}
    if by_move:
        returned = await odoo.call(
            "stock.move",
            "search_read",
            domain=[("origin_returned_move_id", "in", sorted(by_move)), ("state", "!=", "cancel")],
            fields=["origin_returned_move_id", "product_uom_qty"],
        )
        for row in returned:
            sku = by_move.get(many2one_id(row["origin_returned_move_id"]) or 0)
            if sku is not None:
                left[sku] -= decimal_quantity(row["product_uom_qty"])
    return {sku: (moves[sku]["move"], quantity) for sku, quantity in left.items()}


def _carrier_code(carrier_names: Mapping[str, str], delivery: Picking) -> str | None:
    """The Waybill carrier code of the delivery's Odoo delivery method, if one is mapped."""
    method = delivery.row.get("carrier_id")
    name = method[1] if isinstance(method, list) and len(method) > 1 else None
    for code, mapped in carrier_names.items():
        if name is not None and mapped.casefold() == str(name).casefold():
            return code
    return None


async def return_requested(
    reader: DeliveryReader,
    carrier_names: Mapping[str, str],
    delivery: Picking,
    *,
    return_id: str,
    lines: Sequence[ReturnLine],
    return_picking_id: int | None,
    requested_at: datetime,
) -> ReturnRequested:
    """The request to return ``lines`` of ``delivery`` (a PermanentError when the order lacks
    an address, as for its release)."""
    order = await reader.order(delivery)
    weight = Decimal(0)
    for line in lines:
        for delivered in order.lines:
            if delivered.sku == line.sku and delivered.weight_kg and delivered.quantity.value:
                unit = Decimal(str(delivered.weight_kg)) / delivered.quantity.value
                weight += unit * line.quantity.value
                break
    return ReturnRequested(
        return_id=return_id,
        order_ref=delivery.name,
        odoo_picking_id=delivery.id,
        odoo_return_picking_id=return_picking_id,
        odoo_sale_order_id=delivery.sale_order_id,
        lines=tuple(lines),
        customer=order.customer,
        pickup_address=order.ship_to,
        warehouse=order.warehouse,
        weight_kg=float(round(weight, 3)),
        carrier=_carrier_code(carrier_names, delivery),
        requested_at=requested_at,
    )
