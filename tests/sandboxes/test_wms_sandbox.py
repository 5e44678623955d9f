"""The WMS sandbox: REST API, lifecycle webhooks, signatures, holds, short picks, inventory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest

from tests.sandboxes.inbox import Inbox, eventually
from tests.sandboxes.signatures import tampered, wms_signature_valid
from waybill_sandboxes.server import RunningSandbox, serve
from waybill_sandboxes.wms import OrderStatus, WmsConfig, WmsSandbox
from waybill_sandboxes.wms.warehouse import sscc_check_digit

API_KEY = "test-wms-key"
SECRET = "test-wms-secret"
FAST = {"accepted": 0.0, "picked": 0.0, "packed": 0.0, "shipped": 0.0}
HEADERS = {"X-Api-Key": API_KEY}

StartWms = Callable[..., Awaitable[tuple[WmsSandbox, str]]]


def order_body(ref: str = "SO-1001", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_order_ref": ref,
        "warehouse": "WH1",
        "ship_to": {
            "name": "Ada Lovelace",
            "street1": "12 Dock Road",
            "city": "Rotterdam",
            "postal_code": "3011AA",
            "country": "NL",
        },
        "lines": [{"sku": "BOLT-M8", "qty": 3, "uom": "EA"}, {"sku": "NUT-M8", "qty": 12}],
    }
    body.update(overrides)
    return body


@pytest.fixture
async def start_wms(
    inbox: tuple[Inbox, RunningSandbox],
) -> AsyncIterator[StartWms]:
    """Start WMS sandboxes whose webhooks go to the test inbox."""
    async with AsyncExitStack() as stack:

        async def start(**config: Any) -> tuple[WmsSandbox, str]:
            settings: dict[str, Any] = {
                "api_key": API_KEY,
                "webhook_secret": SECRET,
                "webhook_url": inbox[1].url + "/wms",
                "stage_delays_s": FAST,
                "seed": 7,
            }
            settings.update(config)
            sandbox = WmsSandbox(WmsConfig(**settings))
            running = await stack.enter_async_context(serve(sandbox.app()))
            return sandbox, running.url

        yield start


async def create(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{url}/api/v1/outbound-orders", json=body, headers=HEADERS) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_order_walks_the_lifecycle_as_signed_webhooks(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    _, url = await start_wms()
    status, order = await create(http, url, order_body())
    assert status == 201
    assert order["status"] == "received"

    received = await inbox[0].wait_for(4)
    types = [item.json()["event_type"] for item in received]
    assert types == ["order.accepted", "order.picked", "order.packed", "order.shipped"]
    for item in received:
        assert wms_signature_valid(SECRET, item.headers, item.body)
        event = item.json()
        assert event["event_id"].startswith("evt_")
        assert event["occurred_at"].endswith("Z")
        assert event["data"]["client_order_ref"] == "SO-1001"
    assert received[-1].json()["data"]["status"] == "shipped"
    assert [line["qty_shipped"] for line in received[-1].json()["data"]["lines"]] == [3, 12]


async def test_tampered_wms_webhook_fails_verification(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    _, url = await start_wms()
    await create(http, url, order_body())
    first = (await inbox[0].wait_for(1))[0]
    assert wms_signature_valid(SECRET, first.headers, first.body)
    assert not wms_signature_valid(SECRET, first.headers, tampered(first.body))
    assert not wms_signature_valid("another-secret", first.headers, first.body)


async def test_packed_event_carries_parcels_with_weights_dimensions_and_sscc(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    _, url = await start_wms(units_per_parcel=5)
    products = {"products": [{"sku": "BOLT-M8", "weight_kg": 0.1}, {"sku": "NUT-M8"}]}
    async with http.post(f"{url}/api/v1/products", json=products, headers=HEADERS) as resp:
        answer = await resp.json()
        assert (answer["created"], answer["rejected"]) == (2, 0)
    await create(http, url, order_body())
    await inbox[0].wait_for(3)
    packed = next(b for b in inbox[0].bodies() if b["event_type"] == "order.packed")
    parcels: list[dict[str, Any]] = packed["data"]["parcels"]
    # 3 bolts fit one carton; 12 nuts need three cartons of at most 5.
    assert [p["contents"] for p in parcels] == [
        [{"sku": "BOLT-M8", "qty": 3}],
        [{"sku": "NUT-M8", "qty": 5}],
        [{"sku": "NUT-M8", "qty": 5}],
        [{"sku": "NUT-M8", "qty": 2}],
    ]
    assert parcels[0]["weight_kg"] == pytest.approx(0.25 + 3 * 0.1)
    for parcel in parcels:
        assert len(parcel["sscc"]) == 18
        assert parcel["sscc"][-1] == sscc_check_digit(parcel["sscc"][:17])
        assert min(parcel["length_cm"], parcel["width_cm"], parcel["height_cm"]) > 0
    assert len({p["sscc"] for p in parcels}) == 4


def test_sscc_check_digit_follows_the_gs1_mod10_rule() -> None:
    # All GS1 keys share one check-digit rule; EAN-13 4006381333931 is a well-known barcode.
    assert sscc_check_digit("400638133393") == "1"
    assert sscc_check_digit("10614141123456789") == "7"


async def test_replayed_create_returns_the_same_order_once(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_wms()
    first_status, first = await create(http, url, order_body("SO-7"))
    second_status, second = await create(http, url, order_body("SO-7"))
    assert (first_status, second_status) == (201, 200)
    assert first["order_id"] == second["order_id"]
    assert len(sandbox.warehouse.orders) == 1
    assert sandbox.warehouse.creations["SO-7"] == 2
    assert sandbox.calls()["create_order"] == 2


async def test_reused_ref_with_other_content_is_a_conflict(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    _, url = await start_wms()
    await create(http, url, order_body("SO-8"))
    status, problem = await create(http, url, order_body("SO-8", lines=[{"sku": "X", "qty": 1}]))
    assert status == 409
    assert "SO-8" in problem["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (order_body(lines=[]), "lines"),
        (order_body(lines=[{"sku": "A", "qty": 0}]), "qty"),
        (order_body(client_order_ref=""), "client_order_ref"),
        ({"lines": [{"sku": "A", "qty": 1}]}, "client_order_ref"),
    ],
)
async def test_invalid_order_is_refused_with_a_problem_naming_the_field(
    start_wms: StartWms, http: aiohttp.ClientSession, body: dict[str, Any], fragment: str
) -> None:
    _, url = await start_wms()
    status, problem = await create(http, url, body)
    assert status == 422
    assert fragment in problem["detail"]


async def test_non_json_order_is_refused(start_wms: StartWms, http: aiohttp.ClientSession) -> None:
    _, url = await start_wms()
    async with http.post(
        f"{url}/api/v1/outbound-orders", data=b"{not json", headers=HEADERS
    ) as resp:
        assert resp.status == 422
        assert resp.content_type == "application/problem+json"
        assert "not valid JSON" in (await resp.json(content_type=None))["detail"]


@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "wrong"}])
async def test_api_calls_without_the_right_key_get_401(
    start_wms: StartWms, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    sandbox, url = await start_wms()
    async with http.get(f"{url}/api/v1/inventory/BOLT-M8", headers=headers) as resp:
        assert resp.status == 401
        assert "X-Api-Key" in (await resp.json(content_type=None))["detail"]
    assert sandbox.warehouse.orders == {}


async def test_orders_updated_since_a_watermark_are_listed_for_reconciliation(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_wms()
    sandbox.lifecycle.hold("SO-2", "accepted")
    _, first = await create(http, url, order_body("SO-1"))
    await sandbox.lifecycle.idle()  # SO-1 shipped; SO-2 not created yet
    shipped_at = sandbox.warehouse.order(first["order_id"]).updated_at
    await create(http, url, order_body("SO-2"))

    since = shipped_at.isoformat().replace("+00:00", "Z")
    async with http.get(
        f"{url}/api/v1/outbound-orders", params={"updated_since": since}, headers=HEADERS
    ) as resp:
        listed = await resp.json()
    assert [o["client_order_ref"] for o in listed["orders"]] == ["SO-1", "SO-2"]
    assert listed["orders"][0]["status"] == "shipped"

    async with http.get(
        f"{url}/api/v1/outbound-orders",
        params={"client_order_ref": "SO-2"},
        headers=HEADERS,
    ) as resp:
        assert [o["status"] for o in (await resp.json())["orders"]] == ["received"]


@pytest.mark.parametrize("since", ["yesterday", "2024-05-01T08:00:00"])
async def test_bad_updated_since_is_a_400_saying_how_to_write_it(
    start_wms: StartWms, http: aiohttp.ClientSession, since: str
) -> None:
    _, url = await start_wms()
    async with http.get(
        f"{url}/api/v1/outbound-orders", params={"updated_since": since}, headers=HEADERS
    ) as resp:
        assert resp.status == 400
        assert since in (await resp.json(content_type=None))["detail"]


async def test_order_held_at_a_stage_waits_there_until_released(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_wms()
    async with http.post(f"{url}/_sandbox/orders/SO-3/hold", json={"stage": "packed"}) as resp:
        assert resp.status == 200
    _, order = await create(http, url, order_body("SO-3"))
    await eventually(lambda: sandbox.lifecycle.waiting() == {"SO-3": "packed"})
    assert sandbox.warehouse.order(order["order_id"]).status == "picked"
    async with http.get(f"{url}/_sandbox/orders") as resp:
        assert (await resp.json())["waiting"] == {"SO-3": "packed"}

    async with http.post(f"{url}/_sandbox/orders/SO-3/release") as resp:
        assert (await resp.json()) == {"released": True}
    await sandbox.settle()
    assert sandbox.warehouse.order(order["order_id"]).status == "shipped"


async def test_hold_at_an_unknown_stage_is_refused(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    _, url = await start_wms()
    async with http.post(f"{url}/_sandbox/orders/SO-3/hold", json={"stage": "lost"}) as resp:
        assert resp.status == 400
        assert "accepted, picked, packed, shipped" in (await resp.json())["error"]


async def test_cancel_before_packing_stops_the_order_and_says_so(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_wms()
    sandbox.lifecycle.hold("SO-4", "packed")
    _, order = await create(http, url, order_body("SO-4"))
    await eventually(lambda: sandbox.lifecycle.waiting() == {"SO-4": "packed"})
    cancel_url = f"{url}/api/v1/outbound-orders/{order['order_id']}/cancel"
    async with http.post(cancel_url, headers=HEADERS) as resp:
        assert (resp.status, (await resp.json())["status"]) == (200, "cancelled")
    async with http.post(cancel_url, headers=HEADERS) as resp:
        assert resp.status == 200  # a second cancel is harmless
    sandbox.lifecycle.release("SO-4")
    await sandbox.settle()
    types = [b["event_type"] for b in inbox[0].bodies()]
    assert types == ["order.accepted", "order.picked", "order.cancelled"]
    assert [c.outcome for c in sandbox.warehouse.cancellations] == [
        "cancelled",
        "already_cancelled",
    ]
    # The picked bolts went back on the shelf.
    assert sandbox.warehouse.stock_level("BOLT-M8").on_hand == 1000


async def test_cancel_after_shipping_is_a_conflict_and_unknown_order_is_404(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_wms()
    _, order = await create(http, url, order_body("SO-5"))
    await sandbox.settle()
    async with http.post(
        f"{url}/api/v1/outbound-orders/{order['order_id']}/cancel", headers=HEADERS
    ) as resp:
        assert resp.status == 409
        assert "shipped" in (await resp.json(content_type=None))["detail"]
    async with http.post(f"{url}/api/v1/outbound-orders/OO-404/cancel", headers=HEADERS) as resp:
        assert resp.status == 404
    async with http.get(f"{url}/api/v1/outbound-orders/OO-404", headers=HEADERS) as resp:
        assert resp.status == 404
    assert [c.outcome for c in sandbox.warehouse.cancellations] == ["refused"]


async def test_forced_short_pick_is_reported_and_the_rest_ships(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_wms()
    async with http.post(
        f"{url}/_sandbox/orders/SO-6/short-pick", json={"sku": "NUT-M8", "qty": 2}
    ) as resp:
        assert resp.status == 200
    await create(http, url, order_body("SO-6"))
    await sandbox.settle()
    bodies = inbox[0].bodies()
    assert [b["event_type"] for b in bodies] == [
        "order.accepted",
        "order.short_picked",
        "order.picked",
        "order.packed",
        "order.shipped",
    ]
    short_lines = bodies[1]["data"]["lines"]
    assert [(line["qty_ordered"], line["qty_picked"]) for line in short_lines] == [(3, 3), (12, 10)]
    assert bodies[1]["data"]["short_picked"] is True


async def test_order_with_nothing_pickable_stops_at_short_picked(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_wms(short_pick_rate=1.0)
    _, order = await create(http, url, order_body("SO-9", lines=[{"sku": "ONE", "qty": 1}]))
    await sandbox.settle()
    assert sandbox.warehouse.order(order["order_id"]).status == "short_picked"
    assert [b["event_type"] for b in inbox[0].bodies()] == ["order.accepted", "order.short_picked"]


async def test_inventory_adjustment_is_sent_as_a_signed_webhook(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    _, url = await start_wms(default_stock=50)
    adjustment = {"sku": "BOLT-M8", "delta": -4, "reason_code": "DAMAGED", "location": "PICK-01"}
    async with http.post(f"{url}/_sandbox/inventory/adjustments", json=adjustment) as resp:
        assert resp.status == 200
    (item,) = await inbox[0].wait_for(1)
    assert wms_signature_valid(SECRET, item.headers, item.body)
    event = item.json()
    assert event["event_type"] == "inventory.adjusted"
    assert event["data"] == {
        "sku": "BOLT-M8",
        "location": "PICK-01",
        "delta": -4,
        "reason_code": "DAMAGED",
        "on_hand_after": 46,
        "adjusted_at": event["data"]["adjusted_at"],
    }
    async with http.get(f"{url}/api/v1/inventory/BOLT-M8", headers=HEADERS) as resp:
        level = await resp.json()
    assert (level["on_hand"], level["locations"]) == (46, {"PICK-01": 46})


async def test_adjustment_below_zero_is_refused(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    _, url = await start_wms(default_stock=1)
    adjustment = {"sku": "BOLT-M8", "delta": -5, "reason_code": "LOST"}
    async with http.post(f"{url}/_sandbox/inventory/adjustments", json=adjustment) as resp:
        assert resp.status == 400
        assert "below zero" in (await resp.json())["error"]


async def test_inventory_by_sku_shows_allocation_of_open_orders(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_wms(default_stock=20)
    sandbox.lifecycle.hold("SO-10", "picked")
    await create(http, url, order_body("SO-10"))
    await eventually(lambda: sandbox.lifecycle.waiting() == {"SO-10": "picked"})
    async with http.get(
        f"{url}/api/v1/inventory", params=[("sku", "BOLT-M8"), ("sku", "NUT-M8")], headers=HEADERS
    ) as resp:
        items = (await resp.json())["items"]
    assert [(i["sku"], i["allocated"], i["available"]) for i in items] == [
        ("BOLT-M8", 3, 17),
        ("NUT-M8", 12, 8),
    ]
    async with http.get(f"{url}/api/v1/inventory", headers=HEADERS) as resp:
        assert resp.status == 400


async def test_admin_can_speed_up_the_lifecycle_and_refuses_bad_settings(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_wms()
    async with http.put(
        f"{url}/_sandbox/lifecycle", json={"stage_delays_s": {"packed": 0.5}, "short_pick_rate": 1}
    ) as resp:
        assert resp.status == 200
    assert sandbox.lifecycle.delays_s[OrderStatus.PACKED] == 0.5
    assert sandbox.warehouse.short_pick_rate == 1
    for bad in ({"stage_delays_s": {"packed": -1}}, {"short_pick_rate": 2}, {"speed": 1}):
        async with http.put(f"{url}/_sandbox/lifecycle", json=bad) as resp:
            assert resp.status == 400
    assert sandbox.lifecycle.delays_s[OrderStatus.PACKED] == 0.5
