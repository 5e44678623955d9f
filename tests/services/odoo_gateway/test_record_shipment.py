"""Record shipment in Odoo: tracking ref, carrier, chatter note, validation; each once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.services.odoo_gateway.stage import (
    OdooStage,
    odoo_stage,
    picked_lines,
    published,
    send_command,
    shipment_command,
    wait_for_commands_done,
    wait_for_events,
)
from waybill_contracts import SubjectMap
from waybill_contracts.commands import RecordShipmentInOdoo
from waybill_contracts.events import ShipmentRecordedInOdoo
from waybill_odoo_gateway.chatter import post_note
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.deliveries import PICKING_FIELDS, Picking
from waybill_odoo_gateway.gateway import odoo_client_for
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.picking_validation import validate_in_full
from waybill_odoo_gateway.shipment_recording import shipment_note
from waybill_runtime.idempotency import OnceOnly
from waybill_runtime.settings import load_settings
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.delivery import DeliveryMode, DeliveryPolicy
from waybill_sandboxes.odoo.inspection import PickingView


async def test_recorded_shipment_is_written_noted_and_validated_in_odoo(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with stage.gateway(nats_url, nats_prefix):
        order = stage.new_order(("WB-0001", 2), ("WB-0002", 3))
        picking = stage.sandbox.picking(order.pickings[0])
        await send_command(nc, nats_prefix, shipment_command(picking, tracking="TRK-0001"))
        [recorded] = await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
    after = stage.sandbox.picking(picking.name)
    assert (after.state, after.carrier_tracking_ref, after.carrier) == (
        "done",
        "TRK-0001",
        "Carrier A",
    )
    assert [(m.demand, m.done) for m in after.moves] == [(2.0, 2.0), (3.0, 3.0)]
    [note] = after.messages
    assert note.subtype == "Note" and note.message_type == "comment"
    assert "TRK-0001" in note.body and "carrier-a" in note.body
    assert stage.sandbox.order(order.name).pickings == [picking.name]  # no backorder
    assert recorded.order_ref == picking.name
    assert recorded.tracking_number == "TRK-0001"
    assert recorded.picking_validated is True


async def test_a_delivery_picked_as_demanded_is_validated(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order(("WB-0001", 2), ("WB-0002", 3)).pickings[0])
        command = shipment_command(picking, tracking="TRK-FULL", lines=picked_lines(picking))
        await send_command(nc, nats_prefix, command)
        [recorded] = await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
    after = stage.sandbox.picking(picking.name)
    assert after.state == "done" and recorded.picking_validated is True
    assert [(m.demand, m.done) for m in after.moves] == [(2.0, 2.0), (3.0, 3.0)]
    assert "Not validated" not in after.messages[0].body


async def test_a_delivery_picked_short_is_recorded_with_its_picked_quantities_not_validated(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order(("WB-0001", 2), ("WB-0002", 3)).pickings[0])
        lines = picked_lines(picking, **{"WB-0002": 1})
        command = shipment_command(picking, tracking="TRK-SHORT", lines=lines)
        await send_command(nc, nats_prefix, command)
        [recorded] = await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
        await send_command(nc, nats_prefix, command)  # a repeat changes nothing more
        await wait_for_commands_done(nc, nats_prefix)
        events = await published(nc, nats_prefix, ShipmentRecordedInOdoo)
    after = stage.sandbox.picking(picking.name)
    # Left for a person to validate (and decide on a backorder), with what was picked.
    assert (after.state, after.carrier_tracking_ref) == ("assigned", "TRK-SHORT")
    assert [(m.demand, m.done) for m in after.moves] == [(2.0, 2.0), (3.0, 2.0)]
    [note] = after.messages
    assert "TRK-SHORT" in note.body and "Not validated" in note.body
    assert "picked 2 of 3" in note.body
    assert recorded.picking_validated is False
    assert len(events) == 1
    assert stage.sandbox.order(picking.origin or "").pickings == [picking.name]  # no backorder


async def test_repeated_record_shipment_changes_odoo_once(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        command = shipment_command(picking)
        for _ in range(3):  # three deliveries of one command, e.g. re-sent after a deadline
            await send_command(nc, nats_prefix, command)
        await wait_for_commands_done(nc, nats_prefix)
    calls = stage.sandbox.calls()
    assert calls["stock.picking.write"] == 1
    assert calls["stock.picking.message_post"] == 1
    assert calls["stock.picking.button_validate"] == 1
    assert len(stage.sandbox.picking(picking.name).messages) == 1
    assert len(await published(nc, nats_prefix, ShipmentRecordedInOdoo)) == 1


async def test_lock_conflict_while_validating_is_retried_without_repeating_earlier_writes(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        # A lock conflict that outlived Odoo's own retries (409 on JSON-2).
        stage.sandbox.registry.inject_lock_conflicts("stock.picking.button_validate", times=1)
        await send_command(nc, nats_prefix, shipment_command(picking))
        await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
    calls = stage.sandbox.calls()
    assert calls["stock.picking.button_validate"] == 2
    assert calls["stock.picking.write"] == 1
    assert calls["stock.picking.message_post"] == 1
    assert stage.sandbox.picking(picking.name).state == "done"


async def test_commands_wait_while_odoo_is_down_and_complete_when_it_is_back(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with stage.gateway(nats_url, nats_prefix, max_deliver=100):
        pickings = [stage.sandbox.picking(stage.new_order().pickings[0]) for _ in range(3)]
        before = await _calls_during_outage(stage)
        stage.sandbox.faults.set("*", outage=True)
        for number, picking in enumerate(pickings):
            await send_command(nc, nats_prefix, shipment_command(picking, f"TRK-DOWN-{number}"))
        await eventually(
            lambda: _calls_during_outage(stage),
            until=lambda n: n >= before + 6,
            what="the commands to be tried against the dead Odoo",
        )
        stage.sandbox.faults.clear()
        await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo, count=3)
    for number, picking in enumerate(pickings):
        after = stage.sandbox.picking(picking.name)
        assert (after.state, after.carrier_tracking_ref) == ("done", f"TRK-DOWN-{number}")
    assert await dead_letters(nc, SubjectMap(nats_prefix)) == []


async def test_odoo_answering_503_is_waited_out(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    async with stage.gateway(nats_url, nats_prefix, max_deliver=100):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        stage.sandbox.faults.set("stock.picking.write", error_rate=1.0, times=3)
        await send_command(nc, nats_prefix, shipment_command(picking))
        [recorded] = await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
    assert stage.sandbox.calls()["stock.picking.write"] == 4
    assert recorded.picking_validated is True


async def test_odoo_16_delivery_is_validated_through_its_done_quantities(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with odoo_stage(version=16, protocol="jsonrpc") as stage:
        picking = stage.sandbox.picking(stage.new_order(("WB-0004", 4)).pickings[0])
        assert [m.done for m in picking.moves] == [0.0]  # 16 would open the immediate wizard
        async with stage.gateway(nats_url, nats_prefix):
            await send_command(nc, nats_prefix, shipment_command(picking))
            await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
        after = stage.sandbox.picking(picking.name)
    assert after.state == "done"
    assert [(m.demand, m.done) for m in after.moves] == [(4.0, 4.0)]


async def test_carrier_code_is_mapped_to_the_configured_odoo_delivery_method(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    async with stage.gateway(nats_url, nats_prefix, odoo_carrier_names={"shippo": "Carrier B"}):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        await send_command(nc, nats_prefix, shipment_command(picking, carrier="shippo"))
        await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
    assert stage.sandbox.picking(picking.name).carrier == "Carrier B"


async def test_a_carrier_odoo_has_no_delivery_method_for_is_looked_up_once(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    async with stage.gateway(nats_url, nats_prefix):
        for number in range(3):
            picking = stage.sandbox.picking(stage.new_order().pickings[0])
            command = shipment_command(picking, f"TRK-NEW-{number}", carrier="new-carrier")
            await send_command(nc, nats_prefix, command)
            await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo, count=number + 1)
    assert stage.sandbox.picking(picking.name).carrier_tracking_ref == "TRK-NEW-2"
    # Two names tried ("new-carrier", "new carrier") for the first shipment only: the
    # miss is remembered for CARRIER_MISS_TTL_S (six searches before, two a shipment).
    assert stage.meter.calls["delivery.carrier", "search"] == 2


async def test_shipment_without_validation_leaves_the_picking_ready(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        command = msgspec.structs.replace(shipment_command(picking), validate_picking=False)
        await send_command(nc, nats_prefix, command)
        [recorded] = await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
    after = stage.sandbox.picking(picking.name)
    assert (after.state, after.carrier_tracking_ref) == (
        "assigned",
        command.shipment.tracking_number,
    )
    assert recorded.picking_validated is False


async def test_shipment_for_a_cancelled_delivery_is_dead_lettered_with_the_reason(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    async with stage.gateway(nats_url, nats_prefix):
        order = stage.new_order()
        picking = stage.sandbox.picking(order.pickings[0])
        stage.sandbox.cancel_order(order.name)
        await send_command(nc, nats_prefix, shipment_command(picking))
        [letter] = await eventually(
            lambda: dead_letters(nc, SubjectMap(nats_prefix)), what="the dead letter"
        )
    assert letter.reason == "permanent error"
    assert f"{picking.name} is cancelled in Odoo" in letter.error_message
    assert stage.sandbox.picking(picking.name).carrier_tracking_ref is None


async def test_shipment_for_a_picking_odoo_does_not_have_is_dead_lettered(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        ghost = msgspec.structs.replace(shipment_command(picking), odoo_picking_id=9999)
        await send_command(nc, nats_prefix, ghost)
        [letter] = await eventually(
            lambda: dead_letters(nc, SubjectMap(nats_prefix)), what="the dead letter"
        )
    assert "Odoo has no picking 9999" in letter.error_message


async def test_write_odoo_refuses_is_dead_lettered_with_odoos_reason(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    reader = stage.sandbox.user("reader")  # may read, gets AccessError on any change
    async with stage.gateway(
        nats_url,
        nats_prefix,
        odoo_login="reader",
        odoo_password=reader.password,
        odoo_api_key=reader.api_key if stage.protocol == "json2" else None,
    ):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        await send_command(nc, nats_prefix, shipment_command(picking))
        [letter] = await eventually(
            lambda: dead_letters(nc, SubjectMap(nats_prefix)), what="the dead letter"
        )
    assert letter.reason == "permanent error"
    assert letter.attempts == 1
    assert letter.error_message.startswith("Odoo refused: AccessError: You are not allowed")


async def _calls_during_outage(stage: OdooStage) -> int:
    return sum(stage.sandbox.calls().values())


Step = Callable[[OdooClient, PickingView, RecordShipmentInOdoo], Awaitable[None]]


async def _write_tracking(
    odoo: OdooClient, picking: PickingView, command: RecordShipmentInOdoo
) -> None:
    tracking = {"carrier_tracking_ref": command.shipment.tracking_number}
    await odoo.call("stock.picking", "write", [picking.id], vals=tracking)


async def _post_note(odoo: OdooClient, picking: PickingView, command: RecordShipmentInOdoo) -> None:
    await post_note(odoo, picking.id, shipment_note(command.shipment))


async def _validate(odoo: OdooClient, picking: PickingView, command: RecordShipmentInOdoo) -> None:
    [row] = await odoo.call("stock.picking", "read", [picking.id], fields=PICKING_FIELDS)
    await validate_in_full(odoo, Picking.from_row(row))


async def _attempt_cut_off(
    stage: OdooStage, nc: NatsClient, nats_prefix: str, command: RecordShipmentInOdoo, *steps: Step
) -> None:
    """An earlier attempt at ``command``: it recorded its intent (under the handler's own
    key), made ``steps`` in Odoo, and died before recording the result."""
    settings = load_settings(
        OdooGatewaySettings, environ={}, service="odoo-gateway", **stage.gateway_settings()
    )
    earlier = odoo_client_for(settings)
    kv = await nc.jetstream().key_value(SubjectMap(nats_prefix).kv_bucket("idempotency"))
    picking = stage.sandbox.picking(command.order_ref)

    async def make_then_die() -> bool:
        for step in steps:
            await step(earlier, picking, command)
        raise ConnectionResetError("the worker died")

    key = f"odoo:{picking.id}:{command.shipment.tracking_number}:shipment"
    with pytest.raises(ConnectionResetError):
        await OnceOnly(kv, bool).run(key, make_then_die)
    await earlier.close()


@pytest.mark.parametrize(
    "made",
    [
        (),
        (_write_tracking,),
        (_write_tracking, _post_note),
        (_write_tracking, _post_note, _validate),
    ],
    ids=["nothing", "tracking", "tracking-note", "all"],
)
async def test_attempt_cut_off_is_completed_without_making_anything_twice(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str, made: tuple[Step, ...]
) -> None:
    stage = stage17
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        command = shipment_command(picking, tracking="TRK-CUT")
        await _attempt_cut_off(stage, nc, nats_prefix, command, *made)
        await send_command(nc, nats_prefix, command)
        [recorded] = await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
        await send_command(nc, nats_prefix, command)  # and a repeat finds it recorded
        await wait_for_commands_done(nc, nats_prefix)
    calls = stage.sandbox.calls()
    assert (
        calls["stock.picking.write"],
        calls["stock.picking.message_post"],
        calls["stock.picking.button_validate"],
    ) == (1, 1, 1)
    after = stage.sandbox.picking(picking.name)
    assert (after.state, after.carrier_tracking_ref, len(after.messages)) == ("done", "TRK-CUT", 1)
    assert recorded.picking_validated is True
    assert len(await published(nc, nats_prefix, ShipmentRecordedInOdoo)) == 1


async def test_a_recorded_shipment_writes_one_effects_once_record(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        bucket = f"KV_{SubjectMap(nats_prefix).kv_bucket('idempotency')}"
        writes_before = (await nc.jetstream().stream_info(bucket)).state.last_seq
        await send_command(nc, nats_prefix, shipment_command(picking, tracking="TRK-KV"))
        [recorded] = await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
        writes = (await nc.jetstream().stream_info(bucket)).state.last_seq - writes_before
    assert recorded.picking_validated is True
    # Its intent and its result (six before: one record each for the tracking, the
    # note and the validation); a cut-off attempt is looked up step by step above.
    assert writes == 2


async def test_gateway_keeps_to_its_bound_on_calls_in_flight_to_odoo(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    async with stage.gateway(nats_url, nats_prefix, odoo_max_in_flight=2):
        pickings = [stage.sandbox.picking(stage.new_order().pickings[0]) for _ in range(4)]
        stage.sandbox.faults.set("*", latency_s=0.02)
        for number, picking in enumerate(pickings):
            await send_command(nc, nats_prefix, shipment_command(picking, f"TRK-BUSY-{number}"))
        await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo, count=4)
    assert stage.meter.most == 2  # four commands at once, never more than two calls


@pytest.mark.parametrize(
    ("version", "protocol"),
    [(16, "jsonrpc"), (17, "jsonrpc"), (18, "jsonrpc"), (19, "json2")],
    ids=["odoo16", "odoo17", "odoo18", "odoo19-json2"],
)
async def test_a_recorded_shipment_reads_its_picking_and_moves_once(
    version: int, protocol: str, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with odoo_stage(version=version, protocol=protocol) as stage:
        stage.sandbox.webhooks.sender.configure(policy=LOSE_EVERY_WEBHOOK)
        async with stage.gateway(nats_url, nats_prefix):
            await eventually(stage.ready, until=lambda r: r["status"] == "ready", what="login")
            picking = stage.sandbox.picking(stage.new_order(("WB-0001", 2)).pickings[0])
            stage.meter.calls.clear()
            command = shipment_command(picking, tracking="TRK-ONCE", lines=picked_lines(picking))
            await send_command(nc, nats_prefix, command)
            [recorded] = await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
        # The setup check after the login may still be asking its questions meanwhile.
        calls = {
            call: n
            for call, n in stage.meter.calls.items()
            if call[0] in _SHIPMENT_MODELS and call[1] not in _SETUP_QUESTIONS
        }
    assert recorded.picking_validated is True
    assert stage.sandbox.picking(picking.name).state == "done"
    effects = {
        ("stock.picking", "write"): 1,  # the tracking
        ("stock.picking", "message_post"): 1,
        ("stock.picking", "button_validate"): 1,
    }
    if version == 16:  # the picking, its moves, their done quantities (no web_read)
        assert calls == {
            ("stock.picking", "search_read"): 1,
            ("stock.move", "read"): 1,
            ("stock.move", "write"): 1,
            **effects,
        }
    else:
        # The picking with its moves in one call, and no picked flags written: none was
        # picked, so Odoo picks them all as it validates. Before: the picking, its moves,
        # and the flags (6 calls); the picking was also read back after validating.
        assert calls == {("stock.picking", "web_search_read"): 1, **effects}


_SHIPMENT_MODELS = {"stock.picking", "stock.move"}
_SETUP_QUESTIONS = {"check_access_rights", "has_access", "fields_get", "search_count"}
LOSE_EVERY_WEBHOOK = DeliveryPolicy(mode=DeliveryMode.LOSSY, drop_rate=1.0, max_attempts=1)
