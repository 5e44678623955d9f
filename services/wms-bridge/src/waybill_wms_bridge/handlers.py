"""The commands the wms-bridge executes: release an order to the warehouse, cancel it,
upload a page of the product master, take an inventory snapshot."""

from __future__ import annotations

from waybill_contracts.commands import (
    CancelWarehouseOrder,
    ReleaseToWarehouse,
    SnapshotWarehouseInventory,
    SyncProducts,
)
from waybill_runtime.bus.consumer import HandlerContext
from waybill_wms_bridge.bridge import BRIDGE
from waybill_wms_bridge.config import WmsBridgeSettings

__all__ = [
    "cancel_warehouse_order",
    "release_to_warehouse",
    "snapshot_inventory",
    "sync_products",
]


async def release_to_warehouse(
    command: ReleaseToWarehouse, ctx: HandlerContext[WmsBridgeSettings]
) -> None:
    """Create the WMS order (once per order ref) → WarehouseOrderAccepted."""
    await ctx.resource(BRIDGE).orders.release(command.order, cause=ctx.envelope)


async def cancel_warehouse_order(
    command: CancelWarehouseOrder, ctx: HandlerContext[WmsBridgeSettings]
) -> None:
    """Cancel the WMS order → WarehouseOrderCancelled or WarehouseOrderCancelRefused."""
    await ctx.resource(BRIDGE).orders.cancel(command.order_ref, cause=ctx.envelope)


async def sync_products(command: SyncProducts, ctx: HandlerContext[WmsBridgeSettings]) -> None:
    """Upload the page into the WMS catalogue (each upload once) → ProductsSynced."""
    await ctx.resource(BRIDGE).products.sync_page(command, cause=ctx.envelope)


async def snapshot_inventory(
    command: SnapshotWarehouseInventory, ctx: HandlerContext[WmsBridgeSettings]
) -> None:
    """Read the WMS's stock on hand → InventorySnapshotTaken pages (system warehouse)."""
    await ctx.resource(BRIDGE).stock.take(command, ctx.envelope)
