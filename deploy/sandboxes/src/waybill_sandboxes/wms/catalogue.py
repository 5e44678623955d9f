"""The WMS's product catalogue: bulk upsert with a result per product, pages, a call limit.

A warehouse cannot take an order for a product it does not know, so Odoo's
product master is pushed here in batches. What a real WMS catalogue API does,
and what Waybill's product sync must cope with:

* ``POST /api/v1/products`` takes up to :attr:`CatalogueLimits.products_per_call`
  products and answers **per product** (``created``, ``updated``,
  ``unchanged`` or ``rejected`` with its reason): one bad product does not
  refuse its neighbours (a partial failure, still HTTP 200). A body that is not
  a product list at all is refused whole (422); too many products, 413.
* Upserting the same product twice changes nothing (``unchanged``), but the
  catalogue counts every product it was sent, per SKU
  (``GET /_sandbox/products/upserts``): a sync that sends a product twice
  is visible there even though the WMS took it in its stride.
* Calls are metered per API key (429 with ``Retry-After``), as warehouse
  APIs meter bulk endpoints.
* ``GET /api/v1/products?after=<sku>&limit=<n>`` lists the catalogue in SKU
  order, page by page (``next_after`` names where the next page starts).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from aiohttp import web

from waybill_sandboxes.ratelimit import CallRateLimit
from waybill_sandboxes.responses import BadBody, json_response
from waybill_sandboxes.wms.api import API_KEY_HEADER, problem
from waybill_sandboxes.wms.records import Product

if TYPE_CHECKING:
    from waybill_sandboxes.wms.sandbox import WmsSandbox

__all__ = ["KNOWN_UNITS", "Catalogue", "CatalogueApi", "CatalogueLimits", "ProductResult"]

KNOWN_UNITS = frozenset({"EA", "PK", "BX", "CS", "PL", "KG", "G", "L", "ML", "M", "CM"})
"""Units of measure this warehouse handles (UN/CEFACT-like short codes)."""

_SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
_GTIN_LENGTHS = frozenset({8, 12, 13, 14})
_LIST_LIMIT_MAX = 500

Status = Literal["created", "updated", "unchanged", "rejected"]


class CatalogueLimits(msgspec.Struct, kw_only=True, frozen=True):
    """How much the catalogue takes at once and how often."""

    products_per_call: int = 100
    calls_per_s: float = 0.0
    """Upsert calls per second per API key before 429 (0: unlimited)."""


class ProductResult(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """What became of one product of an upsert call."""

    sku: str
    status: Status
    reason: str | None = None


def gtin_is_valid(barcode: str) -> bool:
    """An EAN-8, UPC-A, EAN-13 or GTIN-14 with the right check digit (GS1 mod 10)."""
    if not barcode.isdigit() or len(barcode) not in _GTIN_LENGTHS:
        return False
    digits = [int(d) for d in barcode]
    body, check = digits[:-1], digits[-1]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def _rejection(product: Product) -> str | None:
    """Why this warehouse refuses a decoded product, or None."""
    if not _SKU.fullmatch(product.sku):
        return f"SKU {product.sku!r} is not 1-64 letters, digits and ._/- (starting alphanumeric)"
    if product.uom not in KNOWN_UNITS:
        return f"unit of measure {product.uom!r} is unknown here: use one of {sorted(KNOWN_UNITS)}"
    if product.barcode and not gtin_is_valid(product.barcode):
        return f"barcode {product.barcode!r} is not a GTIN-8/12/13/14 with a valid check digit"
    if product.active and product.weight_kg <= 0:
        return "an active product needs a weight above 0 kg to be packed"
    return None


class Catalogue:
    """The products a warehouse knows, and how often each was sent."""

    def __init__(self, products: dict[str, Product]) -> None:
        # The warehouse's own dict: packing reads weights and sizes from it.
        self.products = products
        self.received: Counter[str] = Counter()
        """Products sent per SKU (every upsert, refused or not)."""
        self.writes: Counter[str] = Counter()
        """Products created or changed per SKU."""

    def upsert(self, items: list[Any]) -> list[ProductResult]:
        """Create or update each item on its own; a bad one is refused, the others taken."""
        results: list[ProductResult] = []
        seen: set[str] = set()
        for index, item in enumerate(items):
            sku = item.get("sku") if isinstance(item, dict) else None
            label = sku if isinstance(sku, str) and sku else f"#{index}"
            self.received[label] += 1
            try:
                product = msgspec.convert(item, Product)
            except msgspec.ValidationError as error:
                results.append(ProductResult(sku=label, status="rejected", reason=str(error)))
                continue
            reason = _rejection(product)
            if reason is None and product.sku in seen:
                reason = "the SKU appears more than once in this call"
            if reason is not None:
                results.append(ProductResult(sku=product.sku, status="rejected", reason=reason))
                continue
            seen.add(product.sku)
            results.append(ProductResult(sku=product.sku, status=self._store(product)))
        return results

    def _store(self, product: Product) -> Status:
        earlier = self.products.get(product.sku)
        if earlier == product:
            return "unchanged"
        self.products[product.sku] = product
        self.writes[product.sku] += 1
        return "created" if earlier is None else "updated"

    def page(self, after: str | None, limit: int) -> tuple[list[Product], str | None]:
        """Products in SKU order after ``after``; and the SKU the next page starts after."""
        skus = sorted(sku for sku in self.products if after is None or sku > after)
        chosen = skus[:limit]
        following = chosen[-1] if len(skus) > limit else None
        return [self.products[sku] for sku in chosen], following


class CatalogueApi:
    """The catalogue's routes: ``/api/v1/products`` and its ``/_sandbox`` counts."""

    def __init__(self, sandbox: WmsSandbox) -> None:
        self.sandbox = sandbox
        self.catalogue = sandbox.catalogue
        self.limits = sandbox.config.catalogue
        self._calls = CallRateLimit(
            self.limits.calls_per_s, burst=max(1, int(self.limits.calls_per_s))
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/products", self.upsert_products, name="upsert_products"),
            web.get("/api/v1/products", self.list_products, name="list_products"),
            web.get("/api/v1/products/{sku}", self.get_product, name="get_product"),
            web.get("/_sandbox/products/upserts", self.upserts),
        ]

    async def upsert_products(self, request: web.Request) -> web.Response:
        wait = self._calls.retry_after(request.headers.get(API_KEY_HEADER, ""))
        if wait is not None:
            response = problem(429, "Too many requests", "product uploads are metered")
            response.headers["Retry-After"] = str(wait)
            return response
        try:
            items = await _product_list(request)
        except BadBody as error:
            return problem(422, "Invalid products", str(error))
        most = self.limits.products_per_call
        if len(items) > most:
            return problem(
                413, "Too many products", f"{len(items)} products sent; send at most {most} a call"
            )
        results = self.catalogue.upsert(items)
        counts = Counter(result.status for result in results)
        return json_response(
            {
                "created": counts["created"],
                "updated": counts["updated"],
                "unchanged": counts["unchanged"],
                "rejected": counts["rejected"],
                "results": results,
            }
        )

    async def list_products(self, request: web.Request) -> web.Response:
        raw_limit = request.query.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= _LIST_LIMIT_MAX:
            return problem(
                400, "Invalid query", f"limit {raw_limit!r} is not 1 to {_LIST_LIMIT_MAX}"
            )
        products, following = self.catalogue.page(request.query.get("after"), int(raw_limit))
        return json_response({"products": products, "next_after": following})

    async def get_product(self, request: web.Request) -> web.Response:
        sku = request.match_info["sku"]
        product = self.catalogue.products.get(sku)
        if product is None:
            return problem(404, "Not found", f"no product with SKU {sku!r}")
        return json_response(product)

    async def upserts(self, request: web.Request) -> web.Response:
        """How often each SKU was sent and written: duplicates show as counts above 1."""
        return json_response(
            {
                "products": len(self.catalogue.products),
                "received": dict(self.catalogue.received),
                "writes": dict(self.catalogue.writes),
            }
        )


async def _product_list(request: web.Request) -> list[Any]:
    """The body's ``products``, each still raw: products are judged one by one."""
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw) if raw.strip() else None
    except msgspec.DecodeError as error:
        raise BadBody(f"the request body is not valid JSON: {error}") from error
    products = body.get("products") if isinstance(body, dict) else None
    if not isinstance(products, list) or not products:
        raise BadBody('send {"products": [...]} with at least one product')
    return products
