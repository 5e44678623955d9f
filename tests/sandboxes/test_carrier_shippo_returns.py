"""Carrier B (Shippo style) return labels: ``extra.is_return``, drop-off, tracks, refunds."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.sandboxes import test_carrier_shippo as carrier_b
from tests.sandboxes.inbox import Inbox
from tests.sandboxes.signatures import shippo_signature_valid
from waybill_sandboxes.server import RunningSandbox

AUTH = carrier_b.AUTH
StartCarrier = carrier_b.StartCarrier
# The carrier fixture of Carrier B's own tests: one way to start the sandbox.
start_carrier = carrier_b.start_carrier


def return_shipment() -> dict[str, Any]:
    """The outbound shipment's addresses, unswapped, flagged in ``extra``: as Shippo wants it."""
    body = carrier_b.shipment()
    body["address_from"]["street1"] = "Warehouse Dock 1"
    body["address_to"]["street1"] = "Customer Lane 7"
    body["extra"] = {"is_return": True}
    return body


async def buy_return(
    http: aiohttp.ClientSession, url: str, metadata: str = "RMA-1"
) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """Create the return shipment and buy its cheapest rate: (shipment, status, transaction)."""
    async with http.post(f"{url}/shipments/", json=return_shipment(), headers=AUTH) as resp:
        assert resp.status == 201
        shipment = await resp.json()
    body = {"rate": shipment["rates"][0]["object_id"], "metadata": metadata, "async": False}
    async with http.post(f"{url}/transactions/", json=body, headers=AUTH) as resp:
        return shipment, resp.status, await resp.json()


async def track(http: aiohttp.ClientSession, url: str, transaction: dict[str, Any]) -> Any:
    async with http.get(transaction["tracking_url_provider"], headers=AUTH) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_return_shipment_swaps_the_addresses_and_buys_a_return_label(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    shipment, status, transaction = await buy_return(http, url)
    assert shipment["extra"] == {"is_return": True}
    assert shipment["address_from"]["street1"] == "Customer Lane 7"
    assert shipment["address_to"]["street1"] == "Warehouse Dock 1"
    assert status == 201
    assert (transaction["status"], transaction["metadata"]) == ("SUCCESS", "RMA-1")
    assert transaction["tracking_status"] == "PRE_TRANSIT"
    (purchase,) = sandbox.purchases_for("RMA-1")
    assert purchase.is_return
    async with http.get(f"{url}/transactions/", params={"metadata": "RMA-1"}, headers=AUTH) as r:
        assert [t["object_id"] for t in (await r.json())["results"]] == [transaction["object_id"]]


async def test_outbound_transactions_are_not_return_labels(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    async with http.post(f"{url}/shipments/", json=carrier_b.shipment(), headers=AUTH) as resp:
        assert (await resp.json())["extra"] == {"is_return": False}
    await carrier_b.buy(http, url)
    assert not sandbox.purchases[0].is_return


async def test_return_is_tracked_from_drop_off_to_the_warehouse_in_shippo_words(
    start_carrier: StartCarrier, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_carrier()
    _, _, transaction = await buy_return(http, url)
    await sandbox.settle()
    assert [b["data"]["tracking_status"]["status"] for b in inbox[0].bodies()] == ["PRE_TRANSIT"]
    assert (await track(http, url, transaction))["tracking_status"]["status"] == "PRE_TRANSIT"

    number = transaction["tracking_number"]
    async with http.post(f"{url}/_sandbox/returns/{number}/drop-off") as resp:
        assert resp.status == 200
    await sandbox.settle()
    events = inbox[0].bodies()
    assert [e["data"]["tracking_status"]["status"] for e in events] == [
        "PRE_TRANSIT",
        "TRANSIT",
        "TRANSIT",
        "DELIVERED",
    ]
    assert {e["event"] for e in events} == {"track_updated"}
    assert {e["data"]["metadata"] for e in events} == {"RMA-1"}
    for item in inbox[0].received:
        assert shippo_signature_valid(carrier_b.SECRET, item.headers, item.body)
    tracked = await track(http, url, transaction)
    assert tracked["tracking_status"]["status_details"] == "Delivered to the warehouse dock"
    assert tracked["tracking_history"][1]["status_details"] == (
        "Picked up at the customer's drop-off point"
    )


async def test_unsent_return_label_is_refunded_once(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    _, _, transaction = await buy_return(http, url)
    refunds = []
    for _ in range(2):
        async with http.post(
            f"{url}/refunds/", json={"transaction": transaction["object_id"]}, headers=AUTH
        ) as resp:
            assert resp.status == 201
            refunds.append(await resp.json())
    assert refunds[0]["object_id"] == refunds[1]["object_id"]
    assert sandbox.purchases_for("RMA-1")[0].voided
    assert sandbox.calls()["create_refund"] == 2
    async with http.post(f"{url}/_sandbox/returns/RMA-1/drop-off") as resp:
        assert resp.status == 409


async def test_return_label_cannot_be_refunded_once_picked_up(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    _, _, transaction = await buy_return(http, url)
    assert sandbox.drop_off_return("RMA-1") == [transaction["tracking_number"]]
    await sandbox.settle()
    async with http.post(
        f"{url}/refunds/", json={"transaction": transaction["object_id"]}, headers=AUTH
    ) as resp:
        assert resp.status == 400
        assert "already scanned" in (await resp.json())["detail"]
    assert not sandbox.purchases_for("RMA-1")[0].voided


async def test_invalid_return_flag_is_refused_with_a_detail(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    body = return_shipment()
    body["extra"] = {"is_return": "yes"}
    async with http.post(f"{url}/shipments/", json=body, headers=AUTH) as resp:
        assert resp.status == 400
        assert "is_return" in (await resp.json())["detail"]
    assert sandbox.shipments == {}
