"""Record delivery and post exception: chatter notes and the ops user's to-do, each once."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.aio.client import Client as NatsClient

from tests.services.odoo_gateway.stage import (
    OdooStage,
    published,
    send_command,
    shipment_command,
    wait_for_commands_done,
    wait_for_events,
)
from waybill_contracts.commands import PostExceptionInOdoo, PostNoteInOdoo, RecordDeliveryInOdoo
from waybill_contracts.events import DeliveryRecordedInOdoo, ShipmentRecordedInOdoo
from waybill_sandboxes.odoo.inspection import PickingView


def exception_command(picking: PickingView, exception_id: str = "exc-1") -> PostExceptionInOdoo:
    return PostExceptionInOdoo(
        exception_id=exception_id,
        order_ref=picking.name,
        odoo_picking_id=picking.id,
        summary=f"Short pick on {picking.name}",
        detail="WB-0001: 1 of 2 picked",
    )


async def test_posted_exception_leaves_a_note_and_a_todo_for_the_ops_user(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        await send_command(nc, nats_prefix, exception_command(picking))
        await wait_for_commands_done(nc, nats_prefix)
    after = stage.sandbox.picking(picking.name)
    [note] = after.messages
    assert note.subtype == "Note"
    assert f"Short pick on {picking.name}" in note.body and "exc-1" in note.body
    assert "WB-0001: 1 of 2 picked" in note.body
    [todo] = after.activities
    assert (todo.activity_type, todo.assigned_to) == ("To-Do", "ops")
    assert todo.summary == f"Short pick on {picking.name}"
    assert todo.note == "WB-0001: 1 of 2 picked"


async def test_exception_is_posted_once_per_exception_id(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        for exception_id in ("exc-1", "exc-1", "exc-2"):
            await send_command(nc, nats_prefix, exception_command(picking, exception_id))
        await wait_for_commands_done(nc, nats_prefix)
    after = stage.sandbox.picking(picking.name)
    assert [sum(exc in m.body for m in after.messages) for exc in ("exc-1", "exc-2")] == [1, 1]
    assert len(after.activities) == 2


async def test_exception_for_an_unknown_ops_user_goes_to_the_integration_user(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    async with stage.gateway(nats_url, nats_prefix, odoo_ops_login="nobody"):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        await send_command(nc, nats_prefix, exception_command(picking))
        await wait_for_commands_done(nc, nats_prefix)
    [todo] = stage.sandbox.picking(picking.name).activities
    assert todo.assigned_to == "admin"


async def test_a_plain_note_is_posted_once_per_note_id_and_asks_nobody_to_act(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        for note_id in ("note-1", "note-1", "note-2"):
            command = PostNoteInOdoo(
                note_id=note_id,
                order_ref=picking.name,
                odoo_picking_id=picking.id,
                text=f"Booking <failed> with carrier-a; booking again ({note_id})",
            )
            await send_command(nc, nats_prefix, command)
        await wait_for_commands_done(nc, nats_prefix)
    after = stage.sandbox.picking(picking.name)
    assert [
        sum(f"Reference: {n}" in m.body for m in after.messages) for n in ("note-1", "note-2")
    ] == [1, 1]
    assert {m.subtype for m in after.messages} == {"Note"}
    assert "Booking &lt;failed&gt; with carrier-a" in after.messages[0].body  # escaped
    assert after.activities == []


async def test_recorded_delivery_is_noted_once_and_announced(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        command = RecordDeliveryInOdoo(
            order_ref=picking.name,
            odoo_picking_id=picking.id,
            shipment_id="shp-1",
            tracking_number="TRK-DELIVERED",
            delivered_at=datetime(2025, 3, 14, 9, 30, tzinfo=UTC),
        )
        await send_command(nc, nats_prefix, command)
        await send_command(nc, nats_prefix, command)
        await wait_for_commands_done(nc, nats_prefix)
        [recorded] = await wait_for_events(nc, nats_prefix, DeliveryRecordedInOdoo)
    [note] = stage.sandbox.picking(picking.name).messages
    assert "Delivered on 2025-03-14 09:30 UTC" in note.body and "TRK-DELIVERED" in note.body
    assert (recorded.order_ref, recorded.odoo_picking_id) == (picking.name, picking.id)
    assert len(await published(nc, nats_prefix, DeliveryRecordedInOdoo)) == 1


async def test_a_delivery_noted_after_its_shipment_reads_no_picking(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        await send_command(nc, nats_prefix, shipment_command(picking, tracking="TRK-SHIPPED"))
        [shipped] = await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
        reads = stage.meter.calls["stock.picking", "search_read"]
        delivered = RecordDeliveryInOdoo(
            order_ref=picking.name,
            odoo_picking_id=picking.id,
            shipment_id="shp-1",
            tracking_number="TRK-SHIPPED",
            delivered_at=datetime(2025, 3, 14, 9, 30, tzinfo=UTC),
        )
        await send_command(nc, nats_prefix, delivered)
        [recorded] = await wait_for_events(nc, nats_prefix, DeliveryRecordedInOdoo)
    assert shipped.picking_validated is True
    assert recorded.odoo_picking_id == picking.id
    assert [m.body for m in stage.sandbox.picking(picking.name).messages][-1].startswith(
        "<p>Delivered on 2025-03-14 09:30 UTC"
    )
    # The picking was validated by this gateway: Odoo cannot delete or cancel it since,
    # so the note needs no read to know it exists (one read before).
    assert stage.meter.calls["stock.picking", "search_read"] == reads
