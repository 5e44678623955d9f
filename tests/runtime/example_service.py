"""A whole Waybill service: settings, an effect made once, an event, a query, a route.

Run it with `python -m tests.runtime.example_service`; the runtime tests drive it.
"""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web

from waybill_contracts import fact_id
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.events import WarehouseOrderAccepted
from waybill_contracts.queries import OrderStatusRequest, OrderStatusResponse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.declaration import Route
from waybill_runtime.outcomes import InvalidMessage
from waybill_runtime.queries import QueryError
from waybill_runtime.service import Runtime, Service
from waybill_runtime.settings import RuntimeSettings


class ExampleSettings(RuntimeSettings, frozen=True, kw_only=True):
    warehouse: str = "AMS1"  # WAYBILL_WAREHOUSE
    warehouse_latency_s: float = 0.0  # WAYBILL_WAREHOUSE_LATENCY_S: the pretend call's duration


class WarehouseAnswer(msgspec.Struct, frozen=True):
    warehouse: str


service = Service(
    "wms-bridge",
    settings_type=ExampleSettings,
    description="example bridge",
    # The response type is what /openapi.json documents the route to answer.
    routes=[
        Route(
            "GET",
            "/warehouse",
            "operator",
            "which warehouse this is",
            response=WarehouseAnswer,
            role="viewer",
        )
    ],
)
effects: list[str] = []  # every pretend call into the warehouse, for the tests to count


@service.handles(ReleaseToWarehouse)
async def release(command: ReleaseToWarehouse, ctx: HandlerContext[ExampleSettings]) -> None:
    order, runtime = command.order, ctx.runtime
    if not order.lines:
        raise InvalidMessage(f"order {order.ref} has no lines")  # dead letter, with the reason

    async def create_in_warehouse() -> str:
        await asyncio.sleep(runtime.settings.warehouse_latency_s)
        effects.append(order.ref)
        return f"WMS-{order.ref}"

    wms_id = await runtime.once_only(str).run(f"wms-create:{order.ref}", create_in_warehouse)
    accepted = WarehouseOrderAccepted(
        order_ref=order.ref, warehouse_order_id=wms_id, accepted_at=ctx.envelope.time
    )
    await ctx.publish(accepted, fact_id=fact_id("accepted", order.ref))


@service.query("order_status", OrderStatusRequest, OrderStatusResponse)
async def order_status(
    request: OrderStatusRequest, runtime: Runtime[ExampleSettings]
) -> OrderStatusResponse:
    where = runtime.settings.warehouse
    raise QueryError(404, f"order {request.order_ref} is not known in warehouse {where}")


@service.routes
def routes(runtime: Runtime[ExampleSettings]) -> list[web.RouteDef]:
    async def warehouse(request: web.Request) -> web.Response:
        answer = WarehouseAnswer(runtime.settings.warehouse)
        return web.Response(body=msgspec.json.encode(answer), content_type="application/json")

    return [web.get("/warehouse", warehouse)]


if __name__ == "__main__":
    raise SystemExit(service.main())
