"""The admin API under /_sandbox/odoo, and the same operations from Python."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.sandboxes.odoo.running import RunningOdoo, running_odoo
from waybill_sandboxes.odoo import OdooSandbox, OdooSettings
from waybill_sandboxes.server import serve


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, url, json=body) as response:
        return response.status, await response.json()


async def test_info_lists_what_an_integrator_needs_to_connect(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    status, info = await call(http, "GET", f"{odoo.url}/_sandbox/odoo/info")
    assert status == 200
    assert (info["version"], info["db"], info["json2"]) == (
        f"{odoo.version}.0",
        "waybill",
        odoo.version >= 19,
    )
    users = {user["login"]: user for user in info["users"]}
    assert users["admin"]["password"] == "admin"
    assert users["admin"]["api_key"] == odoo.sandbox.admin.api_key
    assert users["reader"]["can_write"] is False
    assert [rule["model"] for rule in info["webhook_rules"]] == ["stock.picking", "sale.order"]


async def test_orders_are_created_read_and_cancelled_over_http(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    base = f"{odoo.url}/_sandbox/odoo"
    body = {
        "lines": [{"sku": "WB-0003", "quantity": 4}],
        "client_order_ref": "PO-77",
        "carrier": "Carrier B",
    }
    status, order = await call(http, "POST", f"{base}/orders", body)
    assert status == 201
    assert (order["name"], order["state"], order["client_order_ref"]) == ("S00004", "sale", "PO-77")
    status, picking = await call(http, "GET", f"{base}/pickings/{order['pickings'][0]}")
    assert status == 200
    assert (picking["state"], picking["carrier"]) == ("assigned", "Carrier B")
    assert picking["moves"] == [
        {
            "id": picking["moves"][0]["id"],
            "product": "WB-0003",
            "demand": 4.0,
            "done": 0.0 if odoo.version == 16 else 4.0,
            "state": "assigned",
        },
    ]
    status, cancelled = await call(http, "POST", f"{base}/orders/S00004/cancel")
    assert (status, cancelled["state"]) == (200, "cancel")
    _, by_id = await call(http, "GET", f"{base}/orders/{order['id']}")
    assert by_id == cancelled
    _, ready = await call(http, "GET", f"{base}/pickings?state=assigned")
    assert len(ready) == 3
    _, orders = await call(http, "GET", f"{base}/orders")
    assert [o["name"] for o in orders] == ["S00001", "S00002", "S00003", "S00004"]


async def test_admin_routes_refuse_bad_requests_clearly(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    base = f"{odoo.url}/_sandbox/odoo"
    cases = [
        ("POST", f"{base}/orders", {"lines": [{"sku": "NOPE"}]}, 400, "unknown product SKU"),
        ("POST", f"{base}/orders", {"carrier": "Carrier Z"}, 400, "unknown carrier"),
        ("POST", f"{base}/orders", {"customer_id": 9999}, 400, "no customer"),
        ("POST", f"{base}/orders", {"colour": "red"}, 400, "invalid"),
        ("GET", f"{base}/orders/S99999", None, 404, "no sale.order"),
        ("POST", f"{base}/orders/S99999/cancel", None, 404, "no sale.order"),
        ("GET", f"{base}/pickings/WH/OUT/99999", None, 404, "no stock.picking"),
        ("POST", f"{base}/users", {"login": "admin"}, 400, "already taken"),
        ("PUT", f"{base}/users/ghost", {"can_write": False}, 404, "no Odoo sandbox user"),
        ("PUT", f"{base}/users/reader", {"can_write": "yes"}, 400, "invalid"),
        ("PUT", f"{base}/webhook-rules", [{"name": "x", "model": "no.model"}], 400, "unknown"),
        (
            "PUT",
            f"{base}/webhook-rules",
            [{"name": "x", "model": "stock.picking", "trigger": "sometimes"}],
            400,
            "unknown trigger",
        ),
    ]
    for method, url, body, status, text in cases:
        got_status, answer = await call(http, method, url, body)
        assert got_status == status, (method, url)
        assert text in answer["error"], (method, url, answer)
    # A business refusal is a conflict, not a bad request.
    odoo.sandbox.registry.write("sale.order", [2], {"locked": True}, uid=2)
    status, refused = await call(http, "POST", f"{base}/orders/S00002/cancel")
    assert status == 409 and "locked order" in refused["error"]


async def test_users_and_sessions_are_managed_over_http(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    base = f"{odoo.url}/_sandbox/odoo"
    status, user = await call(
        http, "POST", f"{base}/users", {"login": "bot", "password": "pw", "can_write": False}
    )
    assert status == 201 and user["can_write"] is False and len(user["api_key"]) == 40
    status, user = await call(http, "PUT", f"{base}/users/bot", {"can_write": True})
    assert (status, user["can_write"]) == (200, True)
    assert odoo.sandbox.credentials.login("bot", "pw") == user["uid"]
    session = odoo.sandbox.credentials.open_session(user["uid"])
    status, _ = await call(http, "POST", f"{base}/sessions/expire")
    assert status == 200 and odoo.sandbox.credentials.session_user(session) is None


async def test_webhook_rules_and_target_are_configured_over_http(
    http: aiohttp.ClientSession,
) -> None:
    async with running_odoo(version=17) as odoo17:
        base = odoo17.url
        rule = {"name": "Any picking change", "model": "stock.picking", "fields": ["state"]}
        status, rules = await call(http, "PUT", f"{base}/_sandbox/odoo/webhook-rules", [rule])
        assert status == 200 and [r["name"] for r in rules] == ["Any picking change"]
        status, _ = await call(http, "PUT", f"{base}/_sandbox/webhook", {"url": ""})
        assert status == 200
        odoo17.sandbox.create_order()
        status, sent = await call(http, "GET", f"{base}/_sandbox/webhooks")
    assert status == 200 and sent["webhooks"]
    assert all(w["event_type"] == "Any picking change(#3)" for w in sent["webhooks"])


async def test_the_sandbox_serves_its_own_app(http: aiohttp.ClientSession) -> None:
    sandbox = OdooSandbox(OdooSettings(version=18))
    async with serve(sandbox.app()) as running:
        status, info = await call(http, "GET", f"{running.url}/_sandbox/odoo/info")
    assert (status, info["version"]) == (200, "18.0")


def test_python_api_finds_orders_and_pickings_by_name_or_id() -> None:
    sandbox = OdooSandbox(OdooSettings(version=19, seed=9))
    order = sandbox.order("S00002")
    assert sandbox.order(str(order.id)) == order
    picking = sandbox.picking(order.pickings[0])
    assert sandbox.picking(str(picking.id)) == picking
    assert picking.origin == order.name and picking.picking_type_code == "outgoing"
    for lookup in (
        lambda: sandbox.order("S404"),
        lambda: sandbox.picking("999"),
        lambda: sandbox.user("nobody"),
    ):
        with pytest.raises(KeyError):
            lookup()
    empty = OdooSandbox(OdooSettings(customers=0, products=0, orders=0))
    with pytest.raises(ValueError, match="no customers"):
        empty.create_order()
    assert "API key" in sandbox.banner() and "/json/2/" in sandbox.banner()
