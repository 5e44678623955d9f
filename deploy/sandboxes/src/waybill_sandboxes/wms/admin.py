"""Admin routes of the WMS sandbox (``/_sandbox/...``): inspect state and steer the warehouse.

These are for tests and integrators, not part of the imitated API, so they
need no API key and are never faulted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from waybill_sandboxes.delivery import webhook_admin_routes
from waybill_sandboxes.responses import BadBody, json_response, read_json
from waybill_sandboxes.wms.return_records import InspectionPlan
from waybill_sandboxes.wms.returns_dock import ReturnNotReady, UnknownReturn
from waybill_sandboxes.wms.warehouse import DEFAULT_LOCATION, InventoryError

if TYPE_CHECKING:
    from waybill_sandboxes.wms.sandbox import WmsSandbox

__all__ = ["WmsAdmin"]


class HoldRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    stage: str


class ShortPickRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    sku: str | None = None
    qty: float = 1.0


class AdjustmentRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    sku: str
    delta: float
    reason_code: str
    location: str = DEFAULT_LOCATION


class LifecycleSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    stage_delays_s: dict[str, float] = msgspec.field(default_factory=dict)
    short_pick_rate: float | None = None


class ReceiveRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    inspect: bool = True
    """Inspect at once after receipt (False: leave it received until ``.../inspect``)."""


class ReturnInspectionDefault(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reject_all: bool


async def _receive_options(request: web.Request) -> ReceiveRequest:
    """The options of a receipt; a receipt needs no body at all."""
    if not (await request.read()).strip():
        return ReceiveRequest()
    return await read_json(request, ReceiveRequest)


def _bad(error: Exception) -> web.Response:
    return json_response({"error": str(error)}, status=400)


class WmsAdmin:
    """Handlers under ``/_sandbox`` besides the fault routes."""

    def __init__(self, sandbox: WmsSandbox) -> None:
        self.sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_sandbox/orders", self.orders),
            web.post("/_sandbox/orders/{ref}/hold", self.hold),
            web.post("/_sandbox/orders/{ref}/release", self.release),
            web.post("/_sandbox/orders/{ref}/short-pick", self.short_pick),
            web.get("/_sandbox/cancellations", self.cancellations),
            web.post("/_sandbox/inventory/adjustments", self.adjust_inventory),
            *webhook_admin_routes(self.sandbox.webhooks),
            web.put("/_sandbox/lifecycle", self.configure_lifecycle),
            web.get("/_sandbox/returns", self.returns),
            web.put("/_sandbox/returns/inspection", self.default_return_inspection),
            web.put("/_sandbox/returns/{ref}/inspection", self.plan_return_inspection),
            web.post("/_sandbox/returns/{key}/receive", self.receive_return),
            web.post("/_sandbox/returns/{key}/inspect", self.inspect_return),
        ]

    async def orders(self, request: web.Request) -> web.Response:
        warehouse, lifecycle = self.sandbox.warehouse, self.sandbox.lifecycle
        return json_response(
            {
                "orders": list(warehouse.orders.values()),
                "creations": dict(warehouse.creations),
                "held": lifecycle.held(),
                "waiting": lifecycle.waiting(),
            }
        )

    async def hold(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request, HoldRequest)
            self.sandbox.lifecycle.hold(request.match_info["ref"], body.stage)
        except (BadBody, ValueError) as error:
            return _bad(error)
        return json_response({"held": self.sandbox.lifecycle.held()})

    async def release(self, request: web.Request) -> web.Response:
        released = self.sandbox.lifecycle.release(request.match_info["ref"])
        return json_response({"released": released})

    async def short_pick(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request, ShortPickRequest)
            self.sandbox.warehouse.force_short_pick(request.match_info["ref"], body.sku, body.qty)
        except (BadBody, ValueError) as error:
            return _bad(error)
        return json_response({"forced": True})

    async def cancellations(self, request: web.Request) -> web.Response:
        return json_response({"cancellations": self.sandbox.warehouse.cancellations})

    async def adjust_inventory(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request, AdjustmentRequest)
            adjustment = self.sandbox.warehouse.adjust_inventory(
                body.sku, body.delta, body.reason_code, body.location
            )
        except (BadBody, InventoryError) as error:
            return _bad(error)
        return json_response(adjustment)

    async def configure_lifecycle(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request, LifecycleSettings)
            if body.short_pick_rate is not None and not 0 <= body.short_pick_rate <= 1:
                raise ValueError("short_pick_rate must be between 0 and 1")
            self.sandbox.lifecycle.set_delays(body.stage_delays_s)
        except (BadBody, ValueError) as error:
            return _bad(error)
        if body.short_pick_rate is not None:
            self.sandbox.warehouse.short_pick_rate = body.short_pick_rate
        return json_response(
            {
                "stage_delays_s": self.sandbox.lifecycle.delays_s,
                "short_pick_rate": body.short_pick_rate,
            }
        )

    # -- returns ------------------------------------------------------------------

    async def returns(self, request: web.Request) -> web.Response:
        dock = self.sandbox.returns
        return json_response(
            {
                "returns": list(dock.returns.values()),
                "creations": dict(dock.creations),
                "reject_all": dock.reject_all,
            }
        )

    async def default_return_inspection(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request, ReturnInspectionDefault)
        except BadBody as error:
            return _bad(error)
        self.sandbox.returns.reject_all = body.reject_all
        return json_response({"reject_all": body.reject_all})

    async def plan_return_inspection(self, request: web.Request) -> web.Response:
        """What the dock will find in one return; may be set before the return is expected."""
        try:
            plan = await read_json(request, InspectionPlan)
        except BadBody as error:
            return _bad(error)
        self.sandbox.returns.plan_inspection(request.match_info["ref"], plan)
        return json_response({"client_return_ref": request.match_info["ref"], "plan": plan})

    async def receive_return(self, request: web.Request) -> web.Response:
        """The parcel reached the dock (by return id, client return ref or tracking number)."""
        key = request.match_info["key"]
        try:
            body = await _receive_options(request)
            received = self.sandbox.returns.receive(key)
            if body.inspect:
                received = self.sandbox.returns.inspect(key)
        except BadBody as error:
            return _bad(error)
        except UnknownReturn as error:
            return json_response({"error": str(error)}, status=404)
        except ReturnNotReady as error:
            return json_response({"error": str(error)}, status=409)
        return json_response(received)

    async def inspect_return(self, request: web.Request) -> web.Response:
        try:
            inspected = self.sandbox.returns.inspect(request.match_info["key"])
        except UnknownReturn as error:
            return json_response({"error": str(error)}, status=404)
        except ReturnNotReady as error:
            return json_response({"error": str(error)}, status=409)
        return json_response(inspected)
