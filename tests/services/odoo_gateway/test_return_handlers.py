"""The gateway's return commands on the bus (issue 20): the RMA's return picking made once,
received as inspected once (ReturnStockPosted), the credit note posted once (CreditNoteIssued),
a refusal answered as CreditNoteRefused and posted by a later attempt, what Odoo cannot take
dead-lettered with the reason."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nats.aio.client import Client as NatsClient

from tests.services.odoo_gateway.stage import (
    OdooStage,
    published,
    send_command,
    wait_for_commands_done,
    wait_for_events,
)
from waybill_contracts import SubjectMap
from waybill_contracts.events import CreditNoteIssued, CreditNoteRefused, ReturnStockPosted
from waybill_contracts.model import Quantity
from waybill_contracts.return_commands import (
    CreateReturnInOdoo,
    IssueCreditNoteInOdoo,
    ReceiveReturnInOdoo,
)
from waybill_contracts.returns import CreditedLine, InspectedLine, ReturnLine
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.odoo.inspection import OrderView
from waybill_sandboxes.odoo.methods import call_kw


def units(n: float) -> Quantity:
    return Quantity(value=Decimal(str(n)), uom="Units")


def delivered(stage: OdooStage) -> tuple[OrderView, int, str]:
    """An order of 3 x WB-0001 and 2 x WB-0002, delivered and invoiced: (order, delivery id,
    delivery name)."""
    order = stage.new_order(("WB-0001", 3), ("WB-0002", 2))
    stage.sandbox.deliver_order(order.name)
    [name] = stage.sandbox.order(order.name).pickings
    [row] = read(stage, "stock.picking", [("name", "=", name)], ["id"])
    return stage.sandbox.order(order.name), int(row["id"]), name


def read(stage: OdooStage, model: str, domain: list[Any], fields: list[str]) -> list[Any]:
    sandbox = stage.sandbox
    return list(call_kw(sandbox.registry, sandbox.admin, model, "search_read", [domain, fields]))


def create(return_id: str, delivery_id: int, delivery: str, **lines: int) -> CreateReturnInOdoo:
    return CreateReturnInOdoo(
        return_id=return_id,
        order_ref=delivery,
        odoo_picking_id=delivery_id,
        lines=tuple(
            ReturnLine(line_no=n, sku=sku.replace("_", "-"), quantity=units(q))
            for n, (sku, q) in enumerate(lines.items(), start=1)
        ),
    )


def receive(
    return_id: str, delivery_id: int, delivery: str, *found: tuple[str, int, int, int]
) -> ReceiveReturnInOdoo:
    return ReceiveReturnInOdoo(
        return_id=return_id,
        order_ref=delivery,
        odoo_picking_id=delivery_id,
        lines=tuple(
            InspectedLine(
                line_no=n, sku=sku, resellable=units(r), damaged=units(d), missing=units(m)
            )
            for n, (sku, r, d, m) in enumerate(found, start=1)
        ),
    )


def credit(return_id: str, delivery: str, attempt: int = 1, **lines: int) -> IssueCreditNoteInOdoo:
    return IssueCreditNoteInOdoo(
        return_id=return_id,
        order_ref=delivery,
        attempt=attempt,
        lines=tuple(
            CreditedLine(sku=sku.replace("_", "-"), quantity=units(q)) for sku, q in lines.items()
        ),
    )


def refunds(stage: OdooStage) -> list[Any]:
    return read(stage, "account.move", [("move_type", "=", "out_refund")], ["state", "name"])


def return_pickings(stage: OdooStage) -> list[Any]:
    return read(stage, "stock.picking", [("picking_type_code", "=", "incoming")], ["state"])


async def test_an_rma_is_made_received_and_credited_once_under_redelivery(
    any_odoo: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage, sandbox = any_odoo, any_odoo.sandbox
    _order, delivery_id, delivery = delivered(stage)
    one, two = sandbox.on_hand("WB-0001"), sandbox.on_hand("WB-0002")
    async with stage.gateway(nats_url, nats_prefix):
        # Every command twice under two message ids (a redelivery after a lost ack).
        for _ in range(2):
            await send_command(
                nc, nats_prefix, create("RMA-1", delivery_id, delivery, WB_0001=3, WB_0002=2)
            )
        await wait_for_commands_done(nc, nats_prefix)
        assert [p["state"] for p in return_pickings(stage)] == ["assigned"]
        inspected = receive(
            "RMA-1", delivery_id, delivery, ("WB-0001", 2, 1, 0), ("WB-0002", 1, 0, 1)
        )
        for _ in range(2):
            await send_command(nc, nats_prefix, inspected)
        [posted] = await wait_for_events(nc, nats_prefix, ReturnStockPosted)
        for _ in range(2):
            await send_command(nc, nats_prefix, credit("RMA-1", delivery, WB_0001=2, WB_0002=1))
        [issued] = await wait_for_events(nc, nats_prefix, CreditNoteIssued)
        await wait_for_commands_done(nc, nats_prefix)
        assert len(await published(nc, nats_prefix, ReturnStockPosted)) == 1
        assert len(await published(nc, nats_prefix, CreditNoteIssued)) == 1
    [picking] = return_pickings(stage)
    assert picking["state"] == "done" and posted.odoo_return_picking_id == picking["id"]
    assert (posted.return_id, posted.order_ref, posted.lines) == (
        "RMA-1",
        delivery,
        inspected.lines,
    )
    assert sandbox.on_hand("WB-0001") == one + 2  # 3 received, the damaged one scrapped
    assert sandbox.on_hand("WB-0002") == two + 1  # the missing one never came
    assert sandbox.on_hand("WB-0001", "Virtual Locations/Scrap") == 1
    [note] = refunds(stage)
    assert note["state"] == "posted"
    assert (issued.odoo_credit_note_id, issued.credit_note_ref) == (note["id"], note["name"])
    assert issued.amount.amount > 0 and issued.amount.currency == "EUR"
    assert await dead_letters(nc, SubjectMap(nats_prefix)) == []


async def test_a_refused_credit_note_is_answered_once_per_attempt_and_posted_by_the_next(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    order, _delivery_id, delivery = delivered(stage)
    stage.sandbox.refuse_credit_notes("The lock date for accounting is set.", times=1)
    first = credit("RMA-2", delivery, attempt=1, WB_0001=1)
    async with stage.gateway(nats_url, nats_prefix):
        await send_command(nc, nats_prefix, first)
        [refused] = await wait_for_events(nc, nats_prefix, CreditNoteRefused)
        await wait_for_commands_done(nc, nats_prefix)
        [draft] = refunds(stage)
        assert draft["state"] == "draft"
        # The same attempt delivered again after the fault is gone: acted on once, so still
        # refused and nothing posted; the operator's retry is the next attempt.
        stage.sandbox.refuse_credit_notes("", times=0)
        await send_command(nc, nats_prefix, first)
        await wait_for_commands_done(nc, nats_prefix)
        assert [n["state"] for n in refunds(stage)] == ["draft"]
        assert await published(nc, nats_prefix, CreditNoteIssued) == []
        await send_command(nc, nats_prefix, credit("RMA-2", delivery, attempt=2, WB_0001=1))
        [issued] = await wait_for_events(nc, nats_prefix, CreditNoteIssued)
    assert refused.reason == "The lock date for accounting is set."
    assert (refused.return_id, refused.order_ref) == ("RMA-2", delivery)
    assert issued.odoo_credit_note_id == draft["id"]
    assert [n["state"] for n in refunds(stage)] == ["posted"]
    assert len(await published(nc, nats_prefix, CreditNoteRefused)) == 1
    assert order.name  # the order the credit note reverses the invoice of
    assert await dead_letters(nc, SubjectMap(nats_prefix)) == []


async def test_what_odoo_cannot_take_is_a_dead_letter_naming_it(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    _order, delivery_id, delivery = delivered(stage)
    undelivered = stage.new_order(("WB-0001", 1))
    [open_name] = stage.sandbox.order(undelivered.name).pickings
    [open_row] = read(stage, "stock.picking", [("name", "=", open_name)], ["id"])
    async with stage.gateway(nats_url, nats_prefix):
        await send_command(nc, nats_prefix, create("RMA-3", delivery_id, delivery, WB_0001=4))
        await send_command(nc, nats_prefix, create("RMA-4", open_row["id"], open_name, WB_0001=1))
        await send_command(nc, nats_prefix, create("RMA-5", delivery_id, delivery, WB_0002=2))
        await wait_for_commands_done(nc, nats_prefix)
        # An inspection that does not add up to what the return expects.
        await send_command(
            nc, nats_prefix, receive("RMA-5", delivery_id, delivery, ("WB-0002", 1, 0, 0))
        )
        await send_command(nc, nats_prefix, credit("RMA-5", delivery, WB_0001=9))
        letters = await eventually(
            lambda: dead_letters(nc, SubjectMap(nats_prefix)),
            until=lambda found: len(found) >= 4,
            what="four dead letters",
        )
    reasons = sorted(letter.error_message for letter in letters)
    assert all(letter.reason == "permanent error" for letter in letters)
    assert any("delivered 3" in r for r in reasons), reasons
    assert any("not done" in r for r in reasons), reasons
    assert any("inspection accounts for 1" in r for r in reasons), reasons
    assert any("invoiced 3" in r for r in reasons), reasons
    assert len(return_pickings(stage)) == 1  # RMA-5's, never received
    assert refunds(stage) == []
