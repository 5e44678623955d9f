"""stock.quant in inventory mode: counting and applying, as Odoo 16-19 correct stock on hand."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.sandboxes.odoo.running import running_odoo
from waybill_sandboxes.odoo import OdooSandbox, OdooSettings
from waybill_sandboxes.odoo.exceptions import InternalError, UserError, ValidationError
from waybill_sandboxes.odoo.methods import call_kw

VERSIONS = [16, 17, 18, 19]
INVENTORY_MODE = {"inventory_mode": True}


def sandbox_of(version: int) -> OdooSandbox:
    return OdooSandbox(OdooSettings(version=version, seed=5, customers=1, products=3, orders=0))


def call(sandbox: OdooSandbox, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
    return call_kw(sandbox.registry, sandbox.admin, model, method, list(args), kwargs)


def product(sandbox: OdooSandbox, sku: str) -> int:
    [found] = call(sandbox, "product.product", "search", [("default_code", "=", sku)])
    return int(found)


def stock_location(sandbox: OdooSandbox) -> int:
    [found] = call(sandbox, "stock.location", "search", [("barcode", "=", "WH-STOCK")])
    return int(found)


def quant_of(sandbox: OdooSandbox, sku: str) -> int:
    [found] = call(
        sandbox,
        "stock.quant",
        "search",
        [("product_id", "=", product(sandbox, sku)), ("location_id", "=", stock_location(sandbox))],
    )
    return int(found)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_count_applied_moves_the_difference_through_the_inventory_location(
    version: int,
) -> None:
    sandbox = sandbox_of(version)
    before = sandbox.on_hand("WB-0001")
    quant = quant_of(sandbox, "WB-0001")
    call(sandbox, "stock.quant", "write", [quant], {"inventory_quantity": before - 3},
         context=INVENTORY_MODE)  # fmt: skip
    [row] = call(sandbox, "stock.quant", "read", [quant],
                 ["inventory_quantity_set", "inventory_diff_quantity", "quantity"])  # fmt: skip
    assert (row["inventory_quantity_set"], row["inventory_diff_quantity"]) == (True, -3)
    assert row["quantity"] == before  # counting alone changes nothing
    result = call(sandbox, "stock.quant", "action_apply_inventory", [quant],
                  context={**INVENTORY_MODE, "inventory_name": "Damaged: WMS-7"})  # fmt: skip
    assert result is None
    assert sandbox.on_hand("WB-0001") == before - 3
    [name] = sandbox.inventory_moves("WB-0001")
    assert name.startswith("Damaged: WMS-7")
    [move] = call(sandbox, "stock.move", "search_read", [("is_inventory", "=", True)],
                  ["location_id", "location_dest_id", "state"])  # fmt: skip
    assert move["location_id"][1] == "WH/Stock"
    assert move["location_dest_id"][1] == "Virtual Locations/Inventory adjustment"
    assert move["state"] == "done"
    [after] = call(sandbox, "stock.quant", "read", [quant],
                   ["inventory_quantity_set", "inventory_diff_quantity"])  # fmt: skip
    assert (after["inventory_quantity_set"], after["inventory_diff_quantity"]) == (False, 0)


@pytest.mark.parametrize("version", [16, 19])
def test_counting_zero_over_a_cleared_count_still_applies(version: int) -> None:
    """The count left 0 after the last apply: writing 0 again is a count all the same."""
    sandbox = sandbox_of(version)
    quant = quant_of(sandbox, "WB-0002")
    call(sandbox, "stock.quant", "write", [quant], {"inventory_quantity": 0.0},
         context=INVENTORY_MODE)  # fmt: skip
    call(sandbox, "stock.quant", "action_apply_inventory", [quant], context=INVENTORY_MODE)
    assert sandbox.on_hand("WB-0002") == 0
    assert sandbox.inventory_moves("WB-0002") == ["Product Quantity Updated"]


@pytest.mark.parametrize("version", VERSIONS)
def test_creating_a_count_in_inventory_mode_lands_on_the_existing_quant(version: int) -> None:
    sandbox = sandbox_of(version)
    before = sandbox.on_hand("WB-0001")
    values = {
        "product_id": product(sandbox, "WB-0001"),
        "location_id": stock_location(sandbox),
        "inventory_quantity": before + 5,
    }
    quant = call(sandbox, "stock.quant", "create", values, context=INVENTORY_MODE)
    assert quant == quant_of(sandbox, "WB-0001")
    call(sandbox, "stock.quant", "action_apply_inventory", [quant], context=INVENTORY_MODE)
    assert sandbox.on_hand("WB-0001") == before + 5


def test_without_inventory_mode_create_makes_a_second_quant() -> None:
    sandbox = sandbox_of(17)
    values = {
        "product_id": product(sandbox, "WB-0001"),
        "location_id": stock_location(sandbox),
        "inventory_quantity": 1.0,
    }
    created = call(sandbox, "stock.quant", "create", values)
    assert created != quant_of_first(sandbox)


def quant_of_first(sandbox: OdooSandbox) -> int:
    found = call(sandbox, "stock.quant", "search",
                 [("product_id", "=", product(sandbox, "WB-0001"))], limit=1)  # fmt: skip
    return int(found[0])


@pytest.mark.parametrize("version", VERSIONS)
def test_a_count_on_a_location_without_a_quant_creates_one(version: int) -> None:
    sandbox = sandbox_of(version)
    [picking_dest] = call(sandbox, "stock.location", "search", [("usage", "=", "internal")])
    shelf = call(
        sandbox,
        "stock.location",
        "create",
        {"name": "Shelf 9", "complete_name": "WH/Stock/Shelf 9", "barcode": "SHELF-9"},
    )
    assert shelf != picking_dest
    quant = call(
        sandbox,
        "stock.quant",
        "create",
        {"product_id": product(sandbox, "WB-0003"), "location_id": shelf, "inventory_quantity": 4},
        context=INVENTORY_MODE,
    )
    call(sandbox, "stock.quant", "action_apply_inventory", [quant], context=INVENTORY_MODE)
    assert sandbox.on_hand("WB-0003", "WH/Stock/Shelf 9") == 4


@pytest.mark.parametrize("version", VERSIONS)
def test_a_count_outdated_by_a_move_answers_the_conflict_wizard(version: int) -> None:
    sandbox = sandbox_of(version)
    quant = quant_of(sandbox, "WB-0001")
    before = sandbox.on_hand("WB-0001")
    call(sandbox, "stock.quant", "write", [quant], {"inventory_quantity": before - 1},
         context=INVENTORY_MODE)  # fmt: skip
    sandbox.create_order(lines=[("WB-0001", 2)])  # reserved, then validated below
    [picking] = [p for p in sandbox.pickings() if p.state == "assigned"]
    call(sandbox, "stock.picking", "button_validate", [picking.id],
         context={"skip_backorder": True, "skip_sms": True, "skip_immediate": True})  # fmt: skip
    action = call(sandbox, "stock.quant", "action_apply_inventory", [quant],
                  context=INVENTORY_MODE)  # fmt: skip
    assert action["res_model"] == "stock.inventory.conflict"
    assert sandbox.on_hand("WB-0001") == before - 2  # the delivery, not the count
    # Counting again takes the move into account.
    call(sandbox, "stock.quant", "write", [quant], {"inventory_quantity": before - 3},
         context=INVENTORY_MODE)  # fmt: skip
    assert call(sandbox, "stock.quant", "action_apply_inventory", [quant],
                context=INVENTORY_MODE) is None  # fmt: skip
    assert sandbox.on_hand("WB-0001") == before - 3


@pytest.mark.parametrize("version", VERSIONS)
def test_inventory_mode_refuses_to_move_a_quant_elsewhere(version: int) -> None:
    sandbox = sandbox_of(version)
    quant = quant_of(sandbox, "WB-0001")
    with pytest.raises(UserError, match="Quant's editing is restricted"):
        call(sandbox, "stock.quant", "write", [quant], {"location_id": 1},
             context=INVENTORY_MODE)  # fmt: skip


@pytest.mark.parametrize("version", VERSIONS)
def test_no_quant_for_a_consumable(version: int) -> None:
    sandbox = sandbox_of(version)
    consumable = call(sandbox, "product.product", "create",
                      {"name": "Sticker", "default_code": "STK-1", "type": "consu",
                       **({"is_storable": False} if version >= 18 else {})})  # fmt: skip
    with pytest.raises(ValidationError, match="consumables or services"):
        call(sandbox, "stock.quant", "create",
             {"product_id": consumable, "location_id": stock_location(sandbox),
              "inventory_quantity": 1}, context=INVENTORY_MODE)  # fmt: skip


async def test_json2_counts_and_applies_on_19() -> None:
    async with running_odoo(version=19, products=2, customers=1, orders=0) as odoo:
        sandbox = odoo.sandbox
        before = sandbox.on_hand("WB-0001")
        headers = {"Authorization": f"bearer {sandbox.admin.api_key}"}
        async with aiohttp.ClientSession(headers=headers) as session:

            async def json2(model: str, method: str, body: dict[str, Any]) -> Any:
                async with session.post(f"{odoo.url}/json/2/{model}/{method}", json=body) as got:
                    assert got.status == 200, await got.text()
                    return await got.json()

            [quant] = await json2(
                "stock.quant",
                "search",
                {"domain": [["product_id.default_code", "=", "WB-0001"],
                            ["location_id.barcode", "=", "WH-STOCK"]]},
            )  # fmt: skip
            await json2("stock.quant", "write",
                        {"ids": [quant], "vals": {"inventory_quantity": before - 2},
                         "context": INVENTORY_MODE})  # fmt: skip
            applied = await json2("stock.quant", "action_apply_inventory",
                                  {"ids": [quant], "context": INVENTORY_MODE})  # fmt: skip
        assert applied is None
        assert sandbox.on_hand("WB-0001") == before - 2


@pytest.mark.parametrize("version", VERSIONS)
def test_only_a_stock_manager_applies_a_count_up_to_18(version: int) -> None:
    sandbox = sandbox_of(version)
    ops = sandbox.user("ops")  # may write, is no administrator
    quant = quant_of(sandbox, "WB-0001")
    before = sandbox.on_hand("WB-0001")

    def as_ops(method: str, *args: Any, **kwargs: Any) -> Any:
        return call_kw(sandbox.registry, ops, "stock.quant", method, list(args), kwargs)

    as_ops("write", [quant], {"inventory_quantity": before - 1}, context=INVENTORY_MODE)
    if version <= 18:
        with pytest.raises(UserError, match="Only a stock manager"):
            as_ops("action_apply_inventory", [quant], context=INVENTORY_MODE)
        assert sandbox.on_hand("WB-0001") == before
    else:
        as_ops("action_apply_inventory", [quant], context=INVENTORY_MODE)
        assert sandbox.on_hand("WB-0001") == before - 1


@pytest.mark.parametrize("version", VERSIONS)
def test_create_with_values_only_as_a_keyword_fails_over_rpc_up_to_18(version: int) -> None:
    """odoo/api.py ``_call_kw_model_create`` reads ``args[0]`` (16.0-18.0)."""
    sandbox = sandbox_of(version)
    values = [{"name": "Shelf 7", "complete_name": "WH/Stock/Shelf 7"}]
    if version <= 18:
        with pytest.raises(InternalError, match="tuple index out of range"):
            call_kw(sandbox.registry, sandbox.admin, "stock.location", "create", [],
                    {"vals_list": values})  # fmt: skip
    else:
        assert call_kw(sandbox.registry, sandbox.admin, "stock.location", "create", [],
                       {"vals_list": values})  # fmt: skip
    assert call(sandbox, "stock.location", "create", values)  # positional: every version


@pytest.mark.parametrize("version", VERSIONS)
def test_a_lot_tracked_product_counted_without_a_lot_asks_first_up_to_18(version: int) -> None:
    sandbox = sandbox_of(version)
    storable = {"is_storable": True, "type": "consu"} if version >= 18 else {"type": "product"}
    vaccine = {"name": "Vaccine", "default_code": "LOT-1", "tracking": "lot", **storable}
    tracked = call(sandbox, "product.product", "create", vaccine)
    quant = call(sandbox, "stock.quant", "create",
                 {"product_id": tracked, "location_id": stock_location(sandbox),
                  "inventory_quantity": 2}, context=INVENTORY_MODE)  # fmt: skip
    answer = call(sandbox, "stock.quant", "action_apply_inventory", [quant], context=INVENTORY_MODE)
    if version <= 18:
        assert answer["res_model"] == "stock.track.confirmation"
        assert sandbox.on_hand("LOT-1") == 0
    else:
        assert answer is None
        assert sandbox.on_hand("LOT-1") == 2
