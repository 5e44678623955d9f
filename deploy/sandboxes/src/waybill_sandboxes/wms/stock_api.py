"""The WMS's stock-on-hand read, page by page, and the sandbox's quiet shelf count.

* ``GET /api/v1/stock-on-hand?limit=<n>&after_sku=<sku>&after_location=<code>``
  lists what stands on every shelf, one item per SKU and location, in SKU then
  location order (keyset pages, like the catalogue's list): ``next`` names the
  keys the following page starts after, null on the last page. Each item says
  its unit (the catalogue's, ``EA`` for a SKU not in the catalogue).
* ``PUT /_sandbox/inventory/{sku}/{location}`` with ``{"on_hand": n}`` sets one
  shelf without any webhook: a miscount nobody reported, which only a
  reconciliation finds. Admin route: no API key, never faulted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from waybill_sandboxes.responses import BadBody, json_response, read_json
from waybill_sandboxes.wms.api import problem
from waybill_sandboxes.wms.warehouse import InventoryError

if TYPE_CHECKING:
    from waybill_sandboxes.wms.sandbox import WmsSandbox

__all__ = ["ShelfStock", "StockApi"]

_LIMIT_MAX = 500


class ShelfStock(msgspec.Struct, kw_only=True, frozen=True):
    """Stock of one SKU on one shelf."""

    sku: str
    location: str
    on_hand: float
    uom: str


class ShelfCount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    on_hand: float


class StockApi:
    """The stock read of the imitated API and the admin shelf count."""

    def __init__(self, sandbox: WmsSandbox) -> None:
        self.sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/stock-on-hand", self.stock_on_hand, name="stock_on_hand"),
            web.put("/_sandbox/inventory/{sku}/{location}", self.count_shelf),
        ]

    async def stock_on_hand(self, request: web.Request) -> web.Response:
        raw_limit = request.query.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= _LIMIT_MAX:
            return problem(400, "Invalid query", f"limit {raw_limit!r} is not 1 to {_LIMIT_MAX}")
        after_sku = request.query.get("after_sku")
        after_location = request.query.get("after_location", "")
        if after_sku is None and "after_location" in request.query:
            return problem(400, "Invalid query", "after_location needs after_sku")
        shelves = self.sandbox.warehouse.shelves()
        if after_sku is not None:
            shelves = [s for s in shelves if (s[0], s[1]) > (after_sku, after_location)]
        limit = int(raw_limit)
        page, more = shelves[:limit], len(shelves) > limit
        products = self.sandbox.warehouse.products
        items = [
            ShelfStock(
                sku=sku,
                location=location,
                on_hand=held,
                uom=products[sku].uom if sku in products else "EA",
            )
            for sku, location, held in page
        ]
        following = (
            {"after_sku": items[-1].sku, "after_location": items[-1].location} if more else None
        )
        return json_response({"items": items, "next": following})

    async def count_shelf(self, request: web.Request) -> web.Response:
        sku, location = request.match_info["sku"], request.match_info["location"]
        try:
            body = await read_json(request, ShelfCount)
            self.sandbox.warehouse.set_shelf(sku, location, body.on_hand)
        except (BadBody, InventoryError) as error:
            return json_response({"error": str(error)}, status=400)
        return json_response({"sku": sku, "location": location, "on_hand": body.on_hand})
