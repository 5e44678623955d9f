"""Warehouse stock adjustments in Odoo: applied once per adjustment, large ones after approval,
anything Odoo cannot take dead-lettered with the reason."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from tests.services.odoo_gateway.stage import (
    OdooStage,
    published,
    send_command,
    wait_for_commands_done,
    wait_for_events,
)
from waybill_contracts import SubjectMap
from waybill_contracts.events import (
    InventoryAdjusted,
    InventoryAdjustmentApplied,
    InventoryAdjustmentHeld,
)
from waybill_contracts.model import Quantity, StockAdjustment
from waybill_contracts.operations import ApproveInventoryAdjustment
from waybill_runtime.idempotency import OnceOnly
from waybill_runtime.testing.authenticated import cli_environment
from waybill_runtime.testing.streams import dead_letters, settled
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.odoo.methods import call_kw


def adjusted(
    delta: str,
    *,
    sku: str = "WB-0001",
    location: str = "WH-STOCK",
    reference: str | None = "wms-evt-1",
    reason: str = "DAMAGED",
) -> InventoryAdjusted:
    """An adjustment as the wms-bridge publishes it from the WMS's webhook."""
    return InventoryAdjusted(
        adjustment=StockAdjustment(
            sku=sku,
            location=location,
            delta=Quantity(value=Decimal(delta), uom="Units"),
            reason=reason,
            reference=reference,
        ),
        warehouse="WH1",
        adjusted_at=datetime.now(UTC),
    )


def approval(reference: str, action_id: str = "act-1") -> ApproveInventoryAdjustment:
    return ApproveInventoryAdjustment(action_id=action_id, operator="dana", reference=reference)


async def all_settled(nc: NatsClient, prefix: str) -> None:
    """Every event and command the gateway consumes was acknowledged or dead-lettered."""
    await settled(nc, SubjectMap(prefix), "odoo-gateway", "events")
    await wait_for_commands_done(nc, prefix)


async def test_a_damaged_stock_adjustment_lowers_odoos_on_hand_once_in_every_version(
    any_odoo: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = any_odoo
    before = stage.sandbox.on_hand("WB-0001")
    async with stage.gateway(nats_url, nats_prefix):
        # The same adjustment twice under two message ids (a replay, a second sighting
        # after the duplicate window): one change in Odoo.
        await send_command(nc, nats_prefix, adjusted("-2"))
        await send_command(nc, nats_prefix, adjusted("-2"))
        await all_settled(nc, nats_prefix)
        [applied] = await wait_for_events(nc, nats_prefix, InventoryAdjustmentApplied)
    assert stage.sandbox.on_hand("WB-0001") == before - 2
    [move] = stage.sandbox.inventory_moves("WB-0001")
    assert move.startswith("Waybill wms-evt-1: DAMAGED")
    assert applied.reference == "wms-evt-1"
    assert applied.on_hand.value == Decimal(str(before - 2)).normalize()
    assert applied.approved_by is None
    assert await dead_letters(nc, SubjectMap(nats_prefix)) == []


async def test_found_stock_at_a_location_without_a_quant_creates_one(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    registry = stage.sandbox.registry
    registry.create(
        "stock.location",
        [{"name": "Shelf 9", "complete_name": "WH/Stock/Shelf 9", "barcode": "SHELF-9"}],
        uid=2,
    )
    async with stage.gateway(nats_url, nats_prefix):
        await send_command(
            nc, nats_prefix, adjusted("3", location="SHELF-9", reason="FOUND", reference="f-1")
        )
        await wait_for_events(nc, nats_prefix, InventoryAdjustmentApplied)
    assert stage.sandbox.on_hand("WB-0001", "WH/Stock/Shelf 9") == 3


async def test_a_mapped_warehouse_location_is_found_by_its_odoo_name(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    before = stage.sandbox.on_hand("WB-0002")
    mapping = {"PICK-01": "WH/Stock"}
    async with stage.gateway(nats_url, nats_prefix, odoo_inventory_locations=mapping):
        await send_command(nc, nats_prefix, adjusted("-1", sku="WB-0002", location="PICK-01"))
        await wait_for_events(nc, nats_prefix, InventoryAdjustmentApplied)
    assert stage.sandbox.on_hand("WB-0002") == before - 1


async def test_an_adjustment_above_the_threshold_waits_and_is_applied_once_after_approval(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    before = stage.sandbox.on_hand("WB-0001")
    async with stage.gateway(nats_url, nats_prefix, inventory_approval_above=10.0):
        await send_command(nc, nats_prefix, adjusted("-12", reference="big-1"))
        [held] = await wait_for_events(nc, nats_prefix, InventoryAdjustmentHeld)
        await all_settled(nc, nats_prefix)
        assert stage.sandbox.on_hand("WB-0001") == before  # nothing written yet
        assert stage.sandbox.inventory_moves("WB-0001") == []
        # Approved twice (a double click, a redelivery): applied once.
        await send_command(nc, nats_prefix, approval("big-1", "act-1"))
        await send_command(nc, nats_prefix, approval("big-1", "act-2"))
        [applied] = await wait_for_events(nc, nats_prefix, InventoryAdjustmentApplied)
        await all_settled(nc, nats_prefix)
        # The warehouse's event delivered again after the approval holds nothing anew.
        await send_command(nc, nats_prefix, adjusted("-12", reference="big-1"))
        await all_settled(nc, nats_prefix)
    assert held.reference == "big-1"
    assert held.threshold.value == 10
    assert "more than 10 Units" in held.reason
    assert stage.sandbox.on_hand("WB-0001") == before - 12
    assert len(stage.sandbox.inventory_moves("WB-0001")) == 1
    assert applied.approved_by == "dana"
    assert len(await published(nc, nats_prefix, InventoryAdjustmentHeld)) == 1
    assert await dead_letters(nc, SubjectMap(nats_prefix)) == []


async def test_a_held_adjustment_is_approved_after_a_restart(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    before = stage.sandbox.on_hand("WB-0001")
    async with stage.gateway(nats_url, nats_prefix, inventory_approval_above=5.0):
        await send_command(nc, nats_prefix, adjusted("40", reason="CYCLE_COUNT", reference="c-1"))
        await wait_for_events(nc, nats_prefix, InventoryAdjustmentHeld)
        await all_settled(nc, nats_prefix)
    async with stage.gateway(nats_url, nats_prefix, inventory_approval_above=5.0):
        await send_command(nc, nats_prefix, approval("c-1"))
        await wait_for_events(nc, nats_prefix, InventoryAdjustmentApplied)
    assert stage.sandbox.on_hand("WB-0001") == before + 40


async def test_at_the_threshold_an_adjustment_is_applied_without_approval(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    before = stage.sandbox.on_hand("WB-0001")
    async with stage.gateway(nats_url, nats_prefix, inventory_approval_above=5.0):
        await send_command(nc, nats_prefix, adjusted("-5"))
        await wait_for_events(nc, nats_prefix, InventoryAdjustmentApplied)
    assert stage.sandbox.on_hand("WB-0001") == before - 5


async def dead_letter_of(nc: NatsClient, prefix: str) -> str:
    [letter] = await eventually(
        lambda: dead_letters(nc, SubjectMap(prefix)), what="the dead letter"
    )
    assert letter.reason == "permanent error"
    return letter.error_message


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (adjusted("-1", sku="NOPE-1"), "Odoo has no product with internal reference 'NOPE-1'"),
        (
            adjusted("-1", location="DOCK-9"),
            "Odoo has no internal stock location for warehouse location 'DOCK-9'",
        ),
        (adjusted("-100000"), "applying it would leave"),
    ],
    ids=["unknown-sku", "unknown-location", "below-zero"],
)
async def test_what_odoo_cannot_take_is_dead_lettered_with_the_reason(
    stage: OdooStage,
    nc: NatsClient,
    nats_url: str,
    nats_prefix: str,
    message: InventoryAdjusted,
    reason: str,
) -> None:
    before = stage.sandbox.on_hand("WB-0001")
    async with stage.gateway(nats_url, nats_prefix, inventory_approval_above=None):
        await send_command(nc, nats_prefix, message)
        error = await dead_letter_of(nc, nats_prefix)
    assert reason in error
    assert stage.sandbox.on_hand("WB-0001") == before
    assert stage.sandbox.inventory_moves("WB-0001") == []


async def test_a_product_odoo_keeps_no_stock_of_is_dead_lettered(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    storable = {"is_storable": False} if stage.version >= 18 else {}
    stage.sandbox.registry.create(
        "product.product",
        [{"name": "Gift card", "default_code": "GIFT-1", "type": "consu", **storable}],
        uid=2,
    )
    async with stage.gateway(nats_url, nats_prefix):
        await send_command(nc, nats_prefix, adjusted("-1", sku="GIFT-1"))
        error = await dead_letter_of(nc, nats_prefix)
    assert "Odoo keeps no stock of 'GIFT-1'" in error


async def test_approving_an_adjustment_nobody_held_is_dead_lettered(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with stage17.gateway(nats_url, nats_prefix):
        await send_command(nc, nats_prefix, approval("never-held"))
        error = await dead_letter_of(nc, nats_prefix)
    assert "no inventory adjustment 'never-held' waits for approval" in error


async def test_an_operator_approves_a_held_adjustment_from_the_command_line(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    before = stage.sandbox.on_hand("WB-0003")
    async with stage.gateway(nats_url, nats_prefix, inventory_approval_above=1.0):
        await send_command(nc, nats_prefix, adjusted("-3", sku="WB-0003", reference="cli-1"))
        await wait_for_events(nc, nats_prefix, InventoryAdjustmentHeld)
        env = {**os.environ, **cli_environment(nats_url, nats_prefix)}
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "waybill_runtime", "inventory", "approve", "cli-1",
             "--operator", "dana", "--note", "crushed pallet"],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        [applied] = await wait_for_events(nc, nats_prefix, InventoryAdjustmentApplied)
    assert "approval of inventory adjustment cli-1 sent (by dana)" in done.stdout
    assert applied.approved_by == "dana"
    assert stage.sandbox.on_hand("WB-0003") == before - 3


async def test_an_adjustment_odoo_applied_before_the_worker_died_is_not_applied_again(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    before = stage.sandbox.on_hand("WB-0001")
    sandbox = stage.sandbox
    async with stage.gateway(nats_url, nats_prefix):
        kv = await nc.jetstream().key_value(SubjectMap(nats_prefix).kv_bucket("idempotency"))

        async def apply_then_die() -> int:
            # What the cut-off attempt got done in Odoo: the count, applied under its name.
            def odoo(method: str, *args: Any, **kwargs: Any) -> Any:
                return call_kw(
                    sandbox.registry, sandbox.admin, "stock.quant", method, [*args], kwargs
                )

            [quant] = odoo("search", [("product_id.default_code", "=", "WB-0001")])
            context = {"inventory_mode": True, "inventory_name": "Waybill r-9: DAMAGED"}
            odoo("write", [quant], {"inventory_quantity": before - 2}, context=context)
            odoo("action_apply_inventory", [quant], context=context)
            raise ConnectionResetError("the worker died")

        with pytest.raises(ConnectionResetError):
            await OnceOnly(kv, int).run("odoo:inventory:r-9", apply_then_die)
        await send_command(nc, nats_prefix, adjusted("-2", reference="r-9"))
        [applied] = await wait_for_events(nc, nats_prefix, InventoryAdjustmentApplied)
    assert sandbox.on_hand("WB-0001") == before - 2
    assert len(sandbox.inventory_moves("WB-0001")) == 1
    assert applied.on_hand.value == Decimal(str(before - 2)).normalize()


async def test_an_attempt_that_died_before_reaching_odoo_is_made_by_the_next(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    before = stage.sandbox.on_hand("WB-0001")
    async with stage.gateway(nats_url, nats_prefix):
        kv = await nc.jetstream().key_value(SubjectMap(nats_prefix).kv_bucket("idempotency"))

        async def die() -> int:
            raise ConnectionResetError("the worker died before calling Odoo")

        with pytest.raises(ConnectionResetError):
            await OnceOnly(kv, int).run("odoo:inventory:r-10", die)
        await send_command(nc, nats_prefix, adjusted("-2", reference="r-10"))
        await wait_for_events(nc, nats_prefix, InventoryAdjustmentApplied)
    assert stage.sandbox.on_hand("WB-0001") == before - 2
    assert len(stage.sandbox.inventory_moves("WB-0001")) == 1


async def test_an_integration_user_who_is_no_stock_manager_is_refused_up_to_18(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    ops = stage.sandbox.user("ops")  # may write, is no Inventory Administrator
    before = stage.sandbox.on_hand("WB-0001")
    async with stage.gateway(
        nats_url,
        nats_prefix,
        odoo_login="ops",
        odoo_password=ops.password,
        odoo_api_key=ops.api_key if stage.protocol == "json2" else None,
    ):
        await send_command(nc, nats_prefix, adjusted("-1"))
        if stage.version <= 18:
            error = await dead_letter_of(nc, nats_prefix)
        else:
            await wait_for_events(nc, nats_prefix, InventoryAdjustmentApplied)
    if stage.version <= 18:
        assert (
            error
            == "Odoo refused: UserError: Only a stock manager can validate an inventory adjustment."
        )
        assert stage.sandbox.on_hand("WB-0001") == before
    else:
        assert stage.sandbox.on_hand("WB-0001") == before - 1


async def test_a_product_odoo_counts_in_another_unit_is_dead_lettered(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    registry = stage17.sandbox.registry
    [kg] = registry.search("uom.uom", [("name", "=", "kg")])
    registry.create(
        "product.product",
        [{"name": "Coffee", "default_code": "BULK-1", "type": "product", "uom_id": kg}],
        uid=2,
    )
    async with stage17.gateway(nats_url, nats_prefix):
        await send_command(nc, nats_prefix, adjusted("-1", sku="BULK-1"))
        error = await dead_letter_of(nc, nats_prefix)
    assert "the warehouse adjusted 'BULK-1' in Units, Odoo keeps it in kg" in error


async def test_a_product_tracked_by_lot_is_dead_lettered(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    storable = (
        {"is_storable": True, "type": "consu"} if stage.version >= 18 else {"type": "product"}
    )
    stage.sandbox.registry.create(
        "product.product",
        [{"name": "Vaccine", "default_code": "LOT-1", "tracking": "lot", **storable}],
        uid=2,
    )
    async with stage.gateway(nats_url, nats_prefix):
        await send_command(nc, nats_prefix, adjusted("2", sku="LOT-1", reason="FOUND"))
        error = await dead_letter_of(nc, nats_prefix)
    assert "Odoo tracks 'LOT-1' by lot" in error
