"""The WMS REST API that Waybill's wms-bridge talks to (``/api/v1``, ``X-Api-Key`` auth).

Errors are RFC 9457 problem documents (``application/problem+json``), the
usual shape for modern warehouse APIs.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

from waybill_sandboxes.responses import BadBody, json_response, read_json
from waybill_sandboxes.wms.records import OutboundOrderRequest
from waybill_sandboxes.wms.warehouse import CannotCancel, OrderConflict, UnknownOrder

if TYPE_CHECKING:
    from waybill_sandboxes.wms.sandbox import WmsSandbox

__all__ = ["API_KEY_HEADER", "WmsApi", "parse_since", "problem"]

API_KEY_HEADER = "X-Api-Key"
_PREFIX = "/api/v1"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, title: str, detail: str) -> web.Response:
    """An RFC 9457 problem response."""
    return json_response(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


def parse_since(raw: str) -> datetime:
    """An ``updated_since`` query value as an aware datetime, or BadBody saying how to write it."""
    try:
        since = datetime.fromisoformat(raw)
    except ValueError:
        raise BadBody(
            f"updated_since {raw!r} is not an ISO 8601 timestamp: use e.g. 2024-05-01T08:00:00Z"
        ) from None
    if since.tzinfo is None:
        raise BadBody(f"updated_since {raw!r} has no UTC offset: add Z or +00:00")
    return since


class WmsApi:
    """Handlers of the public API; each route name is its fault/counter operation."""

    def __init__(self, sandbox: WmsSandbox) -> None:
        self.sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{_PREFIX}/outbound-orders", self.create_order, name="create_order"),
            web.get(f"{_PREFIX}/outbound-orders", self.list_orders, name="list_orders"),
            web.get(f"{_PREFIX}/outbound-orders/{{order_id}}", self.get_order, name="get_order"),
            web.post(
                f"{_PREFIX}/outbound-orders/{{order_id}}/cancel",
                self.cancel_order,
                name="cancel_order",
            ),
            web.get(f"{_PREFIX}/inventory", self.list_inventory, name="list_inventory"),
            web.get(f"{_PREFIX}/inventory/{{sku}}", self.get_inventory, name="get_inventory"),
        ]

    @web.middleware
    async def require_api_key(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer 401 to API calls without the right ``X-Api-Key`` (admin routes are open)."""
        if request.path.startswith(_PREFIX):
            given = request.headers.get(API_KEY_HEADER, "")
            if not hmac.compare_digest(given.encode(), self.sandbox.config.api_key.encode()):
                what = "missing" if not given else "wrong"
                return problem(401, "Unauthorized", f"the {API_KEY_HEADER} header is {what}")
        return await handler(request)

    async def create_order(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request, OutboundOrderRequest)
        except BadBody as error:
            return problem(422, "Invalid order", str(error))
        try:
            order, created = self.sandbox.create_order(body)
        except OrderConflict as error:
            return problem(409, "Duplicate client order ref", str(error))
        return json_response(order, status=201 if created else 200)

    async def list_orders(self, request: web.Request) -> web.Response:
        """Orders updated at or after ``updated_since``: the reconciliation poll."""
        raw_since = request.query.get("updated_since")
        try:
            since = parse_since(raw_since) if raw_since else None
        except BadBody as error:
            return problem(400, "Invalid query", str(error))
        orders = self.sandbox.warehouse.orders_updated_since(since)
        if ref := request.query.get("client_order_ref"):
            orders = [o for o in orders if o.client_order_ref == ref]
        if status := request.query.get("status"):
            orders = [o for o in orders if o.status == status]
        return json_response({"orders": orders, "count": len(orders)})

    async def get_order(self, request: web.Request) -> web.Response:
        try:
            return json_response(self.sandbox.warehouse.order(request.match_info["order_id"]))
        except UnknownOrder as error:
            return problem(404, "Not found", str(error))

    async def cancel_order(self, request: web.Request) -> web.Response:
        try:
            return json_response(self.sandbox.warehouse.cancel(request.match_info["order_id"]))
        except UnknownOrder as error:
            return problem(404, "Not found", str(error))
        except CannotCancel as error:
            return problem(409, "Too late to cancel", str(error))

    async def list_inventory(self, request: web.Request) -> web.Response:
        """Stock of the SKUs given as repeated ``sku`` parameters."""
        skus = request.query.getall("sku", [])
        if not skus:
            return problem(400, "Invalid query", "name at least one SKU: ?sku=A&sku=B")
        levels = [self.sandbox.warehouse.stock_level(sku) for sku in skus]
        return json_response({"items": levels})

    async def get_inventory(self, request: web.Request) -> web.Response:
        return json_response(self.sandbox.warehouse.stock_level(request.match_info["sku"]))
