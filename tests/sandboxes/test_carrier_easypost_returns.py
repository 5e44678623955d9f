"""Carrier A (EasyPost style) return labels: ``is_return``, drop-off, tracking, refunds."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.sandboxes import test_carrier_easypost as carrier_a
from tests.sandboxes.inbox import Inbox
from tests.sandboxes.signatures import easypost_signature_valid
from waybill_sandboxes.server import RunningSandbox

AUTH = carrier_a.AUTH
StartCarrier = carrier_a.StartCarrier
# The carrier fixture of Carrier A's own tests: one way to start the sandbox.
start_carrier = carrier_a.start_carrier


def return_shipment(reference: str = "RMA-1") -> dict[str, Any]:
    """The outbound shipment's addresses, unswapped, with ``is_return``: as EasyPost wants it."""
    body = carrier_a.shipment(reference)
    body["shipment"]["to_address"]["street1"] = "7 Customer Lane"
    body["shipment"]["from_address"]["street1"] = "1 Warehouse Dock"
    body["shipment"]["is_return"] = True
    return body


async def buy_return(
    http: aiohttp.ClientSession, url: str, reference: str = "RMA-1"
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        f"{url}/v2/shipments", json=return_shipment(reference), headers=AUTH
    ) as resp:
        assert resp.status == 201
        created = await resp.json()
    cheapest = min(created["rates"], key=lambda rate: float(rate["rate"]))
    async with http.post(
        f"{url}/v2/shipments/{created['id']}/buy",
        json={"rate": {"id": cheapest["id"]}},
        headers=AUTH,
    ) as resp:
        return resp.status, await resp.json()


async def test_return_shipment_runs_from_the_customer_to_the_warehouse(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    status, bought = await buy_return(http, url)
    assert status == 200
    assert bought["is_return"] is True
    assert bought["from_address"]["street1"] == "7 Customer Lane"
    assert bought["to_address"]["street1"] == "1 Warehouse Dock"
    assert bought["tracking_code"].startswith("EZ")
    assert bought["tracker"]["status"] == "pre_transit"
    async with http.get(bought["postage_label"]["label_url"]) as resp:
        assert bought["tracking_code"].encode() in await resp.read()
    (purchase,) = sandbox.purchases_for("RMA-1")
    assert purchase.is_return
    # No idempotency key for returns either: the reference finds the purchase again.
    async with http.get(
        f"{url}/v2/shipments", params={"reference": "RMA-1", "purchased": "true"}, headers=AUTH
    ) as resp:
        (found,) = (await resp.json())["shipments"]
    assert found["tracking_code"] == bought["tracking_code"]


async def test_outbound_shipments_say_they_are_not_returns(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    _, bought = await carrier_a.create_and_buy(http, url)
    assert bought["is_return"] is False
    assert not sandbox.purchases[0].is_return


async def test_return_label_is_not_scanned_until_the_customer_drops_it_off(
    start_carrier: StartCarrier, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_carrier()
    _, bought = await buy_return(http, url)
    await sandbox.settle()
    # Never sent: label_created and nothing after it, however long one waits.
    assert [b["result"]["status"] for b in inbox[0].bodies()] == ["pre_transit"]

    async with http.post(f"{url}/_sandbox/returns/RMA-1/drop-off") as resp:
        assert resp.status == 200
        assert (await resp.json())["tracking_numbers"] == [bought["tracking_code"]]
    await sandbox.settle()
    events = inbox[0].bodies()
    assert [e["result"]["status"] for e in events] == [
        "pre_transit",
        "in_transit",
        "in_transit",
        "delivered",
    ]
    assert [e["description"] for e in events] == ["tracker.created"] + ["tracker.updated"] * 3
    details = events[-1]["result"]["tracking_details"]
    assert details[1]["message"] == "Picked up at the customer's drop-off point"
    assert details[-1]["message"] == "Delivered to the warehouse dock"
    for item in inbox[0].received:
        assert easypost_signature_valid(carrier_a.SECRET, item.headers, item.body)
    async with http.get(
        f"{url}/v2/trackers", params={"tracking_code": bought["tracking_code"]}, headers=AUTH
    ) as resp:
        (tracker,) = (await resp.json())["trackers"]
    assert tracker["status"] == "delivered"


async def test_unsent_return_label_is_refunded_and_can_no_longer_be_dropped_off(
    start_carrier: StartCarrier, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_carrier()
    _, bought = await buy_return(http, url)
    async with http.post(f"{url}/v2/shipments/{bought['id']}/refund", headers=AUTH) as resp:
        assert resp.status == 200
        refunded = await resp.json()
    assert refunded["refund_status"] == "submitted"
    assert refunded["tracker"]["status"] == "cancelled"
    async with http.post(f"{url}/_sandbox/returns/{bought['tracking_code']}/drop-off") as resp:
        assert resp.status == 409
        assert "voided" in (await resp.json())["error"]
    await sandbox.settle()
    assert [b["result"]["status"] for b in inbox[0].bodies()] == ["pre_transit", "cancelled"]


async def test_return_label_cannot_be_refunded_once_picked_up(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    _, bought = await buy_return(http, url)
    sandbox.drop_off_return("RMA-1")
    await sandbox.settle()
    async with http.post(f"{url}/v2/shipments/{bought['id']}/refund", headers=AUTH) as resp:
        assert resp.status == 422
        error = (await resp.json())["error"]
    assert error["code"] == "SHIPMENT.REFUND.UNAVAILABLE"
    assert "already scanned" in error["message"]
    assert not sandbox.purchases_for("RMA-1")[0].voided


async def test_drop_off_is_refused_for_unknown_and_outbound_labels(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier(tracking_delays_s=[60.0])
    await carrier_a.create_and_buy(http, url, reference="WB-SHP-1")
    for key in ("RMA-404", "WB-SHP-1"):
        async with http.post(f"{url}/_sandbox/returns/{key}/drop-off") as resp:
            assert resp.status == 409
            assert "no return label waiting" in (await resp.json())["error"]
    await buy_return(http, url)
    sandbox.drop_off_return("RMA-1")
    async with http.post(f"{url}/_sandbox/returns/RMA-1/drop-off") as resp:
        assert resp.status == 409  # already on its way


async def test_invalid_return_shipment_is_refused_in_easyposts_error_format(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier()
    body = return_shipment()
    body["shipment"]["is_return"] = "yes"
    async with http.post(f"{url}/v2/shipments", json=body, headers=AUTH) as resp:
        assert resp.status == 422
        error = (await resp.json())["error"]
    assert error["code"] == "PARAMETER.INVALID"
    assert "is_return" in error["message"]
    assert sandbox.shipments == {}


async def test_return_purchases_share_the_purchase_rate_limit(
    start_carrier: StartCarrier, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_carrier(purchase_rate_per_s=0.01, purchase_burst=1)
    status, _ = await buy_return(http, url, reference="RMA-1")
    assert status == 200
    async with http.post(
        f"{url}/v2/shipments", json=return_shipment("RMA-2"), headers=AUTH
    ) as resp:
        created = await resp.json()
    async with http.post(
        f"{url}/v2/shipments/{created['id']}/buy",
        json={"rate": {"id": created["rates"][0]["id"]}},
        headers=AUTH,
    ) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["error"]["code"] == "RATE_LIMITED"
    assert sandbox.purchases_per_reference() == {"RMA-1": 1}
