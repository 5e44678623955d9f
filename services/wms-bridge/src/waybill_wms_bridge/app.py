"""The wms-bridge service: Waybill's only contact with the warehouse system (WMS).

In: ``ReleaseToWarehouse`` and ``CancelWarehouseOrder`` commands, WMS webhooks
on ``POST /webhooks/wms`` and a reconciliation poll. Out: warehouse-order
events (accepted, picked, short-picked, packed, shipped, cancelled, cancel
refused) and inventory adjustments. ``waybill run wms-bridge`` starts it through :func:`main`.
"""

from __future__ import annotations

from waybill_runtime.service import Service
from waybill_wms_bridge.bridge import Bridges, WmsReadiness
from waybill_wms_bridge.config import WmsBridgeSettings
from waybill_wms_bridge.handlers import register_handlers

__all__ = ["bridges", "main", "service"]

service = Service(
    "wms-bridge",
    settings_type=WmsBridgeSettings,
    description="Releases orders to the warehouse system and reports what the warehouse did",
    buckets=("watermarks",),
)
bridges = Bridges()

service.uses(bridges.open)
service.uses(bridges.reconciling)
service.routes(lambda runtime: bridges.of(runtime).webhooks.routes())
service.readiness(lambda runtime: WmsReadiness(bridges.of(runtime).client))
register_handlers(service, bridges)

main = service.main

if __name__ == "__main__":
    raise SystemExit(main())
