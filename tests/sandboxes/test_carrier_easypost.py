"""Carrier A (EasyPost style): rating, buying, voiding, tracking, signatures, limits."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest

from tests.sandboxes.inbox import Inbox
from tests.sandboxes.signatures import easypost_signature_valid, tampered
from waybill_sandboxes.carriers import CarrierConfig, EasyPostSandbox
from waybill_sandboxes.delivery import DeliveryMode, DeliveryPolicy
from waybill_sandboxes.server import RunningSandbox, serve

KEY = "EZTK-test"
SECRET = "easypost-webhook-secret"


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:".encode()).decode()}


AUTH = basic(KEY)

StartCarrier = Callable[..., Awaitable[tuple[EasyPostSandbox, str]]]


@pytest.fixture
async def start_carrier(inbox: tuple[Inbox, RunningSandbox]) -> AsyncIterator[StartCarrier]:
    async with AsyncExitStack() as stack:

        async def start(**config: Any) -> tuple[EasyPostSandbox, str]:
            settings: dict[str, Any] = {
                "api_key": KEY,
                "webhook_secret": SECRET,
                "webhook_url": inbox[1].url + "/easypost",
                "tracking_delays_s": [0.0],
                "seed": 5,
            }
            settings.update(config)
            sandbox = EasyPostSandbox(CarrierConfig(**settings))
            running = await stack.enter_async_context(serve(sandbox.app()))
            return sandbox, running.url

        yield start


def shipment(reference: str | None = "WB-SHP-1", **options: Any) -> dict[str, Any]:
    address = {"street1": "1 Main St", "city": "Springfield", "zip": "01101", "country": "US"}
    body: dict[str, Any] = {
        "to_address": {"name": "Dr. Customer", **address},
        "from_address": {"company": "Warehouse", **address},
        "parcel": {"length": 10, "width": 8, "height": 4, "weight": 35.3},
        "options": options,
    }
    if reference is not None:
        body["reference"] = reference
    return {"shipment": body}


async def create_and_buy(
    http: aiohttp.ClientSession, url: str, reference: str | None = "WB-SHP-1", **options: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        f"{url}/v2/shipments", json=shipment(reference, **options), headers=AUTH
    ) as r:
        assert r.status == 201
        created = await r.json()
    cheapest = min(created["rates"], key=lambda rate: float(rate["rate"]))
    async with http.post(
        f"{url}/v2/shipments/{created['id']}/buy",
        json={"rate": {"id": cheapest["id"]}},
        headers=AUTH,
    ) as resp:
        return resp.status, await resp.json()


async def test_shipment_is_rated_then_bought_with_a_label_and_tracking_code(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    async with http.post(f"{url}/v2/shipments", json=shipment(), headers=AUTH) as resp:
        created = await resp.json()
    assert created["reference"] == "WB-SHP-1"
    assert [rate["service"] for rate in created["rates"]] == [
        "GroundAdvantage",
        "Priority",
        "NextDayAir",
    ]
    assert all(float(rate["rate"]) > 0 for rate in created["rates"])
    assert created["postage_label"] is None

    status, bought = await create_and_buy(http, url)
    assert status == 200
    assert bought["tracking_code"].startswith("EZ")
    assert bought["selected_rate"]["service"] == "GroundAdvantage"
    assert bought["tracker"]["status"] == "pre_transit"
    async with http.get(bought["postage_label"]["label_url"]) as resp:
        assert resp.content_type == "application/pdf"
        label = await resp.read()
    assert label.startswith(b"%PDF")
    assert bought["tracking_code"].encode() in label
    assert sandbox.purchases_per_reference() == {"WB-SHP-1": 1}


async def test_zpl_labels_are_served_when_asked_for(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    _, url = await start_carrier()
    _, bought = await create_and_buy(http, url, label_format="ZPL")
    async with http.get(bought["postage_label"]["label_url"]) as resp:
        assert (await resp.read()).startswith(b"^XA")


async def test_tracking_webhooks_walk_to_delivered_with_valid_signatures(
    start_carrier: StartCarrier, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_carrier()
    _, bought = await create_and_buy(http, url)
    await sandbox.settle()
    received = inbox[0].received
    events = [item.json() for item in received]
    assert [e["result"]["status"] for e in events] == [
        "pre_transit",
        "in_transit",
        "out_for_delivery",
        "delivered",
    ]
    assert [e["description"] for e in events] == ["tracker.created"] + ["tracker.updated"] * 3
    assert {e["result"]["tracking_code"] for e in events} == {bought["tracking_code"]}
    for item in received:
        assert easypost_signature_valid(SECRET, item.headers, item.body)
        assert not easypost_signature_valid(SECRET, item.headers, tampered(item.body))
        assert not easypost_signature_valid("other-secret", item.headers, item.body)


async def test_forced_exception_ends_tracking_in_failure(
    start_carrier: StartCarrier, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_carrier()
    sandbox.force_tracking_outcome("WB-SHP-9", "exception")
    await create_and_buy(http, url, reference="WB-SHP-9")
    await sandbox.settle()
    last = inbox[0].bodies()[-1]["result"]
    assert (last["status"], last["status_detail"]) == ("failure", "address_not_found")
    assert len(inbox[0].received) == 2


async def test_forced_return_over_admin_route_ends_in_return_to_sender(
    start_carrier: StartCarrier, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    # A long delay parks the label after label_created; forcing the outcome wakes it.
    sandbox, url = await start_carrier(tracking_delays_s=[60.0])
    _, bought = await create_and_buy(http, url)
    code = bought["tracking_code"]
    async with http.post(f"{url}/_sandbox/tracking/{code}/outcome", json={"outcome": "lost"}) as r:
        assert r.status == 400
        assert "exception, returned_to_sender" in (await r.json())["error"]
    async with http.post(
        f"{url}/_sandbox/tracking/{code}/outcome", json={"outcome": "returned_to_sender"}
    ) as resp:
        assert resp.status == 200
    await sandbox.settle()
    assert [b["result"]["status"] for b in inbox[0].bodies()] == [
        "pre_transit",
        "return_to_sender",
    ]
    async with http.get(f"{url}/v2/trackers", params={"tracking_code": code}, headers=AUTH) as resp:
        (tracker,) = (await resp.json())["trackers"]
    assert tracker["status"] == "return_to_sender"
    async with http.get(f"{url}/v2/trackers/{tracker['id']}", headers=AUTH) as resp:
        assert (await resp.json())["tracking_code"] == code


async def test_buying_the_same_shipment_twice_is_refused(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    _, bought = await create_and_buy(http, url)
    rate_id = bought["selected_rate"]["id"]
    async with http.post(
        f"{url}/v2/shipments/{bought['id']}/buy", json={"rate": {"id": rate_id}}, headers=AUTH
    ) as resp:
        assert resp.status == 422
        assert (await resp.json())["error"]["code"] == "SHIPMENT.POSTAGE.EXISTS"
    assert sandbox.purchases_per_reference() == {"WB-SHP-1": 1}


async def test_blind_retry_with_a_new_shipment_buys_twice_and_is_counted(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    await create_and_buy(http, url, reference="WB-SHP-2")
    await create_and_buy(http, url, reference="WB-SHP-2")
    assert sandbox.purchases_per_reference() == {"WB-SHP-2": 2}
    assert len(sandbox.purchases_for("WB-SHP-2")) == 2


async def test_purchase_is_found_again_by_reference(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    _, url = await start_carrier()
    _, bought = await create_and_buy(http, url, reference="WB-SHP-3")
    async with http.post(f"{url}/v2/shipments", json=shipment("WB-SHP-3"), headers=AUTH) as resp:
        assert resp.status == 201  # rated again but never bought
    params = {"reference": "WB-SHP-3", "purchased": "true"}
    async with http.get(f"{url}/v2/shipments", params=params, headers=AUTH) as resp:
        found = (await resp.json())["shipments"]
    assert [(s["id"], s["tracking_code"]) for s in found] == [
        (bought["id"], bought["tracking_code"])
    ]
    async with http.get(f"{url}/v2/shipments/{bought['id']}", headers=AUTH) as resp:
        assert (await resp.json())["tracking_code"] == bought["tracking_code"]


async def test_purchases_over_the_rate_limit_get_429_with_retry_after(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier(purchase_rate_per_s=0.001, purchase_burst=1)
    first, _ = await create_and_buy(http, url, reference="WB-1")
    async with http.post(f"{url}/v2/shipments", json=shipment("WB-2"), headers=AUTH) as resp:
        created = await resp.json()
    async with http.post(
        f"{url}/v2/shipments/{created['id']}/buy",
        json={"rate": {"id": created["rates"][0]["id"]}},
        headers=AUTH,
    ) as resp:
        assert (first, resp.status) == (200, 429)
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["error"]["code"] == "RATE_LIMITED"
    assert sandbox.purchases_per_reference() == {"WB-1": 1}


async def test_429_storm_fault_hits_label_purchases(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    sandbox.faults.set("buy_shipment", rate_limit=True, retry_after_s=4)
    status, _ = await create_and_buy(http, url)
    assert status == 429
    assert sandbox.purchases == []
    assert sandbox.calls() == {"create_shipment": 1, "buy_shipment": 1}


@pytest.mark.parametrize(
    "headers",
    [{}, basic("wrong"), {"Authorization": "Basic !!"}, {"Authorization": f"Bearer {KEY}"}],
)
async def test_calls_without_the_right_api_key_get_401(
    start_carrier: StartCarrier, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    _, url = await start_carrier()
    async with http.post(f"{url}/v2/shipments", json=shipment(), headers=headers) as resp:
        assert resp.status == 401
        assert "error" in await resp.json()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"to_address": {}}, "shipment"),
        ({"shipment": {**shipment()["shipment"], "parcel": {"weight": 0}}}, "weight"),
        ({"shipment": {**shipment()["shipment"], "options": {"label_format": "GIF"}}}, "label"),
    ],
)
async def test_invalid_shipments_are_refused_with_422(
    start_carrier: StartCarrier, http: aiohttp.ClientSession, body: dict[str, Any], fragment: str
) -> None:
    _, url = await start_carrier()
    async with http.post(f"{url}/v2/shipments", json=body, headers=AUTH) as resp:
        assert resp.status == 422
        error = (await resp.json())["error"]
    assert error["code"] == "PARAMETER.INVALID"
    assert fragment in error["message"]


async def test_unknown_shipment_rate_and_tracker_are_reported(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    _, url = await start_carrier()
    async with http.post(f"{url}/v2/shipments/shp_nope/buy", json={}, headers=AUTH) as resp:
        assert resp.status == 404
    async with http.post(f"{url}/v2/shipments", json=shipment(), headers=AUTH) as resp:
        created = await resp.json()
    async with http.post(
        f"{url}/v2/shipments/{created['id']}/buy", json={"rate": {"id": "rate_x"}}, headers=AUTH
    ) as resp:
        assert (await resp.json())["error"]["code"] == "SHIPMENT.RATE.INVALID"
    async with http.post(f"{url}/v2/shipments/{created['id']}/refund", headers=AUTH) as resp:
        assert resp.status == 422
    async with http.get(f"{url}/v2/trackers/trk_nope", headers=AUTH) as resp:
        assert resp.status == 404
    async with http.get(f"{url}/labels/lbl_nope") as resp:
        assert resp.status == 404


async def test_unscanned_label_is_voided_and_tracking_says_cancelled(
    start_carrier: StartCarrier, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_carrier(tracking_delays_s=[30.0])
    _, bought = await create_and_buy(http, url)
    async with http.post(f"{url}/v2/shipments/{bought['id']}/refund", headers=AUTH) as resp:
        refunded = await resp.json()
    assert refunded["refund_status"] == "submitted"
    await sandbox.settle()
    assert [b["result"]["status"] for b in inbox[0].bodies()] == [
        "pre_transit",
        "cancelled",
    ]
    assert sandbox.purchases[0].voided


async def test_a_label_already_in_transit_cannot_be_voided(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    _, bought = await create_and_buy(http, url)
    await sandbox.settle()
    async with http.post(f"{url}/v2/shipments/{bought['id']}/refund", headers=AUTH) as resp:
        assert resp.status == 422
        assert "already scanned" in (await resp.json())["error"]["message"]
    assert not sandbox.purchases[0].voided


async def test_tracking_webhooks_can_arrive_twice_and_out_of_order(
    start_carrier: StartCarrier, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_carrier(
        delivery=DeliveryPolicy(mode=DeliveryMode.REORDER, reorder_window_s=0.5)
    )
    await create_and_buy(http, url)
    await sandbox.settle()
    statuses = [b["result"]["status"] for b in inbox[0].bodies()]
    assert statuses[0] == "delivered"
    assert sorted(statuses) == sorted(
        ["pre_transit", "in_transit", "out_for_delivery", "delivered"]
    )

    sandbox.webhooks.configure(policy=DeliveryPolicy(mode=DeliveryMode.DUPLICATE))
    inbox[0].received.clear()
    await create_and_buy(http, url, reference="WB-SHP-DUP")
    await sandbox.settle()
    ids = [b["id"] for b in inbox[0].bodies()]
    assert len(ids) == 8
    assert all(ids.count(event_id) == 2 for event_id in ids)
