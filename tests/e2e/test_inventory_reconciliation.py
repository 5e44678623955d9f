"""Issue 19's acceptance for inventory reconciliation: a seeded discrepancy is found, and only
that one; orders picked in the warehouse but not yet recorded in Odoo are not flagged.

The real odoo-gateway, orchestrator and wms-bridge on a real nats-server, the Odoo and WMS
sandboxes on their own wire protocols. The orchestrator starts its first run as soon as it
runs (nothing was ever scheduled); the test moves the schedule's last start back by the
interval to make the next one due, which is what the passing of a night does.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.e2e.mesh import Mesh, running_mesh
from waybill_contracts import SubjectMap
from waybill_contracts.events import InventoryReconciled
from waybill_contracts.model import Quantity, StockDiscrepancy
from waybill_orchestrator.stock_schedule import SCHEDULE_KEY, ScheduledRun
from waybill_runtime.testing.streams import dead_letters, settled, stored_in
from waybill_runtime.testing.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SERVICES = ("odoo-gateway", "orchestrator", "wms-bridge")
INTERVAL_S = 3600.0
SETTINGS: dict[str, dict[str, Any]] = {
    "orchestrator": {
        "inventory_reconcile_interval_s": INTERVAL_S,
        "deadline_sweep_interval_s": 0.2,
    },
    # Small pages, so a snapshot is several pages on both sides.
    "wms-bridge": {"wms_stock_page_size": 3},
    "odoo-gateway": {"inventory_snapshot_page_size": 3},
}


async def reconciled(nc: NatsClient, subjects: SubjectMap) -> list[InventoryReconciled]:
    found = await stored_in(nc, subjects, subjects.events_stream)
    return [d.message for d in found if isinstance(d.message, InventoryReconciled)]


async def next_run(mesh: Mesh, done_before: int) -> InventoryReconciled:
    """Make the next run due now and wait for its report."""
    kv = await mesh.nc.jetstream().key_value(mesh.subjects.kv_bucket("workflow"))
    entry = await kv.get(SCHEDULE_KEY)
    latest = msgspec.json.decode(entry.value or b"", type=ScheduledRun)
    earlier = msgspec.structs.replace(
        latest, started_at=latest.started_at - timedelta(seconds=INTERVAL_S)
    )
    await kv.update(SCHEDULE_KEY, msgspec.json.encode(earlier), last=entry.revision)
    runs = await eventually(
        lambda: reconciled(mesh.nc, mesh.subjects),
        until=lambda found: len(found) > done_before,
        what="the next reconciliation's report",
    )
    return runs[-1]


def odoo_stock(mesh: Mesh) -> dict[str, float]:
    """Odoo's on hand at WH/Stock of every product with an internal reference."""
    registry = mesh.odoo.registry
    skus = [
        registry.value("product.product", p, "default_code")
        for p in registry.search("product.product", [])
    ]
    return {sku: mesh.odoo.on_hand(sku) for sku in skus if sku}


async def test_a_seeded_discrepancy_is_found_and_only_it_with_orders_in_flight(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    audit_db = tmp_path / "audit.sqlite"
    async with running_mesh(
        nc,
        nats_url,
        nats_prefix,
        # The auditor too: the run's commands, pages and report are in the audit trail.
        services=(*SERVICES, "auditor"),
        service_settings={**SETTINGS, "auditor": {"audit_db": str(audit_db)}},
    ) as mesh:
        # The first run starts at once (nothing was ever scheduled): the shelves are empty.
        [first] = await eventually(
            lambda: reconciled(nc, mesh.subjects), what="the first reconciliation's report"
        )
        # The warehouse counted what Odoo has, shelf PICK-01 (mapped to WH/Stock).
        stock = odoo_stock(mesh)
        for sku, on_hand in stock.items():
            mesh.wms.warehouse.set_shelf(sku, "PICK-01", on_hand)
        # Orders in flight: one picked (waits before packing), one packed and booking (waits
        # before shipping), one accepted (waits before picking).
        picked = mesh.odoo.create_order(lines=[("WB-0001", 3)])
        packed = mesh.odoo.create_order(lines=[("WB-0002", 2), ("WB-0001", 1)])
        accepted = mesh.odoo.create_order(lines=[("WB-0004", 5)])
        waits = {
            picked.pickings[0]: "packed",
            packed.pickings[0]: "shipped",
            accepted.pickings[0]: "picked",
        }
        for ref, stage in waits.items():
            mesh.wms.lifecycle.hold(ref, stage)
        await eventually(
            lambda: _waiting(mesh),
            until=lambda parked: parked == waits,
            what="the three orders parked in the warehouse",
        )
        await settled(nc, mesh.subjects, "orchestrator", "events")
        # The miscount nobody reported: four WB-0003 missing from the shelf.
        mesh.wms.warehouse.set_shelf("WB-0003", "PICK-01", stock["WB-0003"] - 4)
        report = await next_run(mesh, done_before=1)
        await settled(nc, mesh.subjects, "auditor", "events")
        await settled(nc, mesh.subjects, "auditor", "commands")
        letters = await dead_letters(nc, mesh.subjects)
        shelves = mesh.wms.warehouse.shelves()
    with contextlib.closing(sqlite3.connect(audit_db)) as db:
        audited = Counter(
            ce_type
            for (ce_type,) in db.execute(
                "SELECT ce_type FROM messages WHERE correlation_id = ?",
                (report.reconciliation_id,),
            )
        )
    assert first.discrepancies, "before the count, the warehouse's shelves were empty"
    counted = Decimal(int(stock["WB-0003"]))
    assert report.discrepancies == (
        StockDiscrepancy(
            sku="WB-0003",
            location="PICK-01",
            odoo_on_hand=Quantity(value=counted, uom="Units"),
            warehouse_on_hand=Quantity(value=counted - 4, uom="EA"),
        ),
    )
    # The picked goods really are off the warehouse's shelf and still in Odoo.
    assert ("WB-0001", "PICK-01", stock["WB-0001"] - 4) in shelves
    assert ("WB-0002", "PICK-01", stock["WB-0002"] - 2) in shelves
    assert report.skus_compared == len(stock)
    assert letters == []
    pages = -(-len(stock) // 3)  # each side, three levels a page
    assert audited == {
        "io.waybill.cmd.odoo.snapshot_inventory.v1": 1,
        "io.waybill.cmd.warehouse.snapshot_inventory.v1": 1,
        "io.waybill.inventory.snapshot_taken.v1": 2 * pages,
        "io.waybill.inventory.reconciled.v1": 1,
    }, "the run is one business transaction in the audit trail"


async def _waiting(mesh: Mesh) -> dict[str, str]:
    return mesh.wms.lifecycle.waiting()


async def test_a_warehouse_failing_mid_snapshot_is_asked_again_and_the_run_completes(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with running_mesh(
        nc, nats_url, nats_prefix, services=SERVICES, service_settings=SETTINGS
    ) as mesh:
        await eventually(lambda: reconciled(nc, mesh.subjects), what="the first report")
        stock = odoo_stock(mesh)
        for sku, on_hand in stock.items():
            mesh.wms.warehouse.set_shelf(sku, "PICK-01", on_hand)
        # The second page of stock fails with 503 more often than the client retries in one
        # delivery: the command fails and is delivered again.
        calls_before = mesh.wms.calls().get("stock_on_hand", 0)
        mesh.wms.faults.set("stock_on_hand", error_rate=1.0, after_calls=1, times=6)
        report = await next_run(mesh, done_before=1)
        letters = await dead_letters(nc, mesh.subjects)
        calls = mesh.wms.calls().get("stock_on_hand", 0) - calls_before
    assert report.discrepancies == ()
    assert report.skus_compared == len(stock)
    pages = -(-len(stock) // 3)
    assert calls >= pages + 6, "the failed calls and a full read again"
    assert letters == []
