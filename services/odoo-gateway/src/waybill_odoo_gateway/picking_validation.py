"""Validating a delivery in Odoo, in full and without a backorder, on every version.

The done quantity lives in ``quantity_done`` on 16 and in ``quantity`` plus a
``picked`` flag from 17. ``button_validate`` opens a wizard instead of
validating when quantities are short (backorder) or, on 16, not filled in
(immediate transfer); the context keys ``skip_backorder`` +
``picking_ids_not_to_backorder`` (and ``skip_immediate`` on 16) skip them.
Should a customised Odoo still answer with a wizard action, validation is
tried once more with the wizard's own context, then given up to a person.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from waybill_odoo_gateway.deliveries import Picking
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_errors import OdooRefused

__all__ = ["validate_in_full"]

_SETTLED_MOVES = frozenset({"done", "cancel"})


async def validate_in_full(odoo: OdooClient, picking: Picking) -> bool:
    """Mark every move done for its whole demand and validate the picking; returns True."""
    dialect = odoo.dialect
    done_field = dialect.move_done_field
    moves = await odoo.call(
        "stock.move",
        "read",
        picking.move_ids,
        fields=["product_uom_qty", done_field, "state"],
    )
    open_moves = [m for m in moves if m.get("state") not in _SETTLED_MOVES]
    # One write per distinct quantity, not per move: fewer calls to a busy Odoo.
    short: dict[float, list[int]] = defaultdict(list)
    for move in open_moves:
        demand = float(move.get("product_uom_qty") or 0.0)
        if float(move.get(done_field) or 0.0) != demand:
            short[demand].append(move["id"])
    for demand, move_ids in short.items():
        await odoo.call("stock.move", "write", move_ids, vals={done_field: demand})
    if dialect.has_picked_flag and open_moves:
        await odoo.call("stock.move", "write", [m["id"] for m in open_moves], vals={"picked": True})
    context = dialect.validate_context(picking.id)
    answer = await odoo.call("stock.picking", "button_validate", [picking.id], context=context)
    if isinstance(answer, dict):
        wizard_context = answer.get("context")
        retry_context = {**(wizard_context if isinstance(wizard_context, dict) else {}), **context}
        answer = await odoo.call(
            "stock.picking", "button_validate", [picking.id], context=retry_context
        )
    if isinstance(answer, dict):
        raise OdooRefused(
            "Wizard",
            f"validating {picking.name} opened the {_wizard_name(answer)} wizard even without "
            "a backorder; validate it in Odoo",
        )
    return True


def _wizard_name(action: dict[str, Any]) -> str:
    return str(action.get("res_model") or action.get("name") or "unknown")
