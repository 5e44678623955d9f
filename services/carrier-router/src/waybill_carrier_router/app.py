"""The carrier-router service: what it consumes, serves and uses (``waybill run carrier-router``).

In: ``BookShipment`` and ``VoidShipment`` commands; tracking webhooks on
``POST /webhooks/carriers/carrier-a`` and ``/carrier-b``.
Out: ``ShipmentBooked``, ``ShipmentBookingFailed``, ``ShipmentVoided``,
``ShipmentVoidRefused``, ``MilestoneReached``. See the README for settings and subjects.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from waybill_carrier_router.config import CarrierRouterSettings
from waybill_carrier_router.handlers import book_shipment, void_shipment
from waybill_carrier_router.router import open_router, router_of
from waybill_carrier_router.webhooks import tracking_routes
from waybill_contracts.commands import BookShipment, VoidShipment
from waybill_runtime.service import Runtime, Service

__all__ = ["main", "service"]

service = Service(
    "carrier-router",
    settings_type=CarrierRouterSettings,
    description="Books labels by rules and price, voids them, turns tracking into milestones",
    buckets=("tracking", "watermarks"),
)
service.handles(BookShipment)(book_shipment)
service.handles(VoidShipment)(void_shipment)


@service.uses
@contextlib.asynccontextmanager
async def _carriers(runtime: Runtime[CarrierRouterSettings]) -> AsyncIterator[None]:
    async with open_router(runtime):
        yield


@service.routes
def _webhook_routes(runtime: Runtime[CarrierRouterSettings]) -> list[web.RouteDef]:
    return tracking_routes(router_of(runtime), runtime.publisher)


main = service.main
