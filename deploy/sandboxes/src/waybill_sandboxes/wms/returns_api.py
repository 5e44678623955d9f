"""The WMS REST API for expected returns (``/api/v1/returns``), in the style of its orders API.

Same ``X-Api-Key`` auth (the API's middleware covers every ``/api/v1`` path),
same problem documents, same idempotency on the client's reference and the
same ``updated_since`` reconciliation poll as outbound orders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from waybill_sandboxes.responses import BadBody, json_response, read_json
from waybill_sandboxes.wms.api import parse_since, problem
from waybill_sandboxes.wms.return_records import ExpectedReturnRequest
from waybill_sandboxes.wms.returns_dock import ReturnConflict, ReturnNotReady, UnknownReturn

if TYPE_CHECKING:
    from waybill_sandboxes.wms.sandbox import WmsSandbox

__all__ = ["ReturnsApi"]

_PREFIX = "/api/v1/returns"


class ReturnsApi:
    """Handlers of the returns API; each route name is its fault/counter operation."""

    def __init__(self, sandbox: WmsSandbox) -> None:
        self.sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(_PREFIX, self.expect_return, name="expect_return"),
            web.get(_PREFIX, self.list_returns, name="list_returns"),
            web.get(f"{_PREFIX}/{{return_id}}", self.get_return, name="get_return"),
            web.post(f"{_PREFIX}/{{return_id}}/cancel", self.cancel_return, name="cancel_return"),
        ]

    async def expect_return(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request, ExpectedReturnRequest)
        except BadBody as error:
            return problem(422, "Invalid return", str(error))
        try:
            expected, created = self.sandbox.returns.expect(body)
        except ReturnConflict as error:
            return problem(409, "Duplicate client return ref", str(error))
        return json_response(expected, status=201 if created else 200)

    async def list_returns(self, request: web.Request) -> web.Response:
        """Returns updated at or after ``updated_since``: the reconciliation poll."""
        raw_since = request.query.get("updated_since")
        try:
            since = parse_since(raw_since) if raw_since else None
        except BadBody as error:
            return problem(400, "Invalid query", str(error))
        found = self.sandbox.returns.updated_since(since)
        if ref := request.query.get("client_return_ref"):
            found = [r for r in found if r.client_return_ref == ref]
        if status := request.query.get("status"):
            found = [r for r in found if r.status == status]
        return json_response({"returns": found, "count": len(found)})

    async def get_return(self, request: web.Request) -> web.Response:
        try:
            return json_response(self.sandbox.returns.get(request.match_info["return_id"]))
        except UnknownReturn as error:
            return problem(404, "Not found", str(error))

    async def cancel_return(self, request: web.Request) -> web.Response:
        try:
            return json_response(self.sandbox.returns.cancel(request.match_info["return_id"]))
        except UnknownReturn as error:
            return problem(404, "Not found", str(error))
        except ReturnNotReady as error:
            return problem(409, "Too late to cancel", str(error))
