"""Validating a delivery in Odoo without a backorder, on every version, when it ships in full.

The done quantity lives in ``quantity_done`` on 16 and in ``quantity`` plus a
``picked`` flag from 17. ``button_validate`` opens a wizard instead of
validating when quantities are short (backorder) or, on 16, not filled in
(immediate transfer); the context keys ``skip_backorder`` +
``picking_ids_not_to_backorder`` (and ``skip_immediate`` on 16) skip them.
Should a customised Odoo still answer with a wizard action, validation is
tried once more with the wizard's own context, then given up to a person.

What the warehouse picked (``RecordShipmentInOdoo.lines``) is compared with
each move's demand first. Only a delivery picked exactly as demanded is
validated: anything else needs a backorder decision (ship the rest later, or
not), which is a person's to make in Odoo. For those the picked quantities
are written as the done quantities, so the person finds them filled in, and
the picking is left unvalidated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from waybill_contracts.model import PickedLine
from waybill_odoo_gateway.deliveries import Picking
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_errors import OdooRefused
from waybill_odoo_gateway.odoo_values import many2one_name
from waybill_odoo_gateway.odoo_versions import OdooDialect

__all__ = [
    "PickedAgainstDemand",
    "compare_with_demand",
    "move_fields",
    "odoo_picks_them",
    "open_moves",
    "open_of",
    "picking_moves",
    "record_picked",
    "validate",
    "validate_in_full",
    "validate_picked",
]

_SETTLED_MOVES = frozenset({"done", "cancel"})

Move = dict[str, Any]


@dataclass(frozen=True)
class PickedAgainstDemand:
    """What was picked per open move, and where that differs from the move's demand."""

    done: dict[int, float]
    """Move id → quantity picked (the done quantity to write)."""
    differences: tuple[str, ...]
    """One line per difference, for the chatter note; empty when picked in full."""

    @property
    def in_full(self) -> bool:
        """True when every open move was picked exactly as demanded."""
        return not self.differences


def _demand(move: Move) -> float:
    return float(move.get("product_uom_qty") or 0.0)


def _number(value: float | Decimal) -> str:
    return f"{Decimal(str(value)).normalize():f}"


def compare_with_demand(moves: Sequence[Move], lines: Sequence[PickedLine]) -> PickedAgainstDemand:
    """Match the picked ``lines`` to the open ``moves`` by move id and compare with demand.

    Lines are matched by ``odoo_move_id`` (the gateway puts it on every order
    line it releases); a line without one, or naming a move the picking does
    not have open, cannot be matched and counts as a difference.
    """
    by_move: dict[int, Decimal] = defaultdict(Decimal)
    differences: list[str] = []
    open_ids = {move["id"] for move in moves}
    for line in lines:
        if line.odoo_move_id is None or line.odoo_move_id not in open_ids:
            where = f"move {line.odoo_move_id}" if line.odoo_move_id else "no Odoo move"
            differences.append(f"{line.sku}: picked {_number(line.quantity.value)} ({where})")
            continue
        by_move[line.odoo_move_id] += line.quantity.value
    for move in moves:
        picked, demand = by_move.get(move["id"], Decimal(0)), _demand(move)
        if picked != Decimal(str(demand)):
            product = many2one_name(move.get("product_id")) or f"move {move['id']}"
            differences.append(f"{product}: picked {_number(picked)} of {_number(demand)}")
    done = {move["id"]: float(by_move.get(move["id"], Decimal(0))) for move in moves}
    return PickedAgainstDemand(done=done, differences=tuple(differences))


def move_fields(dialect: OdooDialect) -> list[str]:
    """What validation reads of a move: product, demand, done quantity, state, and the
    ``picked`` flag on 17+."""
    fields = ["product_id", "product_uom_qty", dialect.move_done_field, "state"]
    return [*fields, "picked"] if dialect.has_picked_flag else fields


def open_of(moves: Sequence[Move]) -> list[Move]:
    """The moves not done or cancelled."""
    return [m for m in moves if m.get("state") not in _SETTLED_MOVES]


async def open_moves(odoo: OdooClient, picking: Picking) -> list[Move]:
    """The picking's moves not done or cancelled, with product, demand and done quantity."""
    return open_of(await picking_moves(odoo, picking))


async def picking_moves(odoo: OdooClient, picking: Picking) -> list[Move]:
    """Every move of the picking, read with :func:`move_fields`."""
    return await odoo.call(  # type: ignore[no-any-return]
        "stock.move", "read", picking.move_ids, fields=move_fields(odoo.dialect)
    )


def odoo_picks_them(dialect: OdooDialect, moves: Sequence[Move]) -> bool:
    """Whether validating marks every move picked itself: 17+ ``button_validate``
    (``_pre_action_done_hook``, addons/stock/models/stock_picking.py 17.0-19.0) sets
    ``picked`` on all the picking's moves when some have a quantity and none is picked.
    ``moves`` are all the picking's moves as read with ``picked``; a move a person
    marked picked (the barcode app) means Odoo leaves the rest unpicked, and cancels
    them, so then the gateway marks them."""
    return (
        dialect.has_picked_flag
        and bool(moves)
        and all("picked" in move and not move["picked"] for move in moves)
    )


async def _mark_done(
    odoo: OdooClient,
    moves: Sequence[Move],
    quantity_of: Callable[[Move], float],
    *,
    odoo_picks: bool = False,
) -> None:
    dialect = odoo.dialect
    done_field = dialect.move_done_field
    # One write per distinct quantity, not per move: fewer calls to a busy Odoo.
    changed: dict[float, list[int]] = defaultdict(list)
    for move in moves:
        quantity = quantity_of(move)
        if float(move.get(done_field) or 0.0) != quantity:
            changed[quantity].append(move["id"])
    for quantity, move_ids in changed.items():
        await odoo.call("stock.move", "write", move_ids, vals={done_field: quantity})
    picked = [m["id"] for m in moves if quantity_of(m) > 0]
    if dialect.has_picked_flag and picked and not odoo_picks:
        await odoo.call("stock.move", "write", picked, vals={"picked": True})


async def record_picked(
    odoo: OdooClient, check: PickedAgainstDemand, moves: Sequence[Move]
) -> None:
    """Write what was picked as the moves' done quantities; the picking is not validated."""
    await _mark_done(odoo, moves, lambda move: check.done.get(move["id"], 0.0))


async def validate_picked(
    odoo: OdooClient, picking: Picking, check: PickedAgainstDemand, moves: Sequence[Move]
) -> bool:
    """Validate with the picked quantities and leave one backorder for the rest; True.

    What Odoo's backorder wizard does when asked to create one
    (addons/stock/wizard/stock_backorder_confirmation.py ``process``): the picked
    quantities as the done ones (``quantity_done`` on 16, ``quantity`` + ``picked``
    from 17), then ``button_validate`` with ``skip_backorder`` and the picking left
    out of ``picking_ids_not_to_backorder``, so ``_action_done`` makes the backorder.
    """
    await _mark_done(odoo, moves, lambda move: check.done.get(move["id"], 0.0))
    await validate(odoo, picking, backorder=True)
    return True


async def validate_in_full(
    odoo: OdooClient, picking: Picking, moves: Sequence[Move] | None = None
) -> bool:
    """Mark every open move done for its whole demand and validate the picking; returns True.

    ``moves`` are all the picking's moves when the caller has just read them (with
    :func:`move_fields`). On 17+ no ``picked`` write is made when none is picked:
    ``button_validate`` picks them all itself (:func:`odoo_picks_them`).
    """
    if moves is None:
        moves = await picking_moves(odoo, picking)
    odoo_picks = odoo_picks_them(odoo.dialect, moves)
    await _mark_done(odoo, open_of(moves), _demand, odoo_picks=odoo_picks)
    await validate(odoo, picking)
    return True


def _is_wizard(answer: Any) -> bool:
    """A form Odoo opens to ask something before validating (backorder, SMS, immediate)."""
    return (
        isinstance(answer, dict)
        and answer.get("type") == "ir.actions.act_window"
        and bool(answer.get("res_model"))
    )


async def validate(odoo: OdooClient, picking: Picking, *, backorder: bool = False) -> None:
    """``button_validate`` the picking with its done quantities as they are written.

    ``True`` means done. A wizard (an ``ir.actions.act_window`` opened in a
    dialog) means not done yet: validated once more with the wizard's own
    context, then left to a person. Any other action is what Odoo shows after
    validating (17+: the ``do_multi_print`` client action when the operation
    type prints the delivery slip, addons/stock/models/stock_picking.py
    ``button_validate``): the picking is read back, never validated again, since
    18+ would do it all over (``date_done`` rewritten, the customer emailed twice).
    """
    context = odoo.dialect.validate_context(picking.id, backorder=backorder)
    answer = await odoo.call("stock.picking", "button_validate", [picking.id], context=context)
    if _is_wizard(answer):
        wizard_context = answer.get("context")
        retry_context = {**(wizard_context if isinstance(wizard_context, dict) else {}), **context}
        answer = await odoo.call(
            "stock.picking", "button_validate", [picking.id], context=retry_context
        )
        if _is_wizard(answer):
            raise OdooRefused(
                "Wizard",
                f"validating {picking.name} opened the {_wizard_name(answer)} wizard even with "
                "its own context; validate it in Odoo",
            )
    if answer is True:
        return
    [now] = await odoo.call("stock.picking", "read", [picking.id], fields=["state"]) or [{}]
    if now.get("state") != "done":
        raise OdooRefused(
            "Validation",
            f"validating {picking.name} answered {_wizard_name(answer)} and left it "
            f"{now.get('state')!r}; validate it in Odoo",
        )


def _wizard_name(action: Any) -> str:
    if not isinstance(action, dict):
        return repr(action)
    return str(action.get("res_model") or action.get("tag") or action.get("name") or "unknown")
