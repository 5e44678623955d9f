"""Carrier B (Shippo style): rates, transactions, refunds, tracks, signatures, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest

from tests.sandboxes.inbox import Inbox
from tests.sandboxes.signatures import shippo_signature_valid, tampered
from waybill_sandboxes.carriers import CarrierConfig, ShippoSandbox
from waybill_sandboxes.server import RunningSandbox, serve

KEY = "shippo_test_key"
SECRET = "shippo-webhook-secret"
AUTH = {"Authorization": f"ShippoToken {KEY}"}

StartCarrier = Callable[..., Awaitable[tuple[ShippoSandbox, str]]]


@pytest.fixture
async def start_carrier(inbox: tuple[Inbox, RunningSandbox]) -> AsyncIterator[StartCarrier]:
    async with AsyncExitStack() as stack:

        async def start(**config: Any) -> tuple[ShippoSandbox, str]:
            settings: dict[str, Any] = {
                "api_key": KEY,
                "webhook_secret": SECRET,
                "webhook_url": inbox[1].url + "/shippo",
                "tracking_delays_s": [0.0],
                "seed": 9,
            }
            settings.update(config)
            sandbox = ShippoSandbox(CarrierConfig(**settings))
            running = await stack.enter_async_context(serve(sandbox.app()))
            return sandbox, running.url

        yield start


def shipment(**parcel: Any) -> dict[str, Any]:
    address = {"street1": "Keizersgracht 1", "city": "Amsterdam", "zip": "1015CC", "country": "NL"}
    box = {
        "length": "30",
        "width": "20",
        "height": "10",
        "distance_unit": "cm",
        "weight": "2.5",
        "mass_unit": "kg",
    }
    box.update(parcel)
    return {
        "address_from": {"name": "Warehouse", **address},
        "address_to": {"name": "Customer", **address},
        "parcels": [box],
        "async": False,
    }


async def rates(http: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    async with http.post(f"{url}/shipments/", json=shipment(), headers=AUTH) as resp:
        assert resp.status == 201
        found: list[dict[str, Any]] = (await resp.json())["rates"]
        return found


async def buy(
    http: aiohttp.ClientSession, url: str, metadata: str = "WB-SHP-1", label: str = "PDF"
) -> tuple[int, dict[str, Any]]:
    rate = (await rates(http, url))[0]["object_id"]
    body = {"rate": rate, "label_file_type": label, "metadata": metadata, "async": False}
    async with http.post(f"{url}/transactions/", json=body, headers=AUTH) as resp:
        return resp.status, await resp.json()


async def test_shipment_rates_carry_object_ids_and_attributes(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    _, url = await start_carrier()
    offered = await rates(http, url)
    assert [r["servicelevel"]["token"] for r in offered] == [
        "usps_ground_advantage",
        "usps_priority",
        "dhl_express_worldwide",
    ]
    assert "CHEAPEST" in offered[0]["attributes"]
    assert "FASTEST" in offered[2]["attributes"]
    assert len({r["object_id"] for r in offered}) == 3


async def test_transaction_buys_a_label_with_tracking_number_and_metadata(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    status, transaction = await buy(http, url, label="ZPLII")
    assert status == 201
    assert (transaction["status"], transaction["object_state"]) == ("SUCCESS", "VALID")
    assert transaction["metadata"] == "WB-SHP-1"
    assert transaction["tracking_number"]
    async with http.get(transaction["label_url"]) as resp:
        label = await resp.read()
    assert label.startswith(b"^XA")
    assert transaction["tracking_number"].encode() in label
    assert sandbox.purchases_per_reference() == {"WB-SHP-1": 1}


async def test_tracking_webhooks_use_shippo_statuses_and_valid_signatures(
    start_carrier: StartCarrier, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_carrier()
    _, transaction = await buy(http, url)
    await sandbox.settle()
    events = inbox[0].bodies()
    assert {e["event"] for e in events} == {"track_updated"}
    assert [
        (e["data"]["tracking_status"]["status"], e["data"]["tracking_status"]["substatus"]["code"])
        for e in events
    ] == [
        ("PRE_TRANSIT", "information_received"),
        ("TRANSIT", "package_arrived"),
        ("TRANSIT", "out_for_delivery"),
        ("DELIVERED", "delivered"),
    ]
    assert {e["data"]["tracking_number"] for e in events} == {transaction["tracking_number"]}
    assert {e["data"]["metadata"] for e in events} == {"WB-SHP-1"}
    for item in inbox[0].received:
        assert shippo_signature_valid(SECRET, item.headers, item.body)
        assert not shippo_signature_valid(SECRET, item.headers, tampered(item.body))
        assert not shippo_signature_valid("other-secret", item.headers, item.body)


@pytest.mark.parametrize(
    ("outcome", "status", "substatus"),
    [
        ("exception", "FAILURE", "package_undeliverable"),
        ("returned_to_sender", "RETURNED", "return_to_sender"),
    ],
)
async def test_forced_outcome_ends_tracking_in_the_carriers_words(
    start_carrier: StartCarrier,
    http: aiohttp.ClientSession,
    inbox: tuple[Inbox, RunningSandbox],
    outcome: str,
    status: str,
    substatus: str,
) -> None:
    sandbox, url = await start_carrier()
    sandbox.force_tracking_outcome("WB-SHP-7", outcome)
    _, transaction = await buy(http, url, metadata="WB-SHP-7")
    await sandbox.settle()
    carrier = "usps"
    async with http.get(
        f"{url}/tracks/{carrier}/{transaction['tracking_number']}", headers=AUTH
    ) as resp:
        track = await resp.json()
    assert track["tracking_status"]["status"] == status
    assert track["tracking_status"]["substatus"]["code"] == substatus
    assert track["tracking_status"]["substatus"]["action_required"] is True
    assert [h["status"] for h in track["tracking_history"]] == ["PRE_TRANSIT", status]


async def test_unknown_tracking_number_is_unknown_not_an_error(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    _, url = await start_carrier()
    async with http.get(f"{url}/tracks/usps/9400000000000", headers=AUTH) as resp:
        assert resp.status == 200
        track = await resp.json()
    assert (track["tracking_status"]["status"], track["tracking_history"]) == ("UNKNOWN", [])


async def test_blind_retry_buys_twice_and_both_are_found_by_metadata(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    _, first = await buy(http, url, metadata="WB-SHP-2")
    _, second = await buy(http, url, metadata="WB-SHP-2")
    await buy(http, url, metadata="WB-SHP-3")
    assert sandbox.purchases_per_reference() == {"WB-SHP-2": 2, "WB-SHP-3": 1}
    async with http.get(
        f"{url}/transactions/", params={"metadata": "WB-SHP-2"}, headers=AUTH
    ) as resp:
        listed = await resp.json()
    assert listed["count"] == 2
    assert [t["object_id"] for t in listed["results"]] == [second["object_id"], first["object_id"]]
    async with http.get(f"{url}/transactions/{first['object_id']}", headers=AUTH) as resp:
        assert (await resp.json())["tracking_number"] == first["tracking_number"]
    async with http.get(f"{url}/_sandbox/purchases") as resp:
        assert (await resp.json())["per_reference"] == {"WB-SHP-2": 2, "WB-SHP-3": 1}


async def test_purchases_over_the_rate_limit_get_429_with_retry_after(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier(purchase_rate_per_s=0.001, purchase_burst=2)
    statuses = []
    for n in range(3):
        status, body = await buy(http, url, metadata=f"WB-{n}")
        statuses.append(status)
    assert statuses == [201, 201, 429]
    assert "throttled" in body["detail"]
    assert sandbox.purchases_per_reference() == {"WB-0": 1, "WB-1": 1}
    rate = (await rates(http, url))[0]["object_id"]
    async with http.post(f"{url}/transactions/", json={"rate": rate}, headers=AUTH) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": f"Bearer {KEY}"}, {"Authorization": "ShippoToken nope"}]
)
async def test_calls_without_the_right_token_get_401(
    start_carrier: StartCarrier, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    _, url = await start_carrier()
    async with http.post(f"{url}/shipments/", json=shipment(), headers=headers) as resp:
        assert resp.status == 401
        assert "detail" in await resp.json()


@pytest.mark.parametrize(
    ("parcel", "fragment"),
    [({"mass_unit": "stone"}, "mass_unit"), ({"weight": "heavy"}, "weight")],
)
async def test_invalid_parcels_are_refused_with_400(
    start_carrier: StartCarrier, http: aiohttp.ClientSession, parcel: dict[str, Any], fragment: str
) -> None:
    _, url = await start_carrier()
    async with http.post(f"{url}/shipments/", json=shipment(**parcel), headers=AUTH) as resp:
        assert resp.status == 400
        assert fragment in (await resp.json())["detail"]


async def test_numeric_measures_are_accepted_like_strings(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    _, url = await start_carrier()
    body = shipment(weight=2.5, length=30)
    async with http.post(f"{url}/shipments/", json=body, headers=AUTH) as resp:
        assert resp.status == 201
        by_numbers = (await resp.json())["rates"]
    assert [r["amount"] for r in by_numbers] == [r["amount"] for r in await rates(http, url)]


async def test_bad_transactions_and_refunds_are_refused(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    for body, fragment in (
        ({"rate": "nope"}, "does not exist"),
        ({"rate": "x", "label_file_type": "GIF"}, "label_file_type"),
        ({}, "rate"),
    ):
        async with http.post(f"{url}/transactions/", json=body, headers=AUTH) as resp:
            assert resp.status == 400
            assert fragment in (await resp.json())["detail"]
    async with http.post(f"{url}/refunds/", json={"transaction": "nope"}, headers=AUTH) as resp:
        assert resp.status == 400
    async with http.get(f"{url}/transactions/nope", headers=AUTH) as resp:
        assert resp.status == 404
    async with http.get(f"{url}/shipments/nope", headers=AUTH) as resp:
        assert resp.status == 404
    assert sandbox.purchases == []


async def test_refund_voids_an_unscanned_label_once(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier(tracking_delays_s=[60.0])
    _, transaction = await buy(http, url)
    refunds = []
    for _ in range(2):
        async with http.post(
            f"{url}/refunds/", json={"transaction": transaction["object_id"]}, headers=AUTH
        ) as resp:
            assert resp.status == 201
            refunds.append(await resp.json())
    assert refunds[0]["status"] == "SUCCESS"
    assert refunds[0]["object_id"] == refunds[1]["object_id"]
    assert sandbox.purchases[0].voided
    await sandbox.settle()


async def test_refund_after_the_first_scan_is_refused(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    _, transaction = await buy(http, url)
    await sandbox.settle()
    async with http.post(
        f"{url}/refunds/", json={"transaction": transaction["object_id"]}, headers=AUTH
    ) as resp:
        assert resp.status == 400
        assert "already scanned" in (await resp.json())["detail"]
