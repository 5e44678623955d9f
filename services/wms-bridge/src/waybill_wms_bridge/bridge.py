"""The wms-bridge's working parts for one running instance, built once the runtime is up.

Handlers, the webhook route, the poll and the readiness check all need the
same WMS client and fact ledger. They are built per :class:`Runtime` (not at
import time), so tests can run several instances in one process.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from waybill_runtime.http import CheckResult
from waybill_runtime.periodic import every
from waybill_runtime.service import Runtime
from waybill_wms_bridge.config import WmsBridgeSettings
from waybill_wms_bridge.ledger import FactLedger
from waybill_wms_bridge.orders import ReleasedOrder, WarehouseOrders
from waybill_wms_bridge.reconcile import Reconciler
from waybill_wms_bridge.webhooks import WmsWebhookReceiver
from waybill_wms_bridge.wms_client import WmsClient, open_wms_client

__all__ = ["Bridge", "Bridges", "WmsReadiness"]

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


class Bridges:
    """The :class:`Bridge` of every running instance, found by its runtime."""

    def __init__(self) -> None:
        self._by_runtime: dict[int, Bridge] = {}

    def of(self, runtime: Runtime[Any] | None) -> Bridge:
        """The bridge of ``runtime``; a handler passes ``ctx.runtime``."""
        bridge = self._by_runtime.get(id(runtime)) if runtime is not None else None
        if bridge is None:
            raise RuntimeError("the wms-bridge is not running in this runtime")
        return bridge

    @contextlib.asynccontextmanager
    async def open(self, runtime: Runtime[WmsBridgeSettings]) -> AsyncIterator[None]:
        """Build the bridge of ``runtime`` (WMS connection pool included); close it on exit."""
        settings = runtime.settings
        async with open_wms_client(settings) as client:
            ledger = FactLedger(runtime.publisher, runtime.once_only(str), runtime.metrics)
            bridge = Bridge(
                client=client,
                ledger=ledger,
                orders=WarehouseOrders(
                    client,
                    ledger,
                    runtime.once_only(ReleasedOrder),
                    default_warehouse=settings.wms_default_warehouse,
                ),
                webhooks=WmsWebhookReceiver(
                    secret=settings.wms_webhook_secret,
                    tolerance_s=settings.wms_webhook_tolerance_s,
                    ledger=ledger,
                ),
                reconciler=Reconciler(
                    client,
                    ledger,
                    runtime.buckets["watermarks"],
                    overlap_s=settings.wms_reconcile_overlap_s,
                    lookback_s=settings.wms_reconcile_lookback_s,
                ),
            )
            self._by_runtime[id(runtime)] = bridge
            try:
                yield
            finally:
                del self._by_runtime[id(runtime)]

    @contextlib.asynccontextmanager
    async def reconciling(self, runtime: Runtime[WmsBridgeSettings]) -> AsyncIterator[None]:
        """Run the reconciliation poll every ``WAYBILL_WMS_RECONCILE_INTERVAL_S`` seconds."""
        interval = runtime.settings.wms_reconcile_interval_s
        async with every(
            interval,
            self.of(runtime).reconciler.run_once,
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
