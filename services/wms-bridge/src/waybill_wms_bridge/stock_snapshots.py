"""Inventory snapshots of the warehouse: its stock on hand, read page by page, published.

``SnapshotWarehouseInventory`` (sent by the orchestrator's reconciliation run)
reads the WMS's stock per SKU and location (``GET /api/v1/stock-on-hand``, keyset
pages of ``WAYBILL_WMS_STOCK_PAGE_SIZE``) and publishes each page as
``InventorySnapshotTaken`` (system ``warehouse``) with the snapshot's id, the
page number from 1 and ``last_page`` on the final one. A warehouse with no
stock at all still answers with one empty last page, so the run can close.

A WMS failure mid-way fails the command, which the bus delivers again: the
snapshot is read again from its first page and every page republished under
the same fact id (snapshot and page), which JetStream's duplicate window drops;
the orchestrator also keeps one copy of each page number, so a page seen twice
counts once. Figures are the WMS's at the time each page was read: a snapshot
is not a frozen instant, which the reconciliation's tolerance for in-flight
orders has to live with.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from waybill_contracts import MessageContext, fact_id
from waybill_contracts.commands import SnapshotWarehouseInventory
from waybill_contracts.events import InventorySnapshotTaken
from waybill_contracts.model import InventorySystem, StockLevel
from waybill_runtime.bus.publisher import Publisher
from waybill_wms_bridge.lifecycle import wms_quantity
from waybill_wms_bridge.wms_client import WmsClient
from waybill_wms_bridge.wms_wire import WmsStockCursor

__all__ = ["StockSnapshots"]

log = logging.getLogger("waybill.wms_bridge.stock")


class StockSnapshots:
    """Takes the warehouse's inventory snapshots."""

    def __init__(self, client: WmsClient, publisher: Publisher, *, page_size: int) -> None:
        self._client = client
        self._publisher = publisher
        self._page_size = page_size

    async def take(self, command: SnapshotWarehouseInventory, cause: MessageContext) -> int:
        """Read and publish every page of the snapshot; returns how many pages."""
        after: WmsStockCursor | None = None
        page = 0
        while True:
            answer = await self._client.stock_on_hand(after, self._page_size)
            page += 1
            last = answer.next is None
            levels = tuple(
                StockLevel(
                    sku=item.sku,
                    location=item.location,
                    on_hand=wms_quantity(item.on_hand, item.uom),
                )
                for item in answer.items
            )
            await self._publisher.publish(
                InventorySnapshotTaken(
                    snapshot_id=command.snapshot_id,
                    system=InventorySystem.WAREHOUSE,
                    warehouse=command.warehouse,
                    page=page,
                    last_page=last,
                    levels=levels,
                    taken_at=datetime.now(UTC),
                ),
                cause=cause,
                fact_id=fact_id("wms-bridge", "inventory_snapshot", command.snapshot_id, page),
            )
            if last:
                log.info("inventory snapshot %s: %d pages published", command.snapshot_id, page)
                return page
            after = answer.next
