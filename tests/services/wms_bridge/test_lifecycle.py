"""Mapping WMS order snapshots to facts: stages reached, stable ids, units, bad data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from waybill_contracts import Lane
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.events import (
    InventoryAdjusted,
    WarehouseOrderCancelled,
    WarehouseOrderPacked,
    WarehouseOrderPicked,
    WarehouseOrderShipped,
    WarehouseOrderShortPicked,
)
from waybill_contracts.examples import example_of
from waybill_contracts.model import Quantity
from waybill_wms_bridge import lifecycle
from waybill_wms_bridge.lifecycle import inventory_fact, order_facts, stage_fact_id
from waybill_wms_bridge.orders import order_request
from waybill_wms_bridge.wms_wire import WmsInventoryAdjustment, WmsOrder

CREATED = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
PARCEL = {
    "sscc": "006141410000000018",
    "weight_kg": 1.85,
    "length_cm": 22.0,
    "width_cm": 17.0,
    "height_cm": 22.0,
    "contents": [{"sku": "MUG-BLUE", "qty": 2.0}],
}


def snapshot(status: str, **changes: Any) -> WmsOrder:
    """An order of two lines as the WMS reports it in ``status``."""
    picked = status in ("picked", "packed", "shipped")
    order: dict[str, Any] = {
        "order_id": "OO-000001",
        "client_order_ref": "WH/OUT/00042",
        "warehouse": "WH1",
        "status": status,
        "lines": [
            {"line_no": 1, "sku": "MUG-BLUE", "uom": "Units", "qty_ordered": 2.0,
             "qty_picked": 2.0 if picked else 0.0},
            {"line_no": 2, "sku": "TEA-EARL", "uom": "Units", "qty_ordered": 0.1,
             "qty_picked": 0.1 if picked else 0.0},
        ],
        "created_at": CREATED.isoformat(),
        "updated_at": (CREATED + timedelta(minutes=5)).isoformat(),
        "parcels": [PARCEL] if status in ("packed", "shipped") else [],
        "a_field_from_a_newer_wms": True,
    }  # fmt: skip
    order.update(changes)
    return msgspec.convert(order, WmsOrder)


def stages(order: WmsOrder) -> list[str]:
    return [fact.stage for fact in order_facts(order).facts]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("received", ["accepted"]),
        ("accepted", ["accepted"]),
        ("picked", ["accepted", "picked"]),
        ("packed", ["accepted", "picked", "packed"]),
        ("shipped", ["accepted", "picked", "packed", "shipped"]),
        ("cancelled", ["accepted", "cancelled"]),
        ("on_a_truck_to_mars", ["accepted"]),
    ],
)
def test_a_snapshot_yields_the_facts_of_every_stage_it_reached(
    status: str, expected: list[str]
) -> None:
    assert stages(snapshot(status)) == expected


def test_each_stage_keeps_its_id_whichever_snapshot_reports_it() -> None:
    picked = {fact.stage: fact.id for fact in order_facts(snapshot("picked")).facts}
    packed = {fact.stage: fact.id for fact in order_facts(snapshot("packed")).facts}
    # A "picked" that arrives after "packed" repeats ids that exist and adds none.
    assert picked.items() <= packed.items()
    assert packed["packed"] == stage_fact_id("WH/OUT/00042", "packed")
    other = order_facts(snapshot("packed", client_order_ref="WH/OUT/00043")).facts
    assert not {fact.id for fact in other} & set(packed.values())


def test_picked_quantities_read_as_exact_decimals_in_the_order_unit() -> None:
    facts = order_facts(snapshot("picked")).facts
    picked = facts[1].message
    assert isinstance(picked, WarehouseOrderPicked)
    assert [(line.fulfilled.value, line.fulfilled.uom) for line in picked.lines] == [
        (Decimal("2"), "Units"),
        (Decimal("0.1"), "Units"),
    ]
    assert str(picked.lines[0].fulfilled.value) == "2"


def test_a_short_pick_reports_only_the_short_lines_and_no_picked_fact() -> None:
    lines = [
        {"sku": "MUG-BLUE", "uom": "Units", "qty_ordered": 2.0, "qty_picked": 1.0},
        {"sku": "TEA-EARL", "uom": "Units", "qty_ordered": 1.0, "qty_picked": 1.0},
    ]
    facts = order_facts(snapshot("picked", lines=lines, short_picked=True)).facts
    assert [fact.stage for fact in facts] == ["accepted", "short_picked"]
    short = facts[1].message
    assert isinstance(short, WarehouseOrderShortPicked)
    assert [(s.sku, s.ordered.value, s.fulfilled.value) for s in short.shortages] == [
        ("MUG-BLUE", Decimal("2"), Decimal("1"))
    ]
    nothing = snapshot("short_picked", lines=[{**lines[0], "qty_picked": 0.0}])
    assert stages(nothing) == ["accepted", "short_picked"]


def test_a_shipped_order_reports_the_shipped_quantities_and_time() -> None:
    shipped_at = CREATED + timedelta(minutes=9)
    lines = [
        {"sku": "MUG-BLUE", "uom": "Units", "qty_ordered": 2.0, "qty_picked": 2.0,
         "qty_shipped": 2.0},
        {"sku": "TEA-EARL", "uom": "Units", "qty_ordered": 1.0, "qty_picked": 1.0,
         "qty_shipped": 1.0},
    ]  # fmt: skip
    facts = order_facts(snapshot("shipped", lines=lines, shipped_at=shipped_at.isoformat()))
    shipped = facts.facts[-1]
    assert shipped.id == stage_fact_id("WH/OUT/00042", "shipped")
    assert isinstance(shipped.message, WarehouseOrderShipped)
    assert shipped.message.shipped_at == shipped_at
    assert shipped.message.warehouse_order_id == "OO-000001"
    assert [(line.sku, line.fulfilled.value) for line in shipped.message.lines] == [
        ("MUG-BLUE", Decimal("2")),
        ("TEA-EARL", Decimal("1")),
    ]


def test_an_orders_figures_are_made_into_quantities_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #18: a shipped snapshot's lines, parcels and stages repeat the same few
    figures; each figure and unit becomes a quantity once (quantities are immutable).
    Before, mapping this snapshot made 9 quantities, and 9 again the next time."""
    made = 0

    def counted(**fields: Any) -> Quantity:
        nonlocal made
        made += 1
        return Quantity(**fields)

    monkeypatch.setattr(lifecycle, "Quantity", counted)
    # Figures and a unit no other test uses, so none is made already.
    lines = [
        {"sku": "MUG-BLUE", "uom": "Crate", "qty_ordered": 7.0, "qty_picked": 7.0,
         "qty_shipped": 7.0},
        {"sku": "TEA-EARL", "uom": "Crate", "qty_ordered": 0.35, "qty_picked": 0.35,
         "qty_shipped": 0.35},
    ]  # fmt: skip
    parcels = [{**PARCEL, "contents": [{"sku": "MUG-BLUE", "qty": 7.0}]}]
    order = snapshot("shipped", lines=lines, parcels=parcels)
    first = order_facts(order).facts
    again = order_facts(order).facts
    assert made == 2  # 18 before
    shipped = again[-1].message
    assert isinstance(shipped, WarehouseOrderShipped)
    assert [(line.fulfilled.value, line.fulfilled.uom) for line in shipped.lines] == [
        (Decimal("7"), "Crate"),
        (Decimal("0.35"), "Crate"),
    ]
    assert [fact.message for fact in first] == [fact.message for fact in again]


def test_packed_parcels_carry_sscc_weight_dimensions_and_contents() -> None:
    packed = order_facts(snapshot("packed")).facts[2].message
    assert isinstance(packed, WarehouseOrderPacked)
    parcel = packed.parcels[0]
    assert parcel.reference == "006141410000000018"
    assert parcel.weight_kg == 1.85
    assert parcel.dimensions is not None
    assert (parcel.dimensions.length_cm, parcel.dimensions.height_cm) == (22.0, 22.0)
    assert [(item.sku, item.quantity.value, item.quantity.uom) for item in parcel.contents] == [
        ("MUG-BLUE", Decimal("2"), "Units")
    ]
    unmeasured = {**PARCEL, "length_cm": 0.0}
    bare = order_facts(snapshot("packed", parcels=[unmeasured])).facts[2].message
    assert isinstance(bare, WarehouseOrderPacked)
    assert bare.parcels[0].dimensions is None


def test_a_cancelled_snapshot_carries_the_cancellation_time() -> None:
    at = CREATED + timedelta(minutes=7)
    facts = order_facts(snapshot("cancelled", cancelled_at=at.isoformat())).facts
    cancelled = facts[-1].message
    assert isinstance(cancelled, WarehouseOrderCancelled)
    assert cancelled.cancelled_at == at
    assert cancelled.warehouse_order_id == "OO-000001"


@pytest.mark.parametrize(
    ("status", "changes", "kept", "problem"),
    [
        ("packed", {"parcels": []}, ["accepted", "picked"], "lists no parcels"),
        ("picked", {"short_picked": True}, ["accepted"], "no line is short"),
    ],
)
def test_a_snapshot_that_contradicts_itself_keeps_the_earlier_facts_and_names_the_problem(
    status: str, changes: dict[str, Any], kept: list[str], problem: str
) -> None:
    found = order_facts(snapshot(status, **changes))
    assert [fact.stage for fact in found.facts] == kept
    assert found.problem is not None
    assert problem in found.problem
    assert "WH/OUT/00042" in found.problem


def test_an_inventory_adjustment_is_identified_by_the_wms_event() -> None:
    adjustment = WmsInventoryAdjustment(
        sku="MUG-BLUE", location="PICK-01", delta=-3.0, reason_code="DAMAGED", adjusted_at=CREATED
    )
    fact = inventory_fact("evt_1", "WH1", adjustment)
    assert fact.id == inventory_fact("evt_1", "", adjustment).id
    assert fact.id != inventory_fact("evt_2", "WH1", adjustment).id
    message = fact.message
    assert isinstance(message, InventoryAdjusted)
    assert message.adjustment.delta.value == Decimal("-3")
    assert message.adjustment.reference == "evt_1"


def test_a_high_priority_order_reports_every_fact_on_the_express_lane() -> None:
    # A webhook has no cause to inherit a lane from: the priority the bridge sent carries it.
    urgent = order_facts(snapshot("shipped", priority="high"))
    assert [fact.lane for fact in urgent.facts] == [Lane.EXPRESS] * 4
    normal = order_facts(snapshot("shipped"))
    assert [fact.lane for fact in normal.facts] == [Lane.STANDARD] * 4


def test_an_order_on_the_express_lane_is_sent_to_the_warehouse_with_high_priority() -> None:
    order = example_of(ReleaseToWarehouse).order
    assert order_request(order, "WH1", lane=Lane.EXPRESS).priority == "high"
    assert order_request(order, "WH1").priority == "normal"
