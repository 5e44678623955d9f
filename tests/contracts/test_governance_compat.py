"""The compatibility check names each breaking change and lets additive ones through."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest

from waybill_contracts.governance import (
    BASELINE_PATH,
    BaselineError,
    Snapshot,
    check,
    compare,
    load_baseline,
    snapshot_json,
    take_snapshot,
    write_baseline,
)
from waybill_contracts.governance.snapshot import _Describer

Edit = Callable[[dict[str, Any]], None]
CURRENT = take_snapshot()


def _edited(edit: Edit) -> Snapshot:
    raw = msgspec.to_builtins(CURRENT)
    edit(raw)
    return msgspec.convert(raw, Snapshot)


def _fields(raw: dict[str, Any], struct: str) -> dict[str, Any]:
    fields: dict[str, Any] = raw["structs"][struct]["fields"]
    return fields


# What 1.1 adds to the committed 1.0 baseline (docs/contracts.md, changelog). The
# baseline stays at the released 1.0 until 1.1 is cut; any other change must be
# added here (and to the changelog) or recorded with `waybill contracts snapshot`.
ADDED_SINCE_BASELINE = {
    "message added: waybill.cmd.odoo.post_note.v1",
    "message added: waybill.evt.shipment.void_refused.v1",
    "message added: waybill.evt.warehouse_order.cancel_refused.v1",
    "message added: waybill.evt.warehouse_order.shipped.v1",
    "BookShipment.delivery_method: optional field added",
    "RecordShipmentInOdoo.lines: optional field added",
    "RecordShipmentInOdoo.ship_picked: optional field added",
    "NotificationFailed.recipient: optional field added",
    "Order.delivery_method: optional field added",
    # The control tower's operator actions (issue 17).
    "message added: waybill.cmd.orders.retry_stage.v1",
    "message added: waybill.cmd.orders.release_hold.v1",
    "message added: waybill.cmd.orders.cancel_shipment.v1",
    "message added: waybill.cmd.orders.resolve_exception.v1",
    # Warehouse adjustments applied in Odoo, the large ones after approval (issue 19).
    "message added: waybill.evt.inventory.adjustment_held.v1",
    "message added: waybill.evt.inventory.adjustment_applied.v1",
    "message added: waybill.cmd.odoo.approve_inventory_adjustment.v1",
    # Partner circuit breakers on the bus, for the control tower (issue 17).
    "message added: waybill.evt.partner.circuit_changed.v1",
    # Product master pages name the Odoo products that cannot be synced (issue 19).
    "ProductsChanged.unmapped: optional field added",
    "message added: waybill.evt.product.sync_completed.v1",
    # A product sync started by an operator (issue 19).
    "message added: waybill.cmd.odoo.start_product_sync.v1",
    # The return workflow (issue 20).
    "message added: waybill.evt.return.requested.v1",
    "message added: waybill.evt.return.label_booked.v1",
    "message added: waybill.evt.return.label_booking_failed.v1",
    "message added: waybill.evt.return.label_voided.v1",
    "message added: waybill.evt.return.received.v1",
    "message added: waybill.evt.return.inspected.v1",
    "message added: waybill.evt.return.stock_posted.v1",
    "message added: waybill.evt.return.credit_note_issued.v1",
    "message added: waybill.evt.return.credit_note_refused.v1",
    "message added: waybill.evt.return.cancelled.v1",
    "message added: waybill.evt.return.parcel_overdue.v1",
    "message added: waybill.evt.return.completed.v1",
    "message added: waybill.cmd.carrier.book_return_label.v1",
    "message added: waybill.cmd.carrier.void_return_label.v1",
    "message added: waybill.cmd.warehouse.expect_return.v1",
    "message added: waybill.cmd.warehouse.cancel_return.v1",
    "message added: waybill.cmd.odoo.create_return.v1",
    "message added: waybill.cmd.odoo.receive_return.v1",
    "message added: waybill.cmd.odoo.issue_credit_note.v1",
    "message added: waybill.cmd.returns.retry_step.v1",
}


def test_the_current_contracts_are_the_committed_baseline_plus_only_additions() -> None:
    report = check()
    assert report.breaking == ()
    assert set(report.additive) == ADDED_SINCE_BASELINE
    if not ADDED_SINCE_BASELINE:
        assert BASELINE_PATH.read_bytes() == snapshot_json(CURRENT)


def test_identical_snapshots_are_compatible() -> None:
    report = compare(CURRENT, take_snapshot())
    assert report.compatible
    assert report.breaking == report.additive == ()


def test_a_removed_field_is_breaking_and_names_where_it_travels() -> None:
    current = _edited(lambda raw: _fields(raw, "Address").pop("street2"))
    report = compare(CURRENT, current)
    assert not report.compatible
    # Address travels in five messages (and twice in BookShipment): reported once.
    assert report.breaking == (
        "Address.street2: field removed (carried by waybill.cmd.carrier.book_return_label.v1, "
        "waybill.cmd.carrier.book_shipment.v1, waybill.cmd.warehouse.release_order.v1, "
        "+2 more)",
    )


def test_a_change_to_a_widely_used_struct_lists_a_few_subjects_and_counts_the_rest() -> None:
    (line,) = compare(CURRENT, _edited(lambda raw: _fields(raw, "Quantity").pop("uom"))).breaking
    assert line.startswith("Quantity.uom: field removed (carried by waybill.")
    assert line.endswith(" more)")


def test_a_changed_type_is_breaking_with_old_and_new_type() -> None:
    def edit(raw: dict[str, Any]) -> None:
        _fields(raw, "Money")["amount"]["type"] = "float"

    report = compare(CURRENT, _edited(edit))
    assert len(report.breaking) == 1
    assert report.breaking[0].startswith("Money.amount: type changed from decimal to float")


def test_a_tightened_constraint_is_a_type_change() -> None:
    def edit(raw: dict[str, Any]) -> None:
        _fields(raw, "Order")["ref"]["type"] = "str(min_length=1, max_length=64)"

    (line,) = compare(CURRENT, _edited(edit)).breaking
    assert "Order.ref: type changed" in line


def test_a_required_field_added_is_breaking() -> None:
    def edit(raw: dict[str, Any]) -> None:
        _fields(raw, "Parcel")["sscc"] = {"type": "str", "required": True}

    (line,) = compare(CURRENT, _edited(edit)).breaking
    assert line.startswith("Parcel.sscc: required field added without a default")


def test_an_optional_field_added_is_additive() -> None:
    def edit(raw: dict[str, Any]) -> None:
        _fields(raw, "Parcel")["sscc"] = {"type": "null | str", "required": False}

    report = compare(CURRENT, _edited(edit))
    assert report.compatible
    assert report.additive == ("Parcel.sscc: optional field added",)


def test_making_an_optional_field_required_is_breaking_and_the_reverse_is_not() -> None:
    def require(raw: dict[str, Any]) -> None:
        _fields(raw, "Order")["channel"]["required"] = True

    def relax(raw: dict[str, Any]) -> None:
        _fields(raw, "Order")["ref"]["required"] = False

    assert (
        compare(CURRENT, _edited(require))
        .breaking[0]
        .startswith("Order.channel: optional field became required")
    )
    relaxed = compare(CURRENT, _edited(relax))
    assert relaxed.compatible
    assert relaxed.additive == ("Order.ref: required field became optional",)


def test_a_removed_message_is_a_removed_subject() -> None:
    def edit(raw: dict[str, Any]) -> None:
        del raw["messages"]["io.waybill.shipment.voided.v1"]

    report = compare(CURRENT, _edited(edit))
    assert report.breaking == (
        "subject removed: waybill.evt.shipment.voided.v1 (io.waybill.shipment.voided.v1)",
    )


def test_a_renamed_subject_is_breaking() -> None:
    def rename_in_place(raw: dict[str, Any]) -> None:
        raw["messages"]["io.waybill.qry.orchestrator.order_status.request.v1"]["subject"] = (
            "waybill.qry.orchestrator.status"
        )

    def move(raw: dict[str, Any]) -> None:
        spec = raw["messages"].pop("io.waybill.shipment.voided.v1")
        spec["subject"] = "waybill.evt.shipment.cancelled.v1"
        raw["messages"]["io.waybill.shipment.cancelled.v1"] = spec

    assert compare(CURRENT, _edited(rename_in_place)).breaking == (
        "subject renamed: waybill.qry.orchestrator.order_status -> waybill.qry.orchestrator.status",
    )
    moved = compare(CURRENT, _edited(move))
    assert moved.breaking == (
        "subject renamed: waybill.evt.shipment.voided.v1 -> waybill.evt.shipment.cancelled.v1",
    )
    assert moved.additive == ("message added: waybill.evt.shipment.cancelled.v1",)


def test_a_new_message_is_additive() -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["messages"]["io.waybill.shipment.insured.v1"] = {
            "kind": "event",
            "subject": "waybill.evt.shipment.insured.v1",
            "body": "ShipmentBooked",
        }

    report = compare(CURRENT, _edited(edit))
    assert report.compatible
    assert report.additive == ("message added: waybill.evt.shipment.insured.v1",)


def test_enum_values_removed_or_added_are_breaking() -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["enums"]["ServiceLevel"].remove("same_day")
        raw["enums"]["ServiceLevel"].append("two_day")

    breaking = compare(CURRENT, _edited(edit)).breaking
    assert len(breaking) == 2
    assert breaking[0].startswith("enum ServiceLevel: value 'same_day' removed")
    assert breaking[1].startswith("enum ServiceLevel: value 'two_day' added")


def test_each_breaking_change_is_reported_once_on_one_line() -> None:
    def edit(raw: dict[str, Any]) -> None:
        _fields(raw, "Address").pop("city")
        _fields(raw, "Quantity")["uom"]["type"] = "enum:Unit"
        del raw["messages"]["io.waybill.cmd.carrier.void_shipment.v1"]

    breaking = compare(CURRENT, _edited(edit)).breaking
    assert len(breaking) == 3
    assert all("\n" not in line for line in breaking)
    assert len(set(breaking)) == 3


def test_snapshot_json_is_sorted_and_stable(tmp_path: Path) -> None:
    text = snapshot_json(take_snapshot())
    assert text == snapshot_json(take_snapshot())
    assert text.index(b'"enums"') < text.index(b'"messages"') < text.index(b'"structs"')
    path = tmp_path / "nested" / "baseline.json"
    write_baseline(CURRENT, path)
    assert load_baseline(path) == CURRENT


def test_a_missing_baseline_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="waybill contracts snapshot"):
        load_baseline(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "not a contracts snapshot"),
        (b'{"format": 1}', "not a contracts snapshot"),
        (b"\xff\xfe", "not a contracts snapshot"),
        (b'{"format": 99, "messages": {}, "structs": {}, "enums": {}}', "format 99"),
    ],
)
def test_a_corrupt_baseline_is_refused_with_advice(
    tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "baseline.json"
    path.write_bytes(content)
    with pytest.raises(BaselineError, match=fragment):
        load_baseline(path)


def test_an_unreadable_baseline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="cannot read baseline"):
        load_baseline(tmp_path)  # a directory


def test_an_unwritable_baseline_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BaselineError, match="cannot write baseline"):
        write_baseline(CURRENT, blocker / "baseline.json")


def test_a_type_json_cannot_carry_is_refused_by_the_snapshot() -> None:
    with pytest.raises(TypeError, match="cannot describe"):
        _Describer().describe(mi.type_info(bytes))


def test_two_structs_with_one_name_are_refused_by_the_snapshot() -> None:
    def make() -> type[msgspec.Struct]:
        class Twin(msgspec.Struct):
            value: int

        return Twin

    describer = _Describer()
    describer.describe(mi.type_info(make()))
    with pytest.raises(TypeError, match="two contract structs are named Twin"):
        describer.describe(mi.type_info(make()))
