"""The commands the wms-bridge executes: release an order to the warehouse, cancel it,
upload a page of the product master, take an inventory snapshot, announce a return parcel or
call it off."""

from __future__ import annotations

from waybill_contracts.commands import (
    CancelWarehouseOrder,
    ReleaseToWarehouse,
    SnapshotWarehouseInventory,
    SyncProducts,
)
from waybill_contracts.return_commands import CancelExpectedReturn, ExpectReturn
from waybill_runtime.bus.consumer import HandlerContext
from waybill_wms_bridge.bridge import BRIDGE
from waybill_wms_bridge.config import WmsBridgeSettings

__all__ = [
    "cancel_expected_return",
    "cancel_warehouse_order",
    "expect_return",
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


async def expect_return(command: ExpectReturn, ctx: HandlerContext[WmsBridgeSettings]) -> None:
    """Announce the return parcel to the WMS (a replay gets the same return back); the dock's
    receipt and inspection come later as ``return.*`` webhooks."""
    await ctx.resource(BRIDGE).returns.expect(command)


async def cancel_expected_return(
    command: CancelExpectedReturn, ctx: HandlerContext[WmsBridgeSettings]
) -> None:
    """Call the return off at the WMS (409 once received: a dead letter saying so)."""
    await ctx.resource(BRIDGE).returns.cancel(command)
