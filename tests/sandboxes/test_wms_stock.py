"""The WMS sandbox's stock on hand: keyset pages per SKU and shelf, what picking takes off
the shelf, a quiet shelf count for tests, and clear refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest

from waybill_sandboxes.server import serve
from waybill_sandboxes.wms import WmsConfig, WmsSandbox
from waybill_sandboxes.wms.records import OrderStatus, OutboundOrderRequest

API_KEY = "test-wms-key"
HEADERS = {"X-Api-Key": API_KEY}


@pytest.fixture
async def wms() -> AsyncIterator[tuple[WmsSandbox, str]]:
    sandbox = WmsSandbox(WmsConfig(api_key=API_KEY))
    async with serve(sandbox.app()) as running:
        yield sandbox, running.url


async def stock(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, dict[str, Any]]:
    async with http.get(f"{url}/api/v1/stock-on-hand", params=params, headers=HEADERS) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_stock_is_listed_per_sku_and_shelf_in_keyset_pages(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    for sku, location, on_hand in [("B", "PICK-02", 4), ("A", "PICK-01", 5), ("B", "PICK-01", 0)]:
        async with http.put(
            f"{url}/_sandbox/inventory/{sku}/{location}", json={"on_hand": on_hand}
        ) as resp:
            assert resp.status == 200
    seen: list[tuple[str, str, float]] = []
    params = {"limit": "2"}
    pages = 0
    while True:
        status, answer = await stock(http, url, **params)
        assert status == 200
        pages += 1
        seen.extend((i["sku"], i["location"], i["on_hand"]) for i in answer["items"])
        if answer["next"] is None:
            break
        params = {"limit": "2", **answer["next"]}
    assert pages == 2
    assert seen == [("A", "PICK-01", 5), ("B", "PICK-01", 0), ("B", "PICK-02", 4)]
    assert not sandbox.sent_webhooks("inventory.adjusted"), "a quiet count sends no webhook"


async def test_picking_takes_stock_off_the_shelf_and_a_cancel_puts_it_back(
    wms: tuple[WmsSandbox, str],
) -> None:
    sandbox, _url = wms
    warehouse = sandbox.warehouse
    warehouse.set_shelf("MUG", "PICK-01", 10)
    request = msgspec.convert(
        {
            "client_order_ref": "WH/OUT/1",
            "ship_to": {"name": "A", "street1": "1 Road", "city": "X", "postal_code": "1",
                        "country": "NL"},
            "lines": [{"sku": "MUG", "qty": 3, "uom": "EA"}],
        },
        OutboundOrderRequest,
    )  # fmt: skip
    order, _ = warehouse.create_order(request)
    assert warehouse.shelves() == [("MUG", "PICK-01", 10)]  # accepted: nothing taken yet
    warehouse.advance(order.order_id, OrderStatus.PICKED)
    assert warehouse.shelves() == [("MUG", "PICK-01", 7)]
    warehouse.cancel(order.order_id)
    assert warehouse.shelves() == [("MUG", "PICK-01", 10)]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"limit": "0"}, "limit '0' is not 1 to 500"),
        ({"limit": "many"}, "limit 'many' is not 1 to 500"),
        ({"after_location": "PICK-01"}, "after_location needs after_sku"),
    ],
)
async def test_a_bad_query_is_a_problem_saying_what_is_wrong(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession, params: dict[str, str], says: str
) -> None:
    _sandbox, url = wms
    status, problem = await stock(http, url, **params)
    assert status == 400
    assert problem["detail"] == says


async def test_a_negative_shelf_count_is_refused(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    _sandbox, url = wms
    async with http.put(f"{url}/_sandbox/inventory/MUG/PICK-01", json={"on_hand": -1}) as resp:
        assert resp.status == 400
        assert "stock is not negative" in (await resp.json())["error"]
