"""The WMS sandbox's product catalogue: a result per product, pages, metered calls, counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from waybill_sandboxes.server import serve
from waybill_sandboxes.wms import WmsConfig, WmsSandbox
from waybill_sandboxes.wms.catalogue import CatalogueLimits, gtin_is_valid

API_KEY = "test-wms-key"
HEADERS = {"X-Api-Key": API_KEY}
BOLT = {"sku": "BOLT-M8", "description": "Bolt", "weight_kg": 0.02, "barcode": "4006381333931"}


@pytest.fixture
async def catalogue() -> AsyncIterator[tuple[WmsSandbox, str]]:
    sandbox = WmsSandbox(
        WmsConfig(api_key=API_KEY, catalogue=CatalogueLimits(products_per_call=3, calls_per_s=0))
    )
    async with serve(sandbox.app()) as running:
        yield sandbox, running.url


async def upsert(
    http: aiohttp.ClientSession, url: str, products: Any, headers: dict[str, str] = HEADERS
) -> tuple[int, dict[str, Any]]:
    body = {"products": products} if isinstance(products, list) else products
    async with http.post(f"{url}/api/v1/products", json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_each_product_gets_its_own_result_and_a_bad_one_does_not_refuse_the_others(
    catalogue: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = catalogue
    status, answer = await upsert(
        http,
        url,
        [BOLT, {"sku": "NUT-M8", "weight_kg": 0.01, "uom": "PALLETLOAD"}, {"weight_kg": 1}],
    )
    assert status == 200
    assert (answer["created"], answer["rejected"]) == (1, 2)
    results = {r["sku"]: r for r in answer["results"]}
    assert results["BOLT-M8"] == {"sku": "BOLT-M8", "status": "created"}
    assert "unit of measure 'PALLETLOAD' is unknown" in results["NUT-M8"]["reason"]
    assert "sku" in results["#2"]["reason"]  # no SKU at all: named by its position
    assert set(sandbox.warehouse.products) == {"BOLT-M8"}


async def test_the_same_product_again_is_unchanged_a_changed_one_updated(
    catalogue: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = catalogue
    await upsert(http, url, [BOLT])
    _, again = await upsert(http, url, [BOLT])
    _, changed = await upsert(http, url, [{**BOLT, "weight_kg": 0.03}])
    assert again["results"] == [{"sku": "BOLT-M8", "status": "unchanged"}]
    assert changed["results"] == [{"sku": "BOLT-M8", "status": "updated"}]
    async with http.get(f"{url}/_sandbox/products/upserts") as resp:
        counts = await resp.json()
    # Three uploads of one SKU: the catalogue took it in its stride, the counts show it.
    assert counts == {"products": 1, "received": {"BOLT-M8": 3}, "writes": {"BOLT-M8": 2}}
    assert sandbox.catalogue.received == {"BOLT-M8": 3}


@pytest.mark.parametrize(
    ("product", "reason"),
    [
        ({"sku": "bad sku", "weight_kg": 1}, "is not 1-64 letters"),
        ({"sku": "A1", "weight_kg": 1, "barcode": "4006381333932"}, "valid check digit"),
        ({"sku": "A1", "weight_kg": 0}, "needs a weight above 0 kg"),
        ({"sku": "A1", "weight_kg": -1}, "Expected `float` >= 0"),
    ],
)
async def test_products_the_warehouse_cannot_handle_are_refused_with_the_reason(
    catalogue: tuple[WmsSandbox, str], http: aiohttp.ClientSession, product: Any, reason: str
) -> None:
    _, url = catalogue
    _, answer = await upsert(http, url, [product])
    assert answer["results"][0]["status"] == "rejected"
    assert reason in answer["results"][0]["reason"]


async def test_an_archived_product_needs_no_weight_and_a_sku_twice_in_a_call_is_refused(
    catalogue: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    _, url = catalogue
    _, answer = await upsert(
        http, url, [{"sku": "OLD", "weight_kg": 0, "active": False}, BOLT, BOLT]
    )
    assert [r["status"] for r in answer["results"]] == ["created", "created", "rejected"]
    assert "more than once" in answer["results"][2]["reason"]


async def test_whole_calls_are_refused_for_shape_size_and_key(
    catalogue: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    _, url = catalogue
    status, problem = await upsert(http, url, {"items": [BOLT]})
    assert (status, problem["title"]) == (422, "Invalid products")
    status, problem = await upsert(http, url, [BOLT, BOLT, BOLT, BOLT])
    assert status == 413 and "at most 3" in problem["detail"]
    status, _ = await upsert(http, url, [BOLT], headers={"X-Api-Key": "wrong"})
    assert status == 401


async def test_the_catalogue_is_listed_in_sku_order_page_by_page(
    catalogue: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    _, url = catalogue
    await upsert(http, url, [{"sku": sku, "weight_kg": 1} for sku in ("C", "A", "B")])
    await upsert(http, url, [{"sku": "D", "weight_kg": 1}])
    seen: list[str] = []
    after: str | None = None
    while True:
        params = {"limit": "3", **({"after": after} if after else {})}
        async with http.get(f"{url}/api/v1/products", params=params, headers=HEADERS) as resp:
            page = await resp.json()
        seen += [p["sku"] for p in page["products"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == ["A", "B", "C", "D"]
    async with http.get(f"{url}/api/v1/products", params={"limit": "0"}, headers=HEADERS) as resp:
        assert resp.status == 400
    async with http.get(f"{url}/api/v1/products/A", headers=HEADERS) as resp:
        assert (await resp.json())["sku"] == "A"
    async with http.get(f"{url}/api/v1/products/NOPE", headers=HEADERS) as resp:
        assert resp.status == 404


async def test_upload_calls_are_metered_per_key_with_retry_after(
    http: aiohttp.ClientSession,
) -> None:
    sandbox = WmsSandbox(WmsConfig(api_key=API_KEY, catalogue=CatalogueLimits(calls_per_s=1)))
    async with serve(sandbox.app()) as running:
        first, _ = await upsert(http, running.url, [BOLT])
        status, problem = await upsert(http, running.url, [BOLT])
    assert first == 200
    assert status == 429 and problem["status"] == 429


@pytest.mark.parametrize(
    ("barcode", "valid"),
    [
        ("4006381333931", True),
        ("96385074", True),
        ("036000291452", True),
        ("4006381333930", False),
        ("40063813339", False),
        ("ABCDEFGH", False),
    ],
)
def test_gtin_check_digits(barcode: str, valid: bool) -> None:
    assert gtin_is_valid(barcode) is valid
