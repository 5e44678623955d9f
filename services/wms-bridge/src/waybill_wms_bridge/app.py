"""The wms-bridge service: Waybill's only contact with the warehouse system (WMS).

In: ``ReleaseToWarehouse``, ``CancelWarehouseOrder``, ``SyncProducts``,
``SnapshotWarehouseInventory``, ``ExpectReturn`` and ``CancelExpectedReturn`` commands, WMS
webhooks on ``POST /webhooks/wms`` and a reconciliation poll.
Out: warehouse-order events (accepted, picked, short-picked, packed, shipped,
cancelled, cancel refused), inventory adjustments, ``ProductsSynced``,
``InventorySnapshotTaken`` pages, ``ReturnReceived`` and ``ReturnInspected``.
``waybill run wms-bridge`` starts it through :func:`main`.
"""

from __future__ import annotations

from waybill_contracts.commands import (
    CancelWarehouseOrder,
    ReleaseToWarehouse,
    SnapshotWarehouseInventory,
    SyncProducts,
)
from waybill_contracts.return_commands import CancelExpectedReturn, ExpectReturn
from waybill_runtime.declaration import Bucket, Partner, Route
from waybill_runtime.service import Service
from waybill_wms_bridge.bridge import BRIDGE, WmsReadiness, open_bridge, reconciling
from waybill_wms_bridge.config import WmsBridgeSettings
from waybill_wms_bridge.handlers import (
    cancel_expected_return,
    cancel_warehouse_order,
    expect_return,
    release_to_warehouse,
    snapshot_inventory,
    sync_products,
)
from waybill_wms_bridge.webhooks import WEBHOOK_PATH
from waybill_wms_bridge.wms_wire import WmsWebhook

__all__ = ["main", "service"]

service = Service(
    "wms-bridge",
    settings_type=WmsBridgeSettings,
    description="Releases orders to the warehouse system and reports what the warehouse did",
    buckets=(Bucket("watermarks"),),
    partners=(
        Partner(
            "wms",
            settings={
                "wms_url": "$url",
                "wms_api_key": "$api_key",
                "wms_webhook_secret": "$webhook_secret",
            },
            webhooks=WEBHOOK_PATH,
        ),
    ),
    routes=(
        Route(
            "POST",
            WEBHOOK_PATH,
            "partner",
            "signed warehouse lifecycle webhooks",
            request=WmsWebhook,
        ),
    ),
    # Locally a lost webhook should be made up for within seconds, not a minute.
    local_settings={"wms_reconcile_interval_s": "10"},
)
service.resource(BRIDGE)(open_bridge)
service.runs(reconciling)
service.routes(lambda runtime: runtime.resource(BRIDGE).webhooks.routes())
service.readiness(lambda runtime: WmsReadiness(runtime.resource(BRIDGE).client))
service.handles(ReleaseToWarehouse)(release_to_warehouse)
service.handles(CancelWarehouseOrder)(cancel_warehouse_order)
service.handles(SyncProducts)(sync_products)
service.handles(SnapshotWarehouseInventory)(snapshot_inventory)
# Returns (issue 20): parcels announced and called off; receipt and inspection by webhook.
service.handles(ExpectReturn)(expect_return)
service.handles(CancelExpectedReturn)(cancel_expected_return)

main = service.main

if __name__ == "__main__":
    raise SystemExit(main())
