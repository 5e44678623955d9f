"""Every fault mode, injected from Python and over the admin routes, seen by an HTTP client."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest

from waybill_sandboxes.faults import FaultPlan, FaultPlanError, Faults
from waybill_sandboxes.server import serve
from waybill_sandboxes.wms import WmsConfig, WmsSandbox

HEADERS = {"X-Api-Key": "k"}
INVENTORY = "/api/v1/inventory/BOLT"


@pytest.fixture
async def wms() -> AsyncIterator[tuple[WmsSandbox, str]]:
    sandbox = WmsSandbox(WmsConfig(api_key="k", seed=11))
    async with serve(sandbox.app()) as running:
        yield sandbox, running.url


async def get_status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url + INVENTORY, headers=HEADERS) as resp:
        await resp.read()
        return resp.status


async def upsert_product(http: aiohttp.ClientSession, url: str) -> int:
    batch = {"products": [{"sku": "BOLT"}]}
    async with http.post(f"{url}/api/v1/products", json=batch, headers=HEADERS) as resp:
        await resp.read()
        return resp.status


async def test_latency_delays_the_answer_but_it_still_arrives(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    sandbox.faults.set("get_inventory", latency_s=0.2)
    started = time.monotonic()
    assert await get_status(http, url) == 200
    # A lower bound only: a slow machine can make it longer, never shorter.
    assert time.monotonic() - started >= 0.19


async def test_error_rate_one_answers_503_every_time(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    sandbox.faults.set("get_inventory", error_rate=1.0)
    assert [await get_status(http, url) for _ in range(3)] == [503, 503, 503]
    assert sandbox.calls()["get_inventory"] == 3


async def test_partial_error_rate_mixes_failures_and_successes(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    sandbox.faults.set("get_inventory", error_rate=0.5)
    statuses = Counter([await get_status(http, url) for _ in range(40)])
    assert set(statuses) == {200, 503}


async def test_timeout_hangs_until_the_client_gives_up(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    sandbox.faults.set("get_inventory", timeout=True)
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(
            url + INVENTORY, headers=HEADERS, timeout=aiohttp.ClientTimeout(total=0.3)
        ):
            pass
    assert sandbox.calls()["get_inventory"] == 1
    sandbox.faults.clear("get_inventory")
    assert await get_status(http, url) == 200


async def test_outage_drops_the_connection_without_an_answer(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    sandbox.faults.set(outage=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await upsert_product(http, url)
    # A POST is not retried by the client, so the sandbox saw exactly one call.
    assert sandbox.calls() == {"upsert_products": 1}
    assert sandbox.warehouse.products == {}


async def test_rate_limit_storm_answers_429_with_retry_after(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    sandbox.faults.set("get_inventory", rate_limit=True, retry_after_s=7)
    for _ in range(3):
        async with http.get(url + INVENTORY, headers=HEADERS) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "7"


async def test_malformed_answer_is_200_with_a_body_that_does_not_parse(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    sandbox.faults.set("get_inventory", malformed=True)
    async with http.get(url + INVENTORY, headers=HEADERS) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        body = await resp.read()
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(body)


async def test_a_plan_limited_in_times_runs_out(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    sandbox.faults.set("get_inventory", error_rate=1.0, times=2)
    assert [await get_status(http, url) for _ in range(3)] == [503, 503, 200]
    assert sandbox.faults.plans() == {}


async def test_a_plan_can_let_the_first_calls_through_to_fail_one_mid_run(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    sandbox.faults.set("get_inventory", error_rate=1.0, times=1, after_calls=2)
    assert [await get_status(http, url) for _ in range(4)] == [200, 200, 503, 200]
    assert sandbox.faults.plans() == {}


async def test_an_operation_plan_wins_over_the_catch_all(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    sandbox.faults.set("*", error_rate=1.0)
    sandbox.faults.set("get_inventory", FaultPlan(rate_limit=True))
    assert await get_status(http, url) == 429
    async with http.get(f"{url}/api/v1/products/BOLT", headers=HEADERS) as resp:
        assert resp.status == 503


async def test_faults_are_driven_and_counters_read_back_over_http(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    _, url = wms
    async with http.put(f"{url}/_sandbox/faults/get_inventory", json={"error_rate": 1}) as resp:
        assert resp.status == 200
    assert await get_status(http, url) == 503
    async with http.get(f"{url}/_sandbox/faults") as resp:
        assert (await resp.json())["get_inventory"]["error_rate"] == 1
    async with http.delete(f"{url}/_sandbox/faults/get_inventory") as resp:
        assert (await resp.json()) == {"faults": {}}
    assert await get_status(http, url) == 200
    async with http.get(f"{url}/_sandbox/calls") as resp:
        assert await resp.json() == {"get_inventory": 2}
    async with http.post(f"{url}/_sandbox/reset") as resp:
        assert resp.status == 200
    async with http.get(f"{url}/_sandbox/calls") as resp:
        assert await resp.json() == {}


async def test_admin_routes_stay_reachable_during_an_outage(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    async with http.put(f"{url}/_sandbox/faults/*", json={"outage": True}) as resp:
        assert resp.status == 200
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await upsert_product(http, url)
    async with http.delete(f"{url}/_sandbox/faults") as resp:
        assert resp.status == 200
    assert await upsert_product(http, url) == 200
    assert sandbox.calls() == {"upsert_products": 2}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"error_rate": 2}', "error_rate"),
        (b'{"latency": 1}', "latency"),
        (b'{"timeout": "yes"}', "timeout"),
        (b"[1]", "JSON object"),
        (b"{oops", "not JSON"),
    ],
)
async def test_bad_fault_plans_over_http_are_refused_clearly(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession, body: bytes, fragment: str
) -> None:
    sandbox, url = wms
    async with http.put(f"{url}/_sandbox/faults/get_inventory", data=body) as resp:
        assert resp.status == 400
        assert fragment in (await resp.json())["error"]
    assert sandbox.faults.plans() == {}


@pytest.mark.parametrize(
    "fields",
    [
        {"error_rate": -0.1},
        {"latency_s": -1},
        {"retry_after_s": -1},
        {"times": 0},
        {"after_calls": -1},
        {"nope": 1},
    ],
)
def test_bad_fault_plans_in_python_raise_fault_plan_error(fields: dict[str, Any]) -> None:
    faults = Faults()
    with pytest.raises(FaultPlanError, match="invalid fault plan"):
        faults.set("op", **fields)
    with pytest.raises(FaultPlanError, match="operation name is empty"):
        faults.set("", latency_s=1)
    assert faults.plans() == {}


async def test_unmatched_paths_are_not_counted(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    sandbox.faults.set(outage=True)
    async with http.get(f"{url}/nowhere") as resp:
        assert resp.status == 404
    assert sandbox.calls() == {}
