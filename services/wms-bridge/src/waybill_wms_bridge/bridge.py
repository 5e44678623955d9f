"""The wms-bridge's working parts for one running instance, built once the runtime is up.

Handlers, the webhook route, the poll and the readiness check all need the
same WMS client and fact ledger: the service's :data:`BRIDGE` resource, built
per running service by :func:`open_bridge` (not at import time), so tests can
run several instances in one process.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from waybill_runtime.http import CheckResult
from waybill_runtime.periodic import every
from waybill_runtime.service import ResourceKey, Runtime
from waybill_wms_bridge.config import WmsBridgeSettings
from waybill_wms_bridge.expected_returns import ExpectedReturns, returns_feed
from waybill_wms_bridge.ledger import FactLedger
from waybill_wms_bridge.orders import ReleasedOrder, WarehouseOrders
from waybill_wms_bridge.products import ProductUploads, UnitCodes
from waybill_wms_bridge.reconcile import Reconciler, orders_feed
from waybill_wms_bridge.settled import SettledOrders
from waybill_wms_bridge.stock_snapshots import StockSnapshots
from waybill_wms_bridge.webhooks import WmsWebhookReceiver
from waybill_wms_bridge.wms_client import WmsClient, open_wms_client
from waybill_wms_bridge.wms_wire import WmsProductResults

__all__ = ["BRIDGE", "Bridge", "WmsReadiness", "open_bridge", "reconciling"]

# The poll's first round comes soon after start: it also proves the API key works.
_FIRST_POLL_AFTER_S = 1.0


@dataclass(frozen=True, slots=True)
class Bridge:
    """Everything one instance of the bridge works with."""

    client: WmsClient
    ledger: FactLedger
    orders: WarehouseOrders
    webhooks: WmsWebhookReceiver
    reconciler: Reconciler
    returns_reconciler: Reconciler
    products: ProductUploads
    stock: StockSnapshots
    returns: ExpectedReturns


BRIDGE = ResourceKey[Bridge]("wms-bridge")
"""The running service's bridge (opened by :func:`open_bridge`)."""


@contextlib.asynccontextmanager
async def open_bridge(runtime: Runtime[WmsBridgeSettings]) -> AsyncIterator[Bridge]:
    """Build the bridge of ``runtime`` (WMS connection pool included); close it on exit."""
    settings = runtime.settings
    async with open_wms_client(settings) as client:
        ledger = FactLedger(
            runtime.publisher,
            runtime.buckets["idempotency"],
            runtime.metrics,
            duplicate_window_s=settings.duplicate_window_s,
        )
        units = UnitCodes(settings.wms_unit_codes)
        # What is out for each recent order, known to the releases, webhooks and the poll.
        settled = SettledOrders()
        yield Bridge(
            client=client,
            ledger=ledger,
            orders=WarehouseOrders(
                client,
                ledger,
                runtime.once_only(ReleasedOrder),
                default_warehouse=settings.wms_default_warehouse,
                settled=settled,
            ),
            webhooks=WmsWebhookReceiver(
                secret=settings.wms_webhook_secret,
                tolerance_s=settings.wms_webhook_tolerance_s,
                ledger=ledger,
                units=units,
                settled=settled,
            ),
            reconciler=Reconciler(
                client,
                ledger,
                runtime.buckets["watermarks"],
                overlap_s=settings.wms_reconcile_overlap_s,
                lookback_s=settings.wms_reconcile_lookback_s,
                feed=orders_feed(client, settled),
            ),
            returns_reconciler=Reconciler(
                client,
                ledger,
                runtime.buckets["watermarks"],
                overlap_s=settings.wms_reconcile_overlap_s,
                lookback_s=settings.wms_reconcile_lookback_s,
                feed=returns_feed(client, units),
            ),
            products=ProductUploads(
                client,
                runtime.once_only(WmsProductResults),
                runtime.publisher,
                per_call=settings.wms_products_per_call,
                units=units,
            ),
            returns=ExpectedReturns(
                client, units=units, default_warehouse=settings.wms_default_warehouse
            ),
            stock=StockSnapshots(client, runtime.publisher, page_size=settings.wms_stock_page_size),
        )


@contextlib.asynccontextmanager
async def reconciling(runtime: Runtime[WmsBridgeSettings]) -> AsyncIterator[None]:
    """Run the reconciliation poll every ``WAYBILL_WMS_RECONCILE_INTERVAL_S`` seconds."""
    interval = runtime.settings.wms_reconcile_interval_s
    bridge = runtime.resource(BRIDGE)

    async def both() -> None:
        await bridge.reconciler.run_once()
        await bridge.returns_reconciler.run_once()

    async with every(
        interval,
        both,
        name="wms reconciliation",
        first_after_s=min(interval, _FIRST_POLL_AFTER_S),
    ):
        yield


@dataclass(frozen=True, slots=True)
class WmsReadiness:
    """Not ready while the WMS refuses the API key: nothing can reach the warehouse then.

    A WMS that is merely down does not make the bridge unready: webhooks must
    still be taken in, and commands wait in their queue until it is back.
    """

    client: WmsClient
    name: str = "wms"

    async def check(self) -> CheckResult:
        problem = self.client.auth_problem
        return CheckResult(ok=problem is None, detail=problem or "API key accepted")
