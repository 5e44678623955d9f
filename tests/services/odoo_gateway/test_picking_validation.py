"""Validation when a customised Odoo still answers with a wizard action, and comparing what
was picked with the demand."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from waybill_contracts.model import PickedLine, Quantity
from waybill_odoo_gateway.deliveries import Picking
from waybill_odoo_gateway.odoo_errors import OdooRefused
from waybill_odoo_gateway.odoo_versions import OdooDialect
from waybill_odoo_gateway.picking_validation import compare_with_demand, validate_in_full

BACKORDER_WIZARD = {
    "target": "new",
    "type": "ir.actions.act_window",
    "res_model": "stock.backorder.confirmation",
    "context": {"button_validate_picking_ids": [7], "default_pick_ids": [[4, 7]]},
}


class ScriptedOdoo:
    """An Odoo whose button_validate answers from a script; records every call."""

    def __init__(self, major: int, validate_answers: list[Any]) -> None:
        self.dialect = OdooDialect(major)
        self.uid = 2
        self.ready = True
        self.status = self.public_status = "scripted"
        self.calls: list[tuple[str, str, Any, dict[str, Any]]] = []
        self._answers = validate_answers

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def call(
        self,
        model: str,
        method: str,
        ids: Sequence[int] | None = None,
        *,
        context: Any = None,
        timeout_s: float | None = None,
        **arguments: Any,
    ) -> Any:
        self.calls.append((model, method, list(ids or []), {**arguments, "context": context}))
        if method == "read":
            done = self.dialect.move_done_field
            return [{"id": 11, "product_uom_qty": 2.0, done: 0.0, "state": "assigned"}]
        if method == "button_validate":
            return self._answers.pop(0)
        return True


PICKING = Picking(
    id=7, name="WH/OUT/00007", state="assigned", outgoing=True, row={"move_ids": [11]}
)


async def test_wizard_answer_is_validated_again_with_the_wizards_context() -> None:
    odoo = ScriptedOdoo(17, [BACKORDER_WIZARD, True])
    assert await validate_in_full(odoo, PICKING) is True
    validations = [c for c in odoo.calls if c[1] == "button_validate"]
    assert len(validations) == 2
    retried = validations[1][3]["context"]
    assert retried["button_validate_picking_ids"] == [7]
    assert retried["skip_backorder"] is True
    assert retried["picking_ids_not_to_backorder"] == [7]


async def test_wizard_that_keeps_coming_back_is_left_to_a_person() -> None:
    odoo = ScriptedOdoo(17, [BACKORDER_WIZARD, BACKORDER_WIZARD])
    with pytest.raises(OdooRefused, match=r"stock\.backorder\.confirmation wizard"):
        await validate_in_full(odoo, PICKING)


@pytest.mark.parametrize(
    ("major", "writes", "context_keys"),
    [
        (
            16,
            [{"quantity_done": 2.0}],
            {"skip_backorder", "picking_ids_not_to_backorder", "skip_sms", "skip_immediate"},
        ),
        (
            17,
            [{"quantity": 2.0}, {"picked": True}],
            {"skip_backorder", "picking_ids_not_to_backorder", "skip_sms"},
        ),
        (
            19,
            [{"quantity": 2.0}, {"picked": True}],
            {"skip_backorder", "picking_ids_not_to_backorder", "skip_sms"},
        ),
    ],
)
async def test_done_quantities_and_context_follow_the_odoo_version(
    major: int, writes: list[dict[str, Any]], context_keys: set[str]
) -> None:
    odoo = ScriptedOdoo(major, [True])
    await validate_in_full(odoo, PICKING)
    written = [c[3]["vals"] for c in odoo.calls if c[1] == "write"]
    assert written == writes
    [validation] = [c for c in odoo.calls if c[1] == "button_validate"]
    assert set(validation[3]["context"]) == context_keys


@pytest.mark.parametrize(
    ("picked", "flag_writes"),
    [((False, False), 0), ((True, False), 1)],
    ids=["none-picked", "one-picked-by-a-person"],
)
async def test_odoo_17_picks_the_moves_itself_unless_one_is_already_picked(
    picked: tuple[bool, bool], flag_writes: int
) -> None:
    odoo = ScriptedOdoo(17, [True])
    moves = [
        {"id": 11 + n, "product_uom_qty": 2.0, "quantity": 2.0, "state": "assigned", "picked": p}
        for n, p in enumerate(picked)
    ]
    await validate_in_full(odoo, PICKING, moves)
    written = [c[3]["vals"] for c in odoo.calls if c[1] == "write"]
    # button_validate marks every move picked when none is (and some have a quantity);
    # one a person picked makes Odoo leave the others, so they are marked here.
    assert written == [{"picked": True}] * flag_writes
    assert [c[1] for c in odoo.calls if c[1] != "write"] == ["button_validate"]


def _line(sku: str, quantity: str, move_id: int | None) -> PickedLine:
    return PickedLine(
        sku=sku, quantity=Quantity(value=Decimal(quantity), uom="Units"), odoo_move_id=move_id
    )


MOVES = [
    {"id": 11, "product_id": [1, "WB-0001"], "product_uom_qty": 2.0, "state": "assigned"},
    {"id": 12, "product_id": [2, "WB-0002"], "product_uom_qty": 1.5, "state": "assigned"},
]


def test_picked_exactly_as_demanded_is_in_full_even_split_over_lines() -> None:
    check = compare_with_demand(
        MOVES, [_line("WB-0001", "1", 11), _line("WB-0001", "1", 11), _line("WB-0002", "1.5", 12)]
    )
    assert check.in_full and check.done == {11: 2.0, 12: 1.5}


@pytest.mark.parametrize(
    ("lines", "difference"),
    [
        ([_line("WB-0001", "2", 11)], "WB-0002: picked 0 of 1.5"),
        ([_line("WB-0001", "3", 11), _line("WB-0002", "1.5", 12)], "WB-0001: picked 3 of 2"),
        (
            [_line("WB-0001", "2", 11), _line("WB-0002", "1.5", 12), _line("WB-0009", "1", None)],
            "WB-0009: picked 1 (no Odoo move)",
        ),
        (
            [_line("WB-0001", "2", 11), _line("WB-0002", "1.5", 99)],
            "WB-0002: picked 1.5 (move 99)",
        ),
    ],
    ids=["missing", "over", "no-move", "other-move"],
)
def test_anything_but_the_demand_is_a_difference_named_for_the_note(
    lines: list[PickedLine], difference: str
) -> None:
    check = compare_with_demand(MOVES, lines)
    assert not check.in_full
    assert difference in check.differences
