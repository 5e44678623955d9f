"""The warehouse's inventory snapshot: the WMS's stock on hand as InventorySnapshotTaken pages
of the bridge's page size, in the WMS's units, and one empty last page for an empty warehouse
(a WMS failing mid-snapshot: tests/e2e/test_inventory_reconciliation.py)."""

from __future__ import annotations

from decimal import Decimal

from nats.aio.client import Client as NatsClient

from tests.services.wms_bridge.harness import wms_and_bridge
from waybill_contracts.commands import SnapshotWarehouseInventory
from waybill_contracts.events import InventorySnapshotTaken
from waybill_contracts.model import InventorySystem


async def test_the_warehouses_stock_is_published_in_pages_of_the_wmss_own_size(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with wms_and_bridge(nc, nats_url, nats_prefix, wms_stock_page_size=2) as rig:
        for sku, location, on_hand in [("B", "PICK-02", 4.5), ("A", "PICK-01", 5), ("C", "X", 0)]:
            rig.wms.warehouse.set_shelf(sku, location, on_hand)
        await rig.send(SnapshotWarehouseInventory(snapshot_id="rec-1-warehouse"))
        pages = await rig.wait_for(InventorySnapshotTaken, "rec-1-warehouse", count=2)
        await rig.commands_settled()
        letters = await rig.dead_letters()
    assert [(p.page, p.last_page, p.system) for p in pages] == [
        (1, False, InventorySystem.WAREHOUSE),
        (2, True, InventorySystem.WAREHOUSE),
    ]
    levels = [
        (lv.sku, lv.location, lv.on_hand.value, lv.on_hand.uom) for p in pages for lv in p.levels
    ]
    assert levels == [
        ("A", "PICK-01", Decimal(5), "EA"),
        ("B", "PICK-02", Decimal("4.5"), "EA"),
        ("C", "X", Decimal(0), "EA"),
    ]
    assert letters == []


async def test_an_empty_warehouse_answers_with_one_empty_last_page(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        await rig.send(SnapshotWarehouseInventory(snapshot_id="rec-2-warehouse"))
        [page] = await rig.wait_for(InventorySnapshotTaken, "rec-2-warehouse")
    assert (page.page, page.last_page, page.levels) == (1, True, ())
