"""Comparing Odoo's stock with the warehouse's, allowing for the orders in flight.

Where each stage of an order moves stock (the WMS sandbox and Odoo 16-19 alike):

- released, accepted (stages ``in_warehouse``, ``accepted``): Odoo reserves
  the goods on its delivery, the warehouse allocates them; neither changes
  what stands on the shelf. No difference.
- picked (``picked``, ``booking``, ``recording``): the warehouse took the
  goods off the shelf at picking, so its on hand is lower by what was picked;
  Odoo's on hand falls only when the delivery is validated, which is when the
  shipment is recorded. Expected: Odoo higher than the warehouse by the picked
  quantity. A held order counts from the stage it was held in.
- recorded (``shipped`` and later): both have let the goods go. No difference.
- cancelled in the warehouse: the picked goods go back on the shelf. No difference.

So the expected difference per SKU is Odoo minus warehouse = what the orders
between picking and recording took. The warehouse picks from whichever of a
SKU's shelves it likes, and the orchestrator does not know which: the
expected difference is absorbed by the SKU's locations where Odoo shows more,
in location order, and what is left over at a shelf is a discrepancy there. Picked
goods the warehouse still shows (less difference than expected) are a
discrepancy at every shelf of the SKU: which one was miscounted is unknown.
Quantities are compared by value: the product sync gives a SKU one unit on
both sides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from waybill_contracts.model import Quantity, StockDiscrepancy, StockLevel
from waybill_orchestrator.instructions import order_of, picked_lines
from waybill_orchestrator.stages import Stage
from waybill_orchestrator.state import OrderState

__all__ = ["PICKED_NOT_RECORDED", "compare", "in_flight", "taken_off_shelves"]

PICKED_NOT_RECORDED = frozenset({Stage.PICKED, Stage.BOOKING, Stage.RECORDING})
"""Stages in which the warehouse has taken an order's goods and Odoo has not."""

Shelf = tuple[str, str]
"""(SKU, location code)."""


def taken_off_shelves(state: OrderState) -> dict[str, Decimal]:
    """What the warehouse took for this order and Odoo still counts on hand, per SKU."""
    stage = state.hold.held_from if state.stage == Stage.HELD and state.hold else state.stage
    if stage not in PICKED_NOT_RECORDED or state.order is None:
        return {}
    picked = picked_lines(state)
    # Nothing known picked (no contents, no picked lines): the warehouse took the demand.
    lines = picked or order_of(state).lines
    taken: dict[str, Decimal] = {}
    for line in lines:
        taken[line.sku] = taken.get(line.sku, Decimal(0)) + line.quantity.value
    return taken


def in_flight(states: Iterable[OrderState]) -> dict[str, Decimal]:
    """The expected difference (Odoo minus warehouse) per SKU over the open orders."""
    total: dict[str, Decimal] = {}
    for state in states:
        for sku, quantity in taken_off_shelves(state).items():
            total[sku] = total.get(sku, Decimal(0)) + quantity
    return total


def _summed(levels: Iterable[StockLevel]) -> dict[Shelf, Quantity]:
    """Levels per shelf; a shelf listed twice (Odoo's quants per lot or package) adds up."""
    summed: dict[Shelf, Quantity] = {}
    for level in levels:
        shelf = (level.sku, level.location)
        before = summed.get(shelf)
        value = level.on_hand.value + (before.value if before else Decimal(0))
        summed[shelf] = Quantity(value=value, uom=level.on_hand.uom)
    return summed


def compare(
    odoo: Iterable[StockLevel],
    warehouse: Iterable[StockLevel],
    expected: Mapping[str, Decimal],
) -> tuple[int, tuple[StockDiscrepancy, ...]]:
    """How many shelves were compared, and those whose figures differ beyond ``expected``."""
    ours, theirs = _summed(odoo), _summed(warehouse)
    shelves = sorted(set(ours) | set(theirs))
    unexplained = {sku: max(quantity, Decimal(0)) for sku, quantity in expected.items()}
    differing: set[Shelf] = set()
    for shelf in shelves:
        sku = shelf[0]
        difference = _value(ours.get(shelf)) - _value(theirs.get(shelf))
        if difference > 0:
            absorbed = min(difference, unexplained.get(sku, Decimal(0)))
            unexplained[sku] = unexplained.get(sku, Decimal(0)) - absorbed
            difference -= absorbed
        if difference != 0:
            differing.add(shelf)
    # Picked goods the warehouse still shows on its shelves: which shelf it took them from
    # is unknown, so every shelf of the SKU is reported.
    differing.update(shelf for shelf in shelves if unexplained.get(shelf[0], Decimal(0)) > 0)
    found = tuple(
        StockDiscrepancy(
            sku=shelf[0],
            location=shelf[1],
            odoo_on_hand=ours.get(shelf),
            warehouse_on_hand=theirs.get(shelf),
        )
        for shelf in shelves
        if shelf in differing
    )
    return len(shelves), found


def _value(quantity: Quantity | None) -> Decimal:
    return quantity.value if quantity is not None else Decimal(0)
