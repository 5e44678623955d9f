"""The gateway's side of customer returns against the Odoo sandbox, on 16-19: the return picking
made from the delivery once per RMA, received as inspected (stock or scrap), and the credit note
of the accepted lines made once, a refusal reported as such."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.services.odoo_gateway.stage import OdooStage
from waybill_odoo_gateway.credit_notes import (
    CreditNoteRefused,
    CreditNoteRequest,
    issue_credit_note,
)
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.return_pickings import (
    InspectedLine,
    ReturnedLine,
    ReturnRequest,
    create_return,
    find_return,
    receive_return,
)
from waybill_runtime.outcomes import Outcome, PermanentError, classify
from waybill_sandboxes.odoo.methods import call_kw


def delivered(stage: OdooStage) -> tuple[str, str]:
    """An order of 3 x WB-0001 and 2 x WB-0002, delivered and invoiced: (order, delivery)."""
    order = stage.new_order(("WB-0001", 3), ("WB-0002", 2))
    stage.sandbox.deliver_order(order.name)
    [delivery] = stage.sandbox.order(order.name).pickings
    return order.name, delivery


def read(stage: OdooStage, model: str, domain: list[Any], fields: list[str]) -> list[Any]:
    sandbox = stage.sandbox
    return list(call_kw(sandbox.registry, sandbox.admin, model, "search_read", [domain, fields]))


def returned(**lines: int) -> tuple[ReturnedLine, ...]:
    """``WB_0001=2`` -> 2 x WB-0001."""
    return tuple(
        ReturnedLine(sku=sku.replace("_", "-"), quantity=Decimal(n)) for sku, n in lines.items()
    )


def rma(reference: str, delivery: str, **lines: int) -> ReturnRequest:
    return ReturnRequest(reference=reference, delivery=delivery, lines=returned(**lines))


async def test_a_return_picking_is_made_from_the_delivery_once(
    any_odoo: OdooStage, odoo: OdooClient
) -> None:
    _order, delivery = delivered(any_odoo)
    request = rma("RMA-1", delivery, WB_0001=2, WB_0002=1)
    made = await create_return(odoo, request)
    assert made.created and made.name.startswith("WH/IN/") and made.state == "assigned"
    again = await create_return(odoo, request)
    assert (again.id, again.created) == (made.id, False)
    assert await find_return(odoo, "RMA-1", delivery) == again
    with pytest.raises(PermanentError, match="was made already as WH/IN/"):
        await create_return(odoo, rma("RMA-1", delivery, WB_0001=1))
    returns = read(any_odoo, "stock.picking", [("origin", "like", f"Return of {delivery}")],
                   ["origin", "move_ids"])  # fmt: skip
    assert [r["origin"] for r in returns] == [f"Return of {delivery} (RMA-1)"]
    moves = read(any_odoo, "stock.move", [("picking_id", "=", made.id)],
                 ["product_uom_qty", "origin_returned_move_id"])  # fmt: skip
    assert sorted(m["product_uom_qty"] for m in moves) == [1, 2]
    assert all(m["origin_returned_move_id"] for m in moves)


async def test_an_attempt_cut_off_before_marking_its_return_is_not_repeated(
    any_odoo: OdooStage, odoo: OdooClient
) -> None:
    _order, delivery = delivered(any_odoo)
    made = await create_return(odoo, rma("RMA-2", delivery, WB_0001=1))
    # As if the gateway had stopped after Odoo's wizard and before the mark.
    sandbox = any_odoo.sandbox
    sandbox.registry.write("stock.picking", [made.id], {"origin": f"Return of {delivery}"}, 2)
    again = await create_return(odoo, rma("RMA-2", delivery, WB_0001=1))
    assert again.id == made.id
    assert len(read(any_odoo, "stock.picking", [("picking_type_code", "=", "incoming")],
                    ["id"])) == 1  # fmt: skip


async def test_a_return_odoo_cannot_make_is_a_permanent_error_naming_why(
    any_odoo: OdooStage, odoo: OdooClient
) -> None:
    _order, delivery = delivered(any_odoo)
    open_order = any_odoo.new_order(("WB-0003", 1))
    [open_delivery] = any_odoo.sandbox.order(open_order.name).pickings
    cases = [
        (rma("RMA-3", delivery, WB_0001=4), "delivered 3"),
        (rma("RMA-3", delivery, WB_0003=1), "WB-0003 was not delivered"),
        (rma("RMA-3", "WH/OUT/99999"), "no product is returned"),
        (rma("RMA-3", "WH/OUT/99999", WB_0001=1), "no delivery 'WH/OUT/99999'"),
        (rma("RMA-3", open_delivery, WB_0003=1), "not done"),
        (rma(" ", delivery, WB_0001=1), "without the return's"),
        (rma("RMA-3", delivery, WB_0001=0), "only positive quantities are returned"),
    ]
    for request, reason in cases:
        with pytest.raises(PermanentError, match=reason) as refused:
            await create_return(odoo, request)
        assert classify(refused.value).outcome is Outcome.DEAD_LETTER
    assert not read(any_odoo, "stock.picking", [("picking_type_code", "=", "incoming")], ["id"])


async def test_receiving_puts_resellable_goods_in_stock_and_scraps_damaged_ones(
    any_odoo: OdooStage, odoo: OdooClient
) -> None:
    sandbox = any_odoo.sandbox
    _order, delivery = delivered(any_odoo)
    one, two = sandbox.on_hand("WB-0001"), sandbox.on_hand("WB-0002")
    made = await create_return(odoo, rma("RMA-4", delivery, WB_0001=3, WB_0002=2))
    inspected = [
        InspectedLine(sku="WB-0001", resellable=Decimal(2), damaged=Decimal(1)),
        InspectedLine(sku="WB-0002", resellable=Decimal(1), missing=Decimal(1)),
    ]
    received = await receive_return(odoo, made.id, inspected)
    assert received.state == "done" and len(received.scrap_ids) == 1
    assert sandbox.on_hand("WB-0001") == one + 2  # 3 received, 1 of them scrapped
    assert sandbox.on_hand("WB-0002") == two + 1  # the missing one never arrived
    assert sandbox.on_hand("WB-0001", "Virtual Locations/Scrap") == 1
    assert sandbox.on_hand("WB-0002", "Virtual Locations/Scrap") == 0
    # Received again (a redelivered message): nothing more moves.
    assert await receive_return(odoo, made.id, inspected) == received
    assert sandbox.on_hand("WB-0001") == one + 2
    assert sandbox.on_hand("WB-0001", "Virtual Locations/Scrap") == 1
    assert len(read(any_odoo, "stock.scrap", [], ["id"])) == 1
    assert not read(any_odoo, "stock.picking", [("backorder_id", "=", made.id)], ["id"])


async def test_an_inspection_that_does_not_add_up_is_refused_before_anything_moves(
    any_odoo: OdooStage, odoo: OdooClient
) -> None:
    _order, delivery = delivered(any_odoo)
    made = await create_return(odoo, rma("RMA-5", delivery, WB_0001=3))
    for inspected, reason in [
        ([InspectedLine(sku="WB-0001", resellable=Decimal(2))], "accounts for 2"),
        ([], "no inspection result for WB-0001"),
        ([InspectedLine(sku="WB-0001", resellable=Decimal(3)),
          InspectedLine(sku="WB-0002", resellable=Decimal(1))], "does not return WB-0002"),
    ]:  # fmt: skip
        with pytest.raises(PermanentError, match=reason):
            await receive_return(odoo, made.id, inspected)
    [picking] = read(any_odoo, "stock.picking", [("id", "=", made.id)], ["state"])
    assert picking["state"] == "assigned"
    nothing = [InspectedLine(sku="WB-0001", missing=Decimal(3))]
    assert (await receive_return(odoo, made.id, nothing)).state == "cancel"


def accepted(reference: str, order: str, **lines: int) -> CreditNoteRequest:
    return CreditNoteRequest(reference=reference, order=order, lines=returned(**lines))


def unit_price(stage: OdooStage, sku: str) -> Decimal:
    [line] = read(stage, "sale.order.line", [("product_id.default_code", "=", sku)],
                  ["price_unit"])  # fmt: skip
    return Decimal(repr(line["price_unit"]))


async def test_the_credit_note_credits_the_accepted_lines_once(
    any_odoo: OdooStage, odoo: OdooClient
) -> None:
    order, _delivery = delivered(any_odoo)
    request = accepted("RMA-6", order, WB_0001=2)
    note = await issue_credit_note(odoo, request)
    assert note.created and note.state == "posted" and note.name.startswith("RINV/")
    assert note.invoice.startswith("INV/")
    assert note.amount_total == (2 * unit_price(any_odoo, "WB-0001")).quantize(Decimal("0.01"))
    again = await issue_credit_note(odoo, request)
    assert (again.id, again.created, again.amount_total) == (note.id, False, note.amount_total)
    with pytest.raises(PermanentError, match="was credited already"):
        await issue_credit_note(odoo, accepted("RMA-6", order, WB_0001=3))
    refunds = read(any_odoo, "account.move", [("move_type", "=", "out_refund")],
                   ["ref", "reversed_entry_id"])  # fmt: skip
    assert [r["ref"] for r in refunds] == [f"Reversal of: {note.invoice}, Return RMA-6"]


async def test_a_refused_credit_note_is_reported_and_posted_once_resolved(
    any_odoo: OdooStage, odoo: OdooClient
) -> None:
    order, _delivery = delivered(any_odoo)
    request = accepted("RMA-7", order, WB_0001=1, WB_0002=2)
    any_odoo.sandbox.refuse_credit_notes("The lock date for accounting is set.")
    with pytest.raises(CreditNoteRefused, match="The lock date for accounting is set") as refused:
        await issue_credit_note(odoo, request)
    assert classify(refused.value).outcome is Outcome.DEAD_LETTER
    [draft] = read(any_odoo, "account.move", [("id", "=", refused.value.credit_note_id)],
                   ["state", "move_type"])  # fmt: skip
    assert (draft["state"], draft["move_type"]) == ("draft", "out_refund")
    # An operator resolved it: the retry posts the same credit note.
    note = await issue_credit_note(odoo, request)
    assert note.id == refused.value.credit_note_id and note.state == "posted"
    expected = unit_price(any_odoo, "WB-0001") + 2 * unit_price(any_odoo, "WB-0002")
    assert note.amount_total == expected.quantize(Decimal("0.01"))
    assert len(read(any_odoo, "account.move", [("move_type", "=", "out_refund")], ["id"])) == 1


async def test_crediting_what_was_not_invoiced_is_a_permanent_error(
    any_odoo: OdooStage, odoo: OdooClient
) -> None:
    order, _delivery = delivered(any_odoo)
    not_invoiced = any_odoo.new_order(("WB-0001", 1))
    for request, reason in [
        (accepted("RMA-8", order, WB_0001=4), "invoiced 3"),
        (accepted("RMA-8", order, WB_0003=1), "invoiced 0"),
        (accepted("RMA-8", not_invoiced.name, WB_0001=1), "no posted customer invoice"),
        (accepted("RMA-8", "S99999", WB_0001=1), "no sale order 'S99999'"),
        (accepted("RMA-8", order), "no product is credited"),
    ]:
        with pytest.raises(PermanentError, match=reason):
            await issue_credit_note(odoo, request)
    assert not read(any_odoo, "account.move", [("move_type", "=", "out_refund")], ["id"])


async def test_a_credit_note_left_in_draft_by_a_cut_off_attempt_is_finished_not_repeated(
    any_odoo: OdooStage, odoo: OdooClient
) -> None:
    order, _delivery = delivered(any_odoo)
    sandbox = any_odoo.sandbox
    [invoice] = read(any_odoo, "account.move", [("invoice_origin", "=", order)],
                     ["name", "journal_id"])  # fmt: skip
    # As if the gateway had stopped right after Odoo's reversal: a draft with every line.
    values: dict[str, Any] = {"move_ids": [(6, 0, [invoice["id"]])], "reason": "Return RMA-10",
                              "journal_id": invoice["journal_id"][0]}  # fmt: skip
    if sandbox.version.major == 16:
        values["refund_method"] = "refund"
    method = "reverse_moves" if sandbox.version.major == 16 else "refund_moves"
    wizard = call_kw(sandbox.registry, sandbox.admin, "account.move.reversal", "create", [values])
    call_kw(sandbox.registry, sandbox.admin, "account.move.reversal", method, [[wizard]])
    [draft] = read(any_odoo, "account.move", [("move_type", "=", "out_refund")], ["state"])
    assert draft["state"] == "draft"
    note = await issue_credit_note(odoo, accepted("RMA-10", order, WB_0002=1))
    assert (note.id, note.created, note.state) == (draft["id"], False, "posted")
    assert note.amount_total == unit_price(any_odoo, "WB-0002").quantize(Decimal("0.01"))
