"""The commands the wms-bridge executes: release an order to the warehouse, cancel it."""

from __future__ import annotations

from waybill_contracts.commands import CancelWarehouseOrder, ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.service import Service
from waybill_wms_bridge.bridge import Bridges
from waybill_wms_bridge.config import WmsBridgeSettings

__all__ = ["register_handlers"]


def register_handlers(service: Service[WmsBridgeSettings], bridges: Bridges) -> None:
    """Declare the command handlers of ``service``, working through ``bridges``."""

    @service.handles(ReleaseToWarehouse)
    async def release_to_warehouse(command: ReleaseToWarehouse, ctx: HandlerContext) -> None:
        """Create the WMS order (once per order ref) → WarehouseOrderAccepted."""
        await bridges.of(ctx.runtime).orders.release(command.order, cause=ctx.envelope)

    @service.handles(CancelWarehouseOrder)
    async def cancel_warehouse_order(command: CancelWarehouseOrder, ctx: HandlerContext) -> None:
        """Cancel the WMS order → WarehouseOrderCancelled, or WarehouseOrderCancelRefused."""
        await bridges.of(ctx.runtime).orders.cancel(command.order_ref, cause=ctx.envelope)
