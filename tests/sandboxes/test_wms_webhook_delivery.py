"""Lossy, duplicated, reordered and failing WMS webhook delivery, seen from the receiver."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from tests.sandboxes.inbox import Inbox
from waybill_sandboxes.delivery import DeliveryMode, DeliveryPolicy
from waybill_sandboxes.server import RunningSandbox, serve
from waybill_sandboxes.wms import WmsConfig, WmsSandbox

HEADERS = {"X-Api-Key": "k"}
LIFECYCLE = ["order.accepted", "order.picked", "order.packed", "order.shipped"]


def order(ref: str) -> dict[str, Any]:
    return {
        "client_order_ref": ref,
        "ship_to": {
            "name": "B. Baker",
            "street1": "1 Quay",
            "city": "Hull",
            "postal_code": "HU1 1AA",
            "country": "GB",
        },
        "lines": [{"sku": "CRATE", "qty": 2}],
    }


@pytest.fixture
async def wms(inbox: tuple[Inbox, RunningSandbox]) -> AsyncIterator[tuple[WmsSandbox, str]]:
    sandbox = WmsSandbox(
        WmsConfig(
            api_key="k",
            webhook_url=inbox[1].url + "/hooks/wms",
            stage_delays_s={"accepted": 0, "picked": 0, "packed": 0, "shipped": 0},
            seed=3,
        )
    )
    async with serve(sandbox.app()) as running:
        yield sandbox, running.url


async def place_orders(http: aiohttp.ClientSession, url: str, count: int) -> None:
    for n in range(count):
        async with http.post(
            f"{url}/api/v1/outbound-orders", json=order(f"SO-{n}"), headers=HEADERS
        ) as resp:
            assert resp.status == 201


async def test_lossy_delivery_drops_events_but_polling_still_shows_the_truth(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = wms
    sandbox.webhooks.configure(policy=DeliveryPolicy(mode=DeliveryMode.LOSSY, drop_rate=0.5))
    await place_orders(http, url, 5)
    await sandbox.settle()

    outcomes = Counter(record.outcome for record in sandbox.sent_webhooks())
    assert outcomes["dropped"] > 0
    assert outcomes["delivered"] > 0
    assert outcomes["dropped"] + outcomes["delivered"] == 20
    received_ids = {body["event_id"] for body in inbox[0].bodies()}
    delivered_ids = {r.event_id for r in sandbox.sent_webhooks() if r.outcome == "delivered"}
    assert received_ids == delivered_ids

    async with http.get(f"{url}/api/v1/outbound-orders", headers=HEADERS) as resp:
        statuses = {o["client_order_ref"]: o["status"] for o in (await resp.json())["orders"]}
    assert statuses == {f"SO-{n}": "shipped" for n in range(5)}


async def test_fully_lossy_delivery_sends_nothing(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = wms
    async with http.put(
        f"{url}/_sandbox/webhook", json={"policy": {"mode": "lossy", "drop_rate": 1.0}}
    ) as resp:
        assert resp.status == 200
    await place_orders(http, url, 1)
    await sandbox.settle()
    assert inbox[0].received == []
    assert [r.outcome for r in sandbox.sent_webhooks()] == ["dropped"] * 4


async def test_duplicate_delivery_sends_every_event_twice_with_the_same_id(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = wms
    sandbox.webhooks.configure(policy=DeliveryPolicy(mode=DeliveryMode.DUPLICATE))
    await place_orders(http, url, 1)
    await sandbox.settle()
    bodies = inbox[0].bodies()
    assert Counter(b["event_id"] for b in bodies) == {
        r.event_id: 2 for r in sandbox.sent_webhooks()
    }
    assert [b["event_type"] for b in bodies] == [t for t in LIFECYCLE for _ in range(2)]
    assert all(r.deliveries == 2 for r in sandbox.sent_webhooks())


async def test_reordered_delivery_sends_events_out_of_order(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = wms
    # A wide window gathers the whole lifecycle, however slow the machine.
    sandbox.webhooks.configure(
        policy=DeliveryPolicy(mode=DeliveryMode.REORDER, reorder_window_s=0.5)
    )
    await place_orders(http, url, 1)
    await sandbox.settle()
    received = [b["event_type"] for b in inbox[0].bodies()]
    assert sorted(received) == sorted(LIFECYCLE)
    assert received != LIFECYCLE
    # The event time still tells the true order, which is how a receiver sorts them out.
    by_time = sorted(inbox[0].bodies(), key=lambda b: datetime.fromisoformat(str(b["occurred_at"])))
    assert [b["event_type"] for b in by_time] == LIFECYCLE


async def test_failing_receiver_is_retried_then_the_event_is_given_up(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = wms
    inbox[0].status = 500
    sandbox.webhooks.configure(policy=DeliveryPolicy(max_attempts=3, retry_backoff_s=0.0))
    await place_orders(http, url, 1)
    await sandbox.settle()
    records = sandbox.sent_webhooks()
    assert [(r.outcome, r.attempts, r.last_status) for r in records] == [("failed", 3, 500)] * 4
    assert len(inbox[0].received) == 12


async def test_unreachable_receiver_is_recorded_as_failed(
    http: aiohttp.ClientSession,
) -> None:
    # Nothing listens on a port that a just-stopped server released.
    idle = serve(Inbox().app())
    dead_url = (await idle.start()).url
    await idle.stop()
    sandbox = WmsSandbox(WmsConfig(api_key="k", webhook_url=dead_url, stage_delays_s={}))
    sandbox.webhooks.configure(policy=DeliveryPolicy(retry_backoff_s=0.0, max_attempts=2))
    async with serve(sandbox.app()) as running:
        await place_orders(http, running.url, 1)
        await sandbox.settle()
    assert {r.outcome for r in sandbox.sent_webhooks()} == {"failed"}
    assert all("Error" in (r.last_error or "") for r in sandbox.sent_webhooks())


async def test_without_a_webhook_url_events_are_recorded_only(http: aiohttp.ClientSession) -> None:
    sandbox = WmsSandbox(WmsConfig(api_key="k", stage_delays_s={"accepted": 0}))
    async with serve(sandbox.app()) as running:
        await place_orders(http, running.url, 1)
        await sandbox.settle()
        async with http.get(f"{running.url}/_sandbox/webhooks") as resp:
            listed = (await resp.json())["webhooks"]
    assert [w["outcome"] for w in listed] == ["no_url"] * 4
    assert [w["event_type"] for w in listed] == LIFECYCLE


async def test_webhook_settings_with_bad_policy_are_refused(
    wms: tuple[WmsSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = wms
    async with http.put(f"{url}/_sandbox/webhook", json={"policy": {"mode": "sometimes"}}) as resp:
        assert resp.status == 400
        assert "mode" in (await resp.json())["error"]
    assert sandbox.webhooks.policy.mode is DeliveryMode.NORMAL
