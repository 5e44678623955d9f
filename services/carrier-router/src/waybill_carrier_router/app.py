"""The carrier-router service: what it consumes, serves and uses (``waybill run carrier-router``).

In: ``BookShipment``, ``VoidShipment``, ``BookReturnLabel`` and ``VoidReturnLabel``
commands; tracking webhooks on ``POST /webhooks/carriers/carrier-a`` and ``/carrier-b``;
quiet shipments' tracking asked of their carriers (:mod:`waybill_carrier_router.reconciliation`).
Out: ``ShipmentBooked``, ``ShipmentBookingFailed``, ``ShipmentVoided``,
``ShipmentVoidRefused``, ``MilestoneReached``, ``ReturnLabelBooked``, ``ReturnLabelBookingFailed``,
``ReturnLabelVoided``. See the README for settings and subjects.
"""

from __future__ import annotations

from aiohttp import web

from waybill_carrier_router.carriers import TrackerEvent, TrackWebhook
from waybill_carrier_router.config import CARRIER_A, CARRIER_B, CarrierRouterSettings
from waybill_carrier_router.handlers import (
    book_return_label,
    book_shipment,
    void_return_label,
    void_shipment,
)
from waybill_carrier_router.reconciliation import reconciling_tracking
from waybill_carrier_router.router import ROUTER, CarrierRouter, open_router
from waybill_carrier_router.webhooks import tracking_routes
from waybill_contracts.commands import BookShipment, VoidShipment
from waybill_contracts.return_commands import BookReturnLabel, VoidReturnLabel
from waybill_runtime.declaration import Bucket, Partner, Route
from waybill_runtime.service import Runtime, Service

__all__ = ["main", "service"]

service = Service(
    "carrier-router",
    settings_type=CarrierRouterSettings,
    description="Books labels by rules and price, voids them, turns tracking into milestones",
    buckets=(Bucket("tracking"), Bucket("watermarks")),
    partners=tuple(
        Partner(
            carrier,
            settings={
                f"{setting}_url": "$url",
                f"{setting}_api_key": "$api_key",
                f"{setting}_webhook_secret": "$webhook_secret",
            },
            webhooks=f"/webhooks/carriers/{carrier}",
        )
        for carrier, setting in ((CARRIER_A, "carrier_a"), (CARRIER_B, "carrier_b"))
    ),
    routes=tuple(
        Route(
            "POST",
            f"/webhooks/carriers/{carrier}",
            "partner",
            "signed tracking webhooks",
            request=payload,
        )
        for carrier, payload in ((CARRIER_A, TrackerEvent), (CARRIER_B, TrackWebhook))
    ),
    # Locally a carrier that is back should be tried again soon.
    local_settings={"carrier_circuit_reset_s": "2"},
)
service.handles(BookShipment)(book_shipment)
service.handles(VoidShipment)(void_shipment)
# Return labels (issue 20).
service.handles(BookReturnLabel)(book_return_label)
service.handles(VoidReturnLabel)(void_return_label)


service.resource(ROUTER)(open_router)
service.runs(reconciling_tracking)


@service.routes
def _webhook_routes(runtime: Runtime[CarrierRouterSettings]) -> list[web.RouteDef]:
    router: CarrierRouter = runtime.resource(ROUTER)
    return tracking_routes(router, runtime.publisher)


main = service.main
