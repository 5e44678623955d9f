"""Validation when a customised Odoo still answers with a wizard action."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from waybill_odoo_gateway.deliveries import Picking
from waybill_odoo_gateway.odoo_errors import OdooRefused
from waybill_odoo_gateway.odoo_versions import OdooDialect
from waybill_odoo_gateway.picking_validation import validate_in_full

BACKORDER_WIZARD = {
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
        self.status = "scripted"
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
            {"skip_backorder", "picking_ids_not_to_backorder", "skip_immediate"},
        ),
        (
            17,
            [{"quantity": 2.0}, {"picked": True}],
            {"skip_backorder", "picking_ids_not_to_backorder"},
        ),
        (
            19,
            [{"quantity": 2.0}, {"picked": True}],
            {"skip_backorder", "picking_ids_not_to_backorder"},
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
