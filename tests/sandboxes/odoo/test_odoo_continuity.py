"""A sandbox given a counters file goes on after the last run's ids and references."""

from __future__ import annotations

from pathlib import Path

import pytest

from waybill_sandboxes.odoo.sandbox import OdooSandbox, OdooSettings


def _sandbox(counters: Path | None, orders: int = 2) -> OdooSandbox:
    return OdooSandbox(
        OdooSettings(orders=orders, counters_file=None if counters is None else str(counters))
    )


def test_a_second_run_hands_out_no_id_or_reference_the_first_did(tmp_path: Path) -> None:
    counters = tmp_path / "sandboxes" / "odoo-counters.json"
    first = _sandbox(counters)
    made = first.create_order()
    first_pickings = {p.name for p in first.pickings()}
    first_orders = {o.name for o in first.orders()}
    second = _sandbox(counters)
    again = second.create_order()
    assert not first_pickings & {p.name for p in second.pickings()}
    assert not first_orders & {o.name for o in second.orders()}
    assert again.id > made.id
    assert second.picking(again.pickings[0]).id > first.picking(made.pickings[0]).id
    # Kept like everything in the stack's state folder: the owner's only.
    assert counters.stat().st_mode & 0o777 == 0o600
    assert counters.parent.stat().st_mode & 0o777 == 0o700


def test_without_a_counters_file_every_run_starts_at_one() -> None:
    assert _sandbox(None).orders()[0].name == _sandbox(None).orders()[0].name == "S00001"


def test_an_unreadable_counters_file_is_named(tmp_path: Path) -> None:
    counters = tmp_path / "odoo-counters.json"
    counters.write_text("{not json")
    with pytest.raises(ValueError, match=r"odoo-counters\.json cannot be read"):
        _sandbox(counters)
