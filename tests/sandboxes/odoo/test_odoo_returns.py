"""Customer returns in the Odoo sandbox, as Odoo 16-19 make them: the return wizard on a done
delivery, receiving into stock, scrapping damaged goods, invoices and credit notes by reversal."""

from __future__ import annotations

import asyncio
import xmlrpc.client
from typing import Any

import aiohttp
import pytest

from tests.sandboxes.odoo.running import running_odoo
from waybill_sandboxes.odoo import OdooSandbox, OdooSettings
from waybill_sandboxes.odoo.exceptions import InternalError, UserError
from waybill_sandboxes.odoo.methods import call_kw

VERSIONS = [16, 17, 18, 19]


def delivered_sandbox(version: int) -> tuple[OdooSandbox, str]:
    """A sandbox with one order of 3 x WB-0001 and 2 x WB-0002, delivered and invoiced."""
    sandbox = OdooSandbox(OdooSettings(version=version, seed=5, customers=1, products=3, orders=0))
    order = sandbox.create_order(lines=[("WB-0001", 3), ("WB-0002", 2)])
    assert sandbox.deliver_order(order.name) is not None
    return sandbox, order.name


def call(sandbox: OdooSandbox, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
    return call_kw(sandbox.registry, sandbox.admin, model, method, list(args), kwargs)


def product(sandbox: OdooSandbox, sku: str) -> int:
    [found] = call(sandbox, "product.product", "search", [("default_code", "=", sku)])
    return int(found)


def delivery_of(sandbox: OdooSandbox, order: str) -> dict[str, Any]:
    [row] = call(sandbox, "stock.picking", "search_read", [("origin", "=", order)],
                 ["name", "state", "move_ids", "location_id"])  # fmt: skip
    return dict(row)


def return_lines(sandbox: OdooSandbox, delivery: dict[str, Any], **quantities: float) -> list[Any]:
    moves = call(sandbox, "stock.move", "read", delivery["move_ids"], ["product_id"])
    lines = []
    for move in moves:
        sku = call(sandbox, "product.product", "read", [move["product_id"][0]],
                   ["default_code"])[0]["default_code"]  # fmt: skip
        if sku.replace("-", "_") in quantities:
            values = {"product_id": move["product_id"][0], "move_id": move["id"],
                      "quantity": quantities[sku.replace("-", "_")]}  # fmt: skip
            lines.append((0, 0, values))
    return lines


def make_return(sandbox: OdooSandbox, delivery: dict[str, Any], **quantities: float) -> int:
    values: dict[str, Any] = {
        "picking_id": delivery["id"],
        "product_return_moves": return_lines(sandbox, delivery, **quantities),
    }
    if sandbox.version.major <= 17:
        values["location_id"] = delivery["location_id"][0]
    wizard = call(sandbox, "stock.return.picking", "create", values)
    method = "create_returns" if sandbox.version.major <= 17 else "action_create_returns"
    action = call(sandbox, "stock.return.picking", method, [wizard])
    assert action["res_model"] == "stock.picking"
    return int(action["res_id"])


@pytest.mark.parametrize("version", VERSIONS)
def test_the_return_wizard_makes_a_receipt_from_the_done_delivery(version: int) -> None:
    sandbox, order = delivered_sandbox(version)
    delivery = delivery_of(sandbox, order)
    assert delivery["state"] == "done"
    returned = make_return(sandbox, delivery, WB_0001=2)
    [picking] = call(sandbox, "stock.picking", "read", [returned],
                     ["name", "origin", "state", "picking_type_code", "location_id",
                      "location_dest_id", "move_ids"])  # fmt: skip
    assert picking["name"].startswith("WH/IN/")
    assert picking["origin"] == f"Return of {delivery['name']}"
    assert picking["picking_type_code"] == "incoming"
    assert (picking["location_id"][1], picking["location_dest_id"][1]) == (
        "Partners/Customers",
        "WH/Stock",
    )
    assert picking["state"] == "assigned"
    [move] = call(sandbox, "stock.move", "read", picking["move_ids"],
                  ["product_uom_qty", "origin_returned_move_id", "product_id"])  # fmt: skip
    assert move["product_uom_qty"] == 2
    assert move["product_id"][0] == product(sandbox, "WB-0001")
    assert move["origin_returned_move_id"][0] in delivery["move_ids"]
    if version >= 17:
        [row] = call(sandbox, "stock.picking", "read", [returned], ["return_id"])
        assert row["return_id"][0] == delivery["id"]
    else:
        with pytest.raises(InternalError, match="Invalid field 'return_id'"):
            call(sandbox, "stock.picking", "read", [returned], ["return_id"])


@pytest.mark.parametrize("version", VERSIONS)
def test_the_wizard_method_has_the_versions_name(version: int) -> None:
    sandbox, order = delivered_sandbox(version)
    wizard = call(sandbox, "stock.return.picking", "create",
                  {"picking_id": delivery_of(sandbox, order)["id"]})  # fmt: skip
    renamed = "create_returns" if version >= 18 else "action_create_returns"
    with pytest.raises(InternalError, match=f"The method '{renamed}' does not exist"):
        call(sandbox, "stock.return.picking", renamed, [wizard])


@pytest.mark.parametrize("version", [16, 18])
def test_returning_nothing_or_an_undelivered_picking_is_refused(version: int) -> None:
    sandbox, order = delivered_sandbox(version)
    delivery = delivery_of(sandbox, order)
    method = "create_returns" if version <= 17 else "action_create_returns"
    # 18+ computes the lines from the picking with quantity 0; 16 has none without onchange.
    empty = call(sandbox, "stock.return.picking", "create", {"picking_id": delivery["id"]})
    with pytest.raises(UserError, match="at least one non-zero quantity"):
        call(sandbox, "stock.return.picking", method, [empty])
    ready = sandbox.create_order(lines=[("WB-0003", 1)])
    open_delivery = delivery_of(sandbox, ready.name)
    if version >= 18:  # the computed lines find nothing done to return
        with pytest.raises(UserError, match="No products to return"):
            call(sandbox, "stock.return.picking", "create", {"picking_id": open_delivery["id"]})
        return
    wizard = call(sandbox, "stock.return.picking", "create", {"picking_id": open_delivery["id"]})
    with pytest.raises(UserError, match="You may only return Done pickings"):
        call(sandbox, "stock.return.picking", method, [wizard])


@pytest.mark.parametrize("version", VERSIONS)
def test_a_received_return_is_back_in_stock_and_damaged_goods_are_scrapped(version: int) -> None:
    sandbox, order = delivered_sandbox(version)
    delivery = delivery_of(sandbox, order)
    before = sandbox.on_hand("WB-0001")
    returned = make_return(sandbox, delivery, WB_0001=3)
    [move] = call(sandbox, "stock.picking", "read", [returned], ["move_ids"])[0]["move_ids"]
    done_field = "quantity_done" if version == 16 else "quantity"
    call(sandbox, "stock.move", "write", [move], {done_field: 3})
    answer = call(sandbox, "stock.picking", "button_validate", [returned],
                  context={"skip_sms": True, "skip_backorder": True})  # fmt: skip
    assert answer is True
    assert sandbox.on_hand("WB-0001") == before + 3
    scrap = call(sandbox, "stock.scrap", "create", {
        "product_id": product(sandbox, "WB-0001"), "scrap_qty": 1,
        "location_id": delivery["location_id"][0], "picking_id": returned,
        "scrap_location_id": call(sandbox, "stock.location", "search",
                                  [("scrap_location", "=", True)])[0]})  # fmt: skip
    assert call(sandbox, "stock.scrap", "action_validate", [scrap]) is True
    assert sandbox.on_hand("WB-0001") == before + 2
    assert sandbox.on_hand("WB-0001", "Virtual Locations/Scrap") == 1
    [row] = call(sandbox, "stock.scrap", "read", [scrap], ["state", "name"])
    assert row["state"] == "done" and row["name"].startswith("SP/")
    one = product(sandbox, "WB-0001")
    [line] = call(sandbox, "sale.order.line", "search_read", [("product_id", "=", one)],
                  ["qty_delivered"])  # fmt: skip
    assert line["qty_delivered"] == 0  # 3 delivered, 3 returned


@pytest.mark.parametrize("version", [17, 19])
def test_scrapping_more_than_on_hand_answers_the_insufficient_quantity_wizard(
    version: int,
) -> None:
    sandbox, _order = delivered_sandbox(version)
    [stock] = call(sandbox, "stock.location", "search", [("barcode", "=", "WH-STOCK")])
    [scrap_location] = call(sandbox, "stock.location", "search", [("scrap_location", "=", True)])
    scrap = call(sandbox, "stock.scrap", "create", {
        "product_id": product(sandbox, "WB-0001"), "scrap_qty": 100000,
        "location_id": stock, "scrap_location_id": scrap_location})  # fmt: skip
    answer = call(sandbox, "stock.scrap", "action_validate", [scrap])
    assert answer["res_model"] == "stock.warn.insufficient.qty.scrap"
    assert call(sandbox, "stock.scrap", "read", [scrap], ["state"])[0]["state"] == "draft"


def invoice_of(sandbox: OdooSandbox, order: str) -> dict[str, Any]:
    [row] = call(sandbox, "sale.order", "search_read", [("name", "=", order)], ["invoice_ids"])
    [invoice] = call(sandbox, "account.move", "read", row["invoice_ids"],
                     ["name", "move_type", "state", "amount_total", "journal_id",
                      "invoice_line_ids", "payment_state"])  # fmt: skip
    return dict(invoice)


def reverse(sandbox: OdooSandbox, invoice: dict[str, Any], reason: str) -> int:
    values: dict[str, Any] = {"move_ids": [(6, 0, [invoice["id"]])], "reason": reason,
                              "journal_id": invoice["journal_id"][0]}  # fmt: skip
    if sandbox.version.major == 16:
        values["refund_method"] = "refund"
        wizard = call(sandbox, "account.move.reversal", "create", values)
        action = call(sandbox, "account.move.reversal", "reverse_moves", [wizard])
    else:
        wizard = call(sandbox, "account.move.reversal", "create", values)
        action = call(sandbox, "account.move.reversal", "refund_moves", [wizard])
    return int(action["res_id"])


@pytest.mark.parametrize("version", VERSIONS)
def test_a_partial_credit_note_reverses_the_invoice_then_is_edited_and_posted(
    version: int,
) -> None:
    sandbox, order = delivered_sandbox(version)
    invoice = invoice_of(sandbox, order)
    assert (invoice["move_type"], invoice["state"]) == ("out_invoice", "posted")
    assert invoice["name"].startswith("INV/")
    lines = call(sandbox, "account.move.line", "read", invoice["invoice_line_ids"],
                 ["product_id", "quantity", "price_unit"])  # fmt: skip
    price = {row["product_id"][0]: row["price_unit"] for row in lines}
    assert invoice["amount_total"] == pytest.approx(
        sum(row["quantity"] * row["price_unit"] for row in lines)
    )
    credit_note = reverse(sandbox, invoice, "Return RMA-1")
    [draft] = call(sandbox, "account.move", "read", [credit_note],
                   ["move_type", "state", "ref", "reversed_entry_id", "name", "invoice_line_ids",
                    "amount_total"])  # fmt: skip
    assert (draft["move_type"], draft["state"], draft["name"]) == ("out_refund", "draft", "/")
    assert draft["ref"] == f"Reversal of: {invoice['name']}, Return RMA-1"
    assert draft["reversed_entry_id"][0] == invoice["id"]
    assert draft["amount_total"] == invoice["amount_total"]
    # Accept 1 of WB-0001 only: edit the draft as an accountant does, then post it.
    one = product(sandbox, "WB-0001")
    rows = call(sandbox, "account.move.line", "read", draft["invoice_line_ids"], ["product_id"])
    commands = [(1, r["id"], {"quantity": 1}) if r["product_id"][0] == one else (2, r["id"], 0)
                for r in rows]  # fmt: skip
    call(sandbox, "account.move", "write", [credit_note], {"invoice_line_ids": commands})
    assert call(sandbox, "account.move", "action_post", [credit_note]) is False
    [posted] = call(sandbox, "account.move", "read", [credit_note],
                    ["state", "name", "amount_total"])  # fmt: skip
    assert posted["state"] == "posted" and posted["name"].startswith("RINV/")
    assert posted["amount_total"] == pytest.approx(price[one])
    reversals = "reversal_move_ids" if version >= 18 else "reversal_move_id"
    [again] = call(sandbox, "account.move", "read", [invoice["id"]], [reversals, "payment_state"])
    assert again[reversals] == [credit_note]
    assert again["payment_state"] == "not_paid"  # a partial refund is not reconciled


@pytest.mark.parametrize("version", VERSIONS)
def test_the_reversal_wizard_speaks_the_versions_api(version: int) -> None:
    sandbox, order = delivered_sandbox(version)
    invoice = invoice_of(sandbox, order)
    if version == 16:
        full_refund = {"move_ids": [(6, 0, [invoice["id"]])], "refund_method": "cancel"}
        wizard = call(sandbox, "account.move.reversal", "create", full_refund)
        with pytest.raises(InternalError, match="'refund_moves' does not exist"):
            call(sandbox, "account.move.reversal", "refund_moves", [wizard])
        call(sandbox, "account.move.reversal", "reverse_moves", [wizard])
    else:
        with pytest.raises(InternalError, match="Invalid field 'refund_method'"):
            call(sandbox, "account.move.reversal", "create",
                 {"move_ids": [(6, 0, [invoice["id"]])], "refund_method": "cancel",
                  "journal_id": invoice["journal_id"][0]})  # fmt: skip
        with pytest.raises(UserError, match="mandatory field is not set"):
            call(sandbox, "account.move.reversal", "create",
                 {"move_ids": [(6, 0, [invoice["id"]])]})  # fmt: skip
        wizard = call(sandbox, "account.move.reversal", "create",
                      {"move_ids": [(6, 0, [invoice["id"]])],
                       "journal_id": invoice["journal_id"][0]})  # fmt: skip
        call(sandbox, "account.move.reversal", "reverse_moves", [wizard], is_modify=True)
    # A full refund: the credit note is posted and the invoice is reversed.
    [row] = call(sandbox, "account.move.reversal", "read", [wizard], ["new_move_ids"])
    states = call(sandbox, "account.move", "read", row["new_move_ids"], ["move_type", "state"])
    assert {(s["move_type"], s["state"]) for s in states} >= {("out_refund", "posted")}
    assert invoice_of(sandbox, order)["payment_state"] == "reversed"


@pytest.mark.parametrize("version", [16, 19])
def test_a_refused_credit_note_stays_in_draft_and_posts_once_resolved(version: int) -> None:
    sandbox, order = delivered_sandbox(version)
    credit_note = reverse(sandbox, invoice_of(sandbox, order), "Return RMA-2")
    sandbox.refuse_credit_notes("The period is locked until the end of the month.")
    with pytest.raises(UserError, match="The period is locked"):
        call(sandbox, "account.move", "action_post", [credit_note])
    assert call(sandbox, "account.move", "read", [credit_note], ["state"])[0]["state"] == "draft"
    call(sandbox, "account.move", "action_post", [credit_note])  # the refusal was for one call
    assert call(sandbox, "account.move", "read", [credit_note], ["state"])[0]["state"] == "posted"
    with pytest.raises(UserError, match="already posted"):
        call(sandbox, "account.move", "action_post", [credit_note])


def test_seeded_delivered_orders_are_invoiced_and_more_than_the_orders_is_refused() -> None:
    sandbox = OdooSandbox(OdooSettings(version=18, seed=3, orders=3, delivered_orders=2))
    states = [p.state for p in sandbox.pickings()]
    assert states == ["done", "done", "assigned"]
    invoices = call(sandbox, "account.move", "search_read", [("move_type", "=", "out_invoice")],
                    ["state", "invoice_origin"], order="id")  # fmt: skip
    assert [(i["state"], i["invoice_origin"]) for i in invoices] == [
        ("posted", "S00001"),
        ("posted", "S00002"),
    ]
    with pytest.raises(ValueError, match="delivered"):
        OdooSandbox(OdooSettings(version=18, orders=1, delivered_orders=2))


async def test_refusals_are_set_over_http_and_reach_xmlrpc_as_a_user_error_fault() -> None:
    async with running_odoo(version=17, orders=1, delivered_orders=1) as odoo17:
        sandbox = odoo17.sandbox
        url = f"{odoo17.url}/_sandbox/odoo/refusals/account.move.action_post"
        async with aiohttp.ClientSession() as http:
            async with http.put(url, json={"message": "Locked period", "times": 1}) as answer:
                assert answer.status == 200
            async with http.put(url, json={"times": 1}) as answer:
                assert answer.status == 400  # the message is required
        invoice = invoice_of(sandbox, "S00001")
        credit_note = reverse(sandbox, invoice, "Return RMA-9")

        def post_over_xmlrpc() -> Any:
            proxy = xmlrpc.client.ServerProxy(f"{odoo17.url}/xmlrpc/2/object")
            with pytest.raises(xmlrpc.client.Fault) as fault:
                proxy.execute_kw(
                    "waybill", 2, "admin", "account.move", "action_post", [[credit_note]]
                )
            return fault.value

        fault = await asyncio.to_thread(post_over_xmlrpc)
        # odoo/service/wsgi_server.py: a UserError is fault 2 (RPC_FAULT_CODE_WARNING), its text.
        assert (fault.faultCode, fault.faultString) == (2, "Locked period")
        assert (
            call(sandbox, "account.move", "read", [credit_note], ["state"])[0]["state"] == "draft"
        )
