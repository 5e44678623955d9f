"""What the carrier billed reaches the picking's carrier_price, once per invoice line."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from nats.aio.client import Client as NatsClient

from tests.services.odoo_gateway.stage import OdooStage, send_command, wait_for_commands_done
from waybill_contracts import SubjectMap
from waybill_contracts.commands import RecordFreightCostInOdoo
from waybill_contracts.model import Money
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.odoo.inspection import PickingView


def billed(picking: PickingView, amount: str, invoice_id: str = "inv-1") -> RecordFreightCostInOdoo:
    return RecordFreightCostInOdoo(
        order_ref=picking.name,
        odoo_picking_id=picking.id,
        shipment_id=f"shp-{picking.id}",
        carrier="carrier-a",
        invoice_id=invoice_id,
        billed=Money(amount=Decimal(amount), currency="USD"),
    )


def carrier_price(stage: OdooStage, picking: PickingView) -> object:
    return stage.sandbox.registry.value("stock.picking", picking.id, "carrier_price")


async def test_the_billed_amount_is_written_on_the_picking_once_per_invoice_line(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        writes_before = stage.sandbox.calls().get("stock.picking.write", 0)
        for _ in range(3):  # the orchestrator's command, redelivered or sent again
            await send_command(nc, nats_prefix, billed(picking, "9.35"))
        await wait_for_commands_done(nc, nats_prefix)
        assert carrier_price(stage, picking) == 9.35
        assert stage.sandbox.calls().get("stock.picking.write", 0) == writes_before + 1
        # A later invoice for the same shipment (the carrier's correction) is its own write.
        await send_command(nc, nats_prefix, billed(picking, "8.90", invoice_id="inv-2"))
        await wait_for_commands_done(nc, nats_prefix)
    assert carrier_price(stage, picking) == 8.90
    assert stage.sandbox.calls().get("stock.picking.write", 0) == writes_before + 2


async def test_a_picking_odoo_does_not_have_is_a_dead_letter_with_the_reason(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        missing = msgspec.structs.replace(picking, id=99999)
        await send_command(nc, nats_prefix, billed(missing, "9.35"))
        [letter] = await eventually(
            lambda: dead_letters(nc, SubjectMap(nats_prefix)), what="the dead letter"
        )
    assert letter.reason == "permanent error"
    assert "Odoo has no picking 99999" in letter.error_message
    assert carrier_price(stage, picking) != 9.35
