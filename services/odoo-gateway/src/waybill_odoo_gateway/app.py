"""The odoo-gateway service: what it consumes, answers and serves, wired onto the runtime.

``service`` is what ``waybill run odoo-gateway`` runs (``main``). Tests that
need a service of their own (two replicas, say) call :func:`build_service`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from waybill_contracts.commands import (
    PostExceptionInOdoo,
    PostNoteInOdoo,
    RecordDeliveryInOdoo,
    RecordShipmentInOdoo,
)
from waybill_contracts.queries import PickingStatusRequest, PickingStatusResponse
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.gateway import Gateway, running_gateway
from waybill_odoo_gateway.odoo_notes import post_exception, post_plain_note, record_delivery
from waybill_odoo_gateway.picking_status import picking_status
from waybill_odoo_gateway.shipment_recording import record_shipment
from waybill_odoo_gateway.webhooks import webhook_routes
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.http import CheckResult, ProbeCheck, ReadinessCheck
from waybill_runtime.outcomes import RetryLater
from waybill_runtime.queries import QueryError
from waybill_runtime.service import Runtime, Service

__all__ = ["SERVICE_NAME", "build_service", "main", "service"]

SERVICE_NAME = "odoo-gateway"


class _RunningGateway:
    """Where the handlers of one service object find its gateway while it runs."""

    def __init__(self) -> None:
        self.gateway: Gateway | None = None

    def now(self) -> Gateway:
        if self.gateway is None:
            # Handlers only run between start and stop; this is a stop race.
            raise RetryLater("the gateway is stopping")
        return self.gateway

    @contextlib.asynccontextmanager
    async def running(self, runtime: Runtime[OdooGatewaySettings]) -> AsyncIterator[None]:
        async with running_gateway(runtime) as gateway:
            self.gateway = gateway
            try:
                yield
            finally:
                self.gateway = None


def build_service() -> Service[OdooGatewaySettings]:
    """A new odoo-gateway service declaration."""
    service = Service(
        SERVICE_NAME,
        settings_type=OdooGatewaySettings,
        description="Odoo webhooks and polling in; tracking, chatter, validation, to-dos out",
        buckets=("watermarks",),
    )
    slot = _RunningGateway()
    service.uses(slot.running)

    def odoo_ready(runtime: Runtime[OdooGatewaySettings]) -> ReadinessCheck:
        async def probe() -> CheckResult:
            gateway = slot.gateway
            if gateway is None:
                return CheckResult(False, "the gateway is not running")
            return CheckResult(gateway.odoo.ready, gateway.odoo.status)

        return ProbeCheck("odoo", probe)

    service.readiness(odoo_ready)

    def routes(runtime: Runtime[OdooGatewaySettings]) -> list[web.RouteDef]:
        return webhook_routes(slot.now(), runtime.metrics)

    service.routes(routes)

    @service.handles(RecordShipmentInOdoo)
    async def on_record_shipment(command: RecordShipmentInOdoo, ctx: HandlerContext) -> None:
        await record_shipment(slot.now(), command, ctx)

    @service.handles(RecordDeliveryInOdoo)
    async def on_record_delivery(command: RecordDeliveryInOdoo, ctx: HandlerContext) -> None:
        await record_delivery(slot.now(), command, ctx)

    @service.handles(PostExceptionInOdoo)
    async def on_post_exception(command: PostExceptionInOdoo, ctx: HandlerContext) -> None:
        await post_exception(slot.now(), command, ctx)

    @service.handles(PostNoteInOdoo)
    async def on_post_note(command: PostNoteInOdoo, ctx: HandlerContext) -> None:
        await post_plain_note(slot.now(), command, ctx)

    @service.query("picking_status", PickingStatusRequest, PickingStatusResponse)
    async def on_picking_status(
        request: PickingStatusRequest, runtime: Runtime[OdooGatewaySettings]
    ) -> PickingStatusResponse:
        gateway = slot.gateway
        if gateway is None:
            raise QueryError(503, "the gateway is stopping: ask again")
        return await picking_status(gateway, request)

    return service


service = build_service()
main = service.main

if __name__ == "__main__":
    raise SystemExit(main())
