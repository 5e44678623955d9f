"""Which stock differences are discrepancies: the direction each order stage moves stock in
the warehouse and in Odoo, and the comparison of the two snapshots."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.services.orchestrator.journey import (
    accepted,
    booked,
    cancelled,
    packed,
    picked,
    released,
    run,
    short_picked,
    warehouse_cancelled,
)
from waybill_contracts.model import Quantity, StockDiscrepancy, StockLevel
from waybill_orchestrator.stages import Stage
from waybill_orchestrator.stock_comparison import compare, in_flight, taken_off_shelves


def level(sku: str, location: str, on_hand: int, uom: str = "Units") -> StockLevel:
    return StockLevel(sku=sku, location=location, on_hand=Quantity(value=Decimal(on_hand), uom=uom))


def test_only_orders_between_picking_and_recording_are_expected_differences() -> None:
    # released/accepted: both systems still have the goods on the shelf.
    assert taken_off_shelves(run(released())) == {}
    assert taken_off_shelves(run(released(), accepted())) == {}
    # picked: the warehouse took them, Odoo counts them until the delivery is validated.
    assert taken_off_shelves(run(released(), accepted(), picked())) == {
        "MUG-BLUE": Decimal(2),
        "TEA-EARL": Decimal(1),
    }
    booking = run(released(), accepted(), picked(), packed())
    assert booking.stage == Stage.BOOKING
    assert taken_off_shelves(booking) == {"MUG-BLUE": Decimal(2), "TEA-EARL": Decimal(1)}
    recording = run(released(), accepted(), picked(), packed(), booked())
    assert recording.stage == Stage.RECORDING
    assert sum(taken_off_shelves(recording).values()) == 3
    # cancelled in the warehouse: the picked goods went back on the shelf.
    gone = run(released(), accepted(), picked(), cancelled(), warehouse_cancelled())
    assert taken_off_shelves(gone) == {}


def test_a_held_order_counts_from_the_stage_it_was_held_in() -> None:
    held = run(released(), accepted(), short_picked())
    assert held.stage == Stage.HELD and held.hold is not None
    assert held.hold.held_from == Stage.ACCEPTED
    assert taken_off_shelves(held) == {}


def test_orders_in_flight_add_up_per_sku() -> None:
    states = [
        run(released("A"), accepted("A"), picked("A")),
        run(released("B"), accepted("B"), picked("B"), packed("B")),
        run(released("C"), accepted("C")),
    ]
    assert in_flight(states) == {"MUG-BLUE": Decimal(4), "TEA-EARL": Decimal(2)}


def test_equal_figures_and_explained_differences_are_no_discrepancy() -> None:
    odoo = [level("MUG-BLUE", "PICK-01", 40), level("TEA-EARL", "PICK-01", 10)]
    warehouse = [level("MUG-BLUE", "PICK-01", 38, "EA"), level("TEA-EARL", "PICK-01", 10, "EA")]
    shelves, found = compare(odoo, warehouse, {"MUG-BLUE": Decimal(2)})
    assert (shelves, found) == (2, ())


def test_what_in_flight_orders_do_not_explain_is_a_discrepancy_at_its_shelf() -> None:
    odoo = [level("MUG-BLUE", "PICK-01", 40), level("MUG-BLUE", "PICK-02", 5)]
    warehouse = [level("MUG-BLUE", "PICK-01", 35), level("MUG-BLUE", "PICK-02", 5)]
    _shelves, found = compare(odoo, warehouse, {"MUG-BLUE": Decimal(2)})
    assert found == (
        StockDiscrepancy(
            sku="MUG-BLUE",
            location="PICK-01",
            odoo_on_hand=Quantity(value=Decimal(40), uom="Units"),
            warehouse_on_hand=Quantity(value=Decimal(35), uom="Units"),
        ),
    )


def test_picked_goods_still_on_the_warehouses_shelves_are_a_discrepancy_on_every_shelf() -> None:
    odoo = [level("MUG-BLUE", "PICK-01", 40), level("MUG-BLUE", "PICK-02", 5)]
    warehouse = [level("MUG-BLUE", "PICK-01", 40), level("MUG-BLUE", "PICK-02", 5)]
    _shelves, found = compare(odoo, warehouse, {"MUG-BLUE": Decimal(2)})
    assert [(d.sku, d.location) for d in found] == [
        ("MUG-BLUE", "PICK-01"),
        ("MUG-BLUE", "PICK-02"),
    ]


@pytest.mark.parametrize(
    ("odoo", "warehouse", "missing_in"),
    [
        ([level("MUG-BLUE", "PICK-01", 3)], [], "warehouse"),
        ([], [level("MUG-BLUE", "PICK-01", 3)], "odoo"),
    ],
)
def test_a_shelf_only_one_side_knows_is_a_discrepancy_with_the_other_figure_absent(
    odoo: list[StockLevel], warehouse: list[StockLevel], missing_in: str
) -> None:
    _shelves, [found] = compare(odoo, warehouse, {})
    absent = found.warehouse_on_hand if missing_in == "warehouse" else found.odoo_on_hand
    assert absent is None


def test_quants_of_one_shelf_add_up_and_an_empty_shelf_matches_an_absent_one() -> None:
    odoo = [level("MUG-BLUE", "PICK-01", 3), level("MUG-BLUE", "PICK-01", 4)]
    warehouse = [level("MUG-BLUE", "PICK-01", 7), level("TEA-EARL", "PICK-01", 0)]
    assert compare(odoo, warehouse, {}) == (2, ())
