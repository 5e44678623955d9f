"""The odoo-gateway service: what it consumes, answers and serves, wired onto the runtime.

``service`` is what ``waybill run odoo-gateway`` runs (``main``). Tests that
need a service of their own (two replicas, say) call :func:`build_service`.
"""

from __future__ import annotations

from aiohttp import web

from waybill_contracts.commands import (
    PostExceptionInOdoo,
    PostNoteInOdoo,
    RecordDeliveryInOdoo,
    RecordFreightCostInOdoo,
    RecordShipmentInOdoo,
    SnapshotOdooInventory,
)
from waybill_contracts.events import InventoryAdjusted
from waybill_contracts.operations import ApproveInventoryAdjustment, StartProductSync
from waybill_contracts.queries import PickingStatusRequest, PickingStatusResponse
from waybill_contracts.return_commands import (
    CreateReturnInOdoo,
    IssueCreditNoteInOdoo,
    ReceiveReturnInOdoo,
)
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.credit_note_issuing import issue_credit_note_in_odoo
from waybill_odoo_gateway.freight_costs import record_freight_cost
from waybill_odoo_gateway.gateway import GATEWAY, running_gateway
from waybill_odoo_gateway.inventory_adjustments import approve_adjustment, inventory_adjusted
from waybill_odoo_gateway.odoo_notes import post_exception, post_plain_note, record_delivery
from waybill_odoo_gateway.picking_status import picking_status
from waybill_odoo_gateway.product_sync_on_demand import start_product_sync
from waybill_odoo_gateway.return_creation import create_return_in_odoo
from waybill_odoo_gateway.return_receipt import receive_return_in_odoo
from waybill_odoo_gateway.rma_api import RMA_PATH, RmaAccepted, RmaRequest, rma_routes
from waybill_odoo_gateway.shipment_recording import record_shipment
from waybill_odoo_gateway.stock_snapshot import snapshot_inventory
from waybill_odoo_gateway.webhook_address import WEBHOOK_PATH
from waybill_odoo_gateway.webhooks import OdooWebhook, webhook_routes
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.declaration import Bucket, Partner, Route
from waybill_runtime.http import CheckResult, ProbeCheck, ReadinessCheck
from waybill_runtime.service import Runtime, Service

__all__ = ["SERVICE_NAME", "build_service", "main", "service"]

SERVICE_NAME = "odoo-gateway"


def build_service() -> Service[OdooGatewaySettings]:
    """A new odoo-gateway service declaration."""
    service = Service(
        SERVICE_NAME,
        settings_type=OdooGatewaySettings,
        description="Odoo webhooks and polling in; tracking, chatter, validation, to-dos, "
        "warehouse stock adjustments out",
        # Its one event consumer (warehouse adjustments) starts at the next event when first
        # made: adjustments from before this gateway applied any may have been corrected in
        # Odoo by hand since, and applying them now would count them twice.
        new_events_only=True,
        # workflow: inventory adjustments waiting for an operator's approval (kept until then).
        buckets=(Bucket("watermarks"), Bucket("workflow")),
        partners=(
            Partner(
                "odoo",
                settings={
                    "odoo_url": "$url",
                    "odoo_db": "$db",
                    "odoo_login": "$login",
                    "odoo_password": "$password",
                    "odoo_api_key": "$api_key",
                    "odoo_webhook_token": "$webhook_token",
                },
                webhooks=WEBHOOK_PATH.replace("{token}", "$webhook_token"),
            ),
        ),
        routes=(
            Route(
                "POST",
                WEBHOOK_PATH,
                "partner",
                "Odoo automation-rule webhooks",
                request=OdooWebhook,
            ),
            Route(
                "POST",
                RMA_PATH,
                "operator",
                "Request the return of delivered goods (an RMA): ReturnRequested",
                request=RmaRequest,
                response=RmaAccepted,
                role="operator",
            ),
        ),
        # Locally the safety-net poll should find a missed order within seconds.
        # The WMS sandbox's default location is the Odoo sandbox's WH/Stock.
        local_settings={
            "odoo_poll_interval_s": "10",
            "odoo_inventory_locations": '{"PICK-01": "WH-STOCK"}',
        },
    )
    service.resource(GATEWAY)(running_gateway)

    def odoo_ready(runtime: Runtime[OdooGatewaySettings]) -> ReadinessCheck:
        gateway = runtime.resource(GATEWAY)
        odoo = gateway.odoo

        async def probe() -> CheckResult:
            # /readyz answers anyone: where and as whom the gateway logs in stays in the log.
            # Setup problems say what to do (a module to install, a key to renew).
            setup = gateway.setup if odoo.ready else None
            detail = "; ".join(
                [odoo.public_status, *(p.line for p in (setup.problems if setup else ()))]
            )
            return CheckResult(odoo.ready and not (setup and setup.blocking), detail)

        return ProbeCheck("odoo", probe)

    service.readiness(odoo_ready)

    def routes(runtime: Runtime[OdooGatewaySettings]) -> list[web.RouteDef]:
        return [*webhook_routes(runtime.resource(GATEWAY), runtime.metrics), *rma_routes(runtime)]

    service.routes(routes)

    @service.handles(RecordShipmentInOdoo)
    async def on_record_shipment(
        command: RecordShipmentInOdoo, ctx: HandlerContext[OdooGatewaySettings]
    ) -> None:
        await record_shipment(ctx.resource(GATEWAY), command, ctx)

    @service.handles(RecordDeliveryInOdoo)
    async def on_record_delivery(
        command: RecordDeliveryInOdoo, ctx: HandlerContext[OdooGatewaySettings]
    ) -> None:
        await record_delivery(ctx.resource(GATEWAY), command, ctx)

    @service.handles(PostExceptionInOdoo)
    async def on_post_exception(
        command: PostExceptionInOdoo, ctx: HandlerContext[OdooGatewaySettings]
    ) -> None:
        await post_exception(ctx.resource(GATEWAY), command, ctx)

    @service.handles(PostNoteInOdoo)
    async def on_post_note(
        command: PostNoteInOdoo, ctx: HandlerContext[OdooGatewaySettings]
    ) -> None:
        await post_plain_note(ctx.resource(GATEWAY), command, ctx)

    @service.handles(RecordFreightCostInOdoo)
    async def on_record_freight_cost(
        command: RecordFreightCostInOdoo, ctx: HandlerContext[OdooGatewaySettings]
    ) -> None:
        await record_freight_cost(ctx.resource(GATEWAY), command, ctx)

    @service.handles(InventoryAdjusted)
    async def on_inventory_adjusted(
        event: InventoryAdjusted, ctx: HandlerContext[OdooGatewaySettings]
    ) -> None:
        await inventory_adjusted(ctx.resource(GATEWAY), event, ctx)

    @service.handles(ApproveInventoryAdjustment)
    async def on_approve_inventory_adjustment(
        command: ApproveInventoryAdjustment, ctx: HandlerContext[OdooGatewaySettings]
    ) -> None:
        await approve_adjustment(ctx.resource(GATEWAY), command, ctx)

    @service.handles(StartProductSync)
    async def on_start_product_sync(
        command: StartProductSync, ctx: HandlerContext[OdooGatewaySettings]
    ) -> None:
        await start_product_sync(ctx.resource(GATEWAY), command, ctx)

    @service.handles(SnapshotOdooInventory)
    async def on_snapshot_inventory(
        command: SnapshotOdooInventory, ctx: HandlerContext[OdooGatewaySettings]
    ) -> None:
        await snapshot_inventory(ctx.resource(GATEWAY).odoo, command, ctx)

    @service.handles(CreateReturnInOdoo)
    async def on_create_return(
        command: CreateReturnInOdoo, ctx: HandlerContext[OdooGatewaySettings]
    ) -> None:
        await create_return_in_odoo(ctx.resource(GATEWAY), command, ctx)

    @service.handles(ReceiveReturnInOdoo)
    async def on_receive_return(
        command: ReceiveReturnInOdoo, ctx: HandlerContext[OdooGatewaySettings]
    ) -> None:
        await receive_return_in_odoo(ctx.resource(GATEWAY), command, ctx)

    @service.handles(IssueCreditNoteInOdoo)
    async def on_issue_credit_note(
        command: IssueCreditNoteInOdoo, ctx: HandlerContext[OdooGatewaySettings]
    ) -> None:
        await issue_credit_note_in_odoo(ctx.resource(GATEWAY), command, ctx)

    @service.query("picking_status", PickingStatusRequest, PickingStatusResponse)
    async def on_picking_status(
        request: PickingStatusRequest, runtime: Runtime[OdooGatewaySettings]
    ) -> PickingStatusResponse:
        return await picking_status(runtime.resource(GATEWAY), request)

    return service


service = build_service()
main = service.main

if __name__ == "__main__":
    raise SystemExit(main())
