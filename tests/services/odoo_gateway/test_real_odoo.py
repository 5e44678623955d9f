"""What real Odoo 16-19 does that the gateway must survive (issue 15), against the sandbox
set up the way real databases are. Each case runs in every version: the affected ones show
the fix, the others that nothing changed for them."""

from __future__ import annotations

import asyncio
import html
import logging
import math
from typing import Any

import aiohttp
import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.services.odoo_gateway.stage import (
    PATIENCE,
    OdooStage,
    odoo_stage,
    picked_lines,
    send_command,
    shipment_command,
    wait_for_commands_done,
    wait_for_events,
)
from waybill_contracts import SubjectMap
from waybill_contracts.commands import PostExceptionInOdoo, PostNoteInOdoo
from waybill_contracts.events import ShipmentRecordedInOdoo
from waybill_odoo_gateway.chatter import post_note
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.gateway import odoo_client_for
from waybill_odoo_gateway.odoo_errors import OdooUnavailable
from waybill_odoo_gateway.odoo_notes import plain_note
from waybill_runtime.idempotency import OnceOnly
from waybill_runtime.settings import load_settings
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.waiting import eventually

VERSIONS = [16, 17, 18, 19]


def protocol_of(version: int) -> str:
    return "json2" if version >= 19 else "jsonrpc"


def settings_for(stage: OdooStage, **overrides: Any) -> OdooGatewaySettings:
    return load_settings(
        OdooGatewaySettings,
        environ={},
        service="odoo-gateway",
        **stage.gateway_settings(**overrides),
    )


async def odoo_check(stage: OdooStage, says: str) -> dict[str, Any]:
    """The gateway's readiness check ``odoo`` once its detail says ``says``."""

    async def check() -> dict[str, Any]:
        readyz = await stage.ready()
        [found] = [c for c in readyz["checks"] if c["name"] == "odoo"]
        return dict(found)

    return await eventually(check, until=lambda c: says in c["detail"], what=f"odoo: {says}")


async def gauge(stage: OdooStage, name: str) -> float:
    """The value of a gauge without labels on the gateway's /metrics."""
    async with (
        aiohttp.ClientSession(timeout=PATIENCE) as session,
        session.get(f"{stage.gateway_url}/metrics") as answer,
    ):
        text = await answer.text()
    [value] = [line.split()[1] for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(value)


async def ship_one(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str, tracking: str = "TRK-1"
) -> ShipmentRecordedInOdoo:
    """Record a shipment for a new order's delivery; fails on a dead letter."""
    async with stage.gateway(nats_url, nats_prefix):
        picking = stage.sandbox.picking(stage.new_order(("WB-0001", 2)).pickings[0])
        await send_command(nc, nats_prefix, shipment_command(picking, tracking=tracking))
        await wait_for_commands_done(nc, nats_prefix)
        dead = await dead_letters(nc, SubjectMap(nats_prefix))
        assert dead == [], f"dead-lettered: {dead}"
        [recorded] = await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
    return recorded


# 1. stock_sms's confirmation wizard (16-18) ------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_delivery_is_validated_past_the_sms_confirmation_wizard(
    version: int, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with odoo_stage(version=version, protocol=protocol_of(version)) as stage:
        recorded = await ship_one(stage, nc, nats_url, nats_prefix)
        [picking] = stage.sandbox.pickings("done")
    assert recorded.picking_validated is True and picking.carrier_tracking_ref == "TRK-1"


# 2. a successful validation that answers with the print action (17-19) ---------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_validation_answered_with_the_print_action_is_done_once(
    version: int, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with odoo_stage(
        version=version, protocol=protocol_of(version), auto_print_delivery_slip=True
    ) as stage:
        recorded = await ship_one(stage, nc, nats_url, nats_prefix)
        calls = stage.sandbox.calls()
        [picking] = stage.sandbox.pickings("done")
    assert recorded.picking_validated is True and picking.state == "done"
    assert calls["stock.picking.button_validate"] == 1  # never validated again


# 3. chatter notes as HTML, found again whatever they hold ----------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_notes_are_html_and_found_again_with_special_characters(
    version: int, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with odoo_stage(version=version, protocol=protocol_of(version)) as stage:
        async with stage.gateway(nats_url, nats_prefix):
            picking = stage.sandbox.picking(stage.new_order().pickings[0])
            command = PostNoteInOdoo(
                note_id="""n-1 "Tom's" & <co>""",
                order_ref=picking.name,
                odoo_picking_id=picking.id,
                text="Booking <failed> & retried",
            )
            # An earlier attempt posted the note and died before recording it.
            earlier = odoo_client_for(settings_for(stage))
            kv = await nc.jetstream().key_value(SubjectMap(nats_prefix).kv_bucket("idempotency"))

            async def post_then_die() -> int:
                await post_note(earlier, picking.id, plain_note(command))
                raise ConnectionResetError("the worker died")

            with pytest.raises(ConnectionResetError):
                await OnceOnly(kv, int).run(f"odoo:note:{command.note_id}", post_then_die)
            await earlier.close()
            await send_command(nc, nats_prefix, command)
            await wait_for_commands_done(nc, nats_prefix)
        [note] = stage.sandbox.picking(picking.name).messages
    assert note.body.startswith("<p>Booking &lt;failed&gt; &amp; retried</p>")  # tags as HTML
    assert html.unescape(note.body).endswith("""Reference: n-1 "Tom's" & <co></p>""")


# 4. the delivery module, without which pickings have no carrier fields ---------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_missing_delivery_module_makes_the_gateway_not_ready_naming_the_module(
    version: int, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    module = "stock_delivery" if version >= 18 else "delivery"
    async with (
        odoo_stage(version=version, protocol=protocol_of(version), delivery_module=False) as stage,
        stage.gateway(nats_url, nats_prefix),
    ):
        check = await odoo_check(stage, "module")
    assert check["ok"] is False, check
    assert f"install the {module!r} module" in check["detail"]


# 5. shipping_weight, computed and not stored on 16/17 -------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_shipping_weight_is_kept_where_odoo_keeps_it(
    version: int, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with odoo_stage(version=version, protocol=protocol_of(version)) as stage:
        await ship_one(stage, nc, nats_url, nats_prefix)
        [picking] = stage.sandbox.pickings("done")
        stored = stage.sandbox.registry.value("stock.picking", picking.id, "shipping_weight")
    [note] = picking.messages
    if version >= 18:
        assert stored == 3.5
    else:  # written nowhere else: the note says it
        assert "Shipping weight 3.5 kg" in note.body


# 6. activity_schedule's recordset as text ---------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_the_scheduled_activity_id_is_read_whatever_the_version_returns(
    version: int, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with odoo_stage(version=version, protocol="jsonrpc") as stage:
        async with stage.gateway(nats_url, nats_prefix):
            picking = stage.sandbox.picking(stage.new_order().pickings[0])
            command = PostExceptionInOdoo(
                exception_id="exc-9",
                order_ref=picking.name,
                odoo_picking_id=picking.id,
                summary="Short pick",
            )
            await send_command(nc, nats_prefix, command)
            await wait_for_commands_done(nc, nats_prefix)
            kv = await nc.jetstream().key_value(SubjectMap(nats_prefix).kv_bucket("idempotency"))
            recorded = await OnceOnly(kv, int).result_of("odoo:exception:exc-9:activity")
        [activity] = stage.sandbox.picking(picking.name).activities
    assert recorded == activity.id


# 7. API keys expire on 18/19 ----------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_api_key_expiry_is_a_metric_and_a_warning_ahead_of_time(
    version: int, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with (
        odoo_stage(version=version, protocol=protocol_of(version), api_key_days=5.5) as stage,
        stage.gateway(nats_url, nats_prefix, odoo_api_key=stage.sandbox.admin.api_key),
    ):
        check = await odoo_check(stage, "API key" if version >= 18 else "logged in")
        days_left = await gauge(stage, "waybill_odoo_api_key_days_left")
    detail = check["detail"]
    assert check["ok"] is True, check
    if version >= 18:
        assert 5 <= days_left <= 5.5
        assert "API key expires in 5 days" in detail and "renew it" in detail
    else:
        assert math.isnan(days_left) and "expires" not in detail


# 8. JSON-2 by default on 19 ------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_protocol_auto_speaks_json2_on_19_and_jsonrpc_before(version: int) -> None:
    async with odoo_stage(version=version, protocol="jsonrpc") as stage:
        settings = load_settings(
            OdooGatewaySettings,
            environ={},
            service="odoo-gateway",
            **{
                k: v
                for k, v in stage.gateway_settings().items()
                if k not in ("odoo_protocol", "odoo_api_key")
            },
            odoo_api_key=stage.sandbox.admin.api_key,
        )
        assert settings.odoo_protocol == "auto"
        odoo = odoo_client_for(settings)
        try:
            # The login keeper and the poll connect at once: one version check, one login.
            await asyncio.gather(odoo.connect(), odoo.connect())
            await odoo.call("res.partner", "search", domain=[], limit=1)
        finally:
            await odoo.close()
        calls = stage.sandbox.calls()
    assert odoo.ready
    jsonrpc_calls = sum(n for op, n in calls.items() if op.startswith(("common.", "object.")))
    logins = calls.get("common.login", 0) + calls.get("res.users.context_get", 0)
    assert logins == 1 and calls.get("web.version_info") == 1, calls
    if version >= 19:
        assert odoo.protocol == "json2" and jsonrpc_calls == 0
    else:
        assert odoo.protocol == "jsonrpc" and jsonrpc_calls >= 1


async def test_jsonrpc_chosen_on_19_works_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    async with odoo_stage(version=19, protocol="jsonrpc") as stage:
        odoo = odoo_client_for(settings_for(stage))
        try:
            with caplog.at_level(logging.WARNING, logger="waybill.odoo"):
                await odoo.connect()
        finally:
            await odoo.close()
    assert odoo.ready
    assert any(
        "deprecated" in r.getMessage() and "WAYBILL_ODOO_PROTOCOL=json2" in r.getMessage()
        for r in caplog.records
    )


# 9. Odoo 19's ConcurrencyError and LockError over JSON-RPC ----------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("record_lock", [False, True], ids=["concurrency", "lock"])
async def test_lock_conflicts_of_every_version_are_try_again(
    version: int, record_lock: bool
) -> None:
    async with odoo_stage(version=version, protocol="jsonrpc") as stage:
        picking = stage.sandbox.picking(stage.new_order().pickings[0])
        stage.sandbox.registry.inject_lock_conflicts(
            "stock.picking.write", times=1, record_lock=record_lock
        )
        odoo = odoo_client_for(settings_for(stage))
        try:
            with pytest.raises(OdooUnavailable, match="lock conflict"):
                await odoo.call("stock.picking", "write", [picking.id], vals={"priority": "1"})
            assert await odoo.call("stock.picking", "write", [picking.id], vals={"priority": "1"})
        finally:
            await odoo.close()


# Ship what was picked: the picked quantities done, one backorder for the rest -----------


@pytest.mark.parametrize("version", VERSIONS)
async def test_ship_picked_validates_the_picked_quantities_and_leaves_one_backorder(
    version: int, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with odoo_stage(version=version, protocol=protocol_of(version)) as stage:
        async with stage.gateway(nats_url, nats_prefix):
            order = stage.new_order(("WB-0001", 2), ("WB-0002", 3))
            picking = stage.sandbox.picking(order.pickings[0])
            lines = picked_lines(picking, **{"WB-0002": 1})  # 2 of 3 picked
            command = msgspec.structs.replace(
                shipment_command(picking, tracking="TRK-PART", lines=lines), ship_picked=True
            )
            await send_command(nc, nats_prefix, command)
            [recorded] = await wait_for_events(nc, nats_prefix, ShipmentRecordedInOdoo)
            await send_command(nc, nats_prefix, command)  # a repeat changes nothing more
            await wait_for_commands_done(nc, nats_prefix)
        after = stage.sandbox.picking(picking.name)
        order_after = stage.sandbox.order(order.name)
        backorders = [stage.sandbox.picking(p) for p in order_after.pickings if p != picking.name]
    assert recorded.picking_validated is True and after.state == "done"
    assert [(m.product, m.demand, m.done) for m in after.moves] == [
        ("WB-0001", 2.0, 2.0),
        ("WB-0002", 3.0, 2.0),
    ]
    [backorder] = backorders
    assert backorder.state != "done"
    assert [(m.product, m.demand) for m in backorder.moves] == [("WB-0002", 1.0)]
    [note] = after.messages
    assert "Shipped what was picked" in note.body and "backorder" in note.body
