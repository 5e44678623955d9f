"""Automation-rule webhooks: the picking-ready and order-cancelled POSTs, as Odoo sends them."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest

from tests.sandboxes.inbox import Inbox
from tests.sandboxes.odoo.running import DB, running_odoo
from waybill_sandboxes.odoo import OdooSandbox, OdooSettings, WebhookRule
from waybill_sandboxes.server import RunningSandbox

DATETIME = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"


async def test_a_delivery_becoming_ready_posts_the_documented_webhook_body(
    inbox: tuple[Inbox, RunningSandbox],
) -> None:
    receiver, target = inbox
    hook = f"{target.url}/odoo/9f2c-secret"
    async with running_odoo(version=17, webhook_url=hook) as odoo:
        order = odoo.sandbox.create_order(lines=[("WB-0001", 2), ("WB-0002", 1)])
        [received] = await receiver.wait_for(1)
        picking = odoo.sandbox.picking(order.pickings[0])
        deliveries = odoo.sandbox.webhooks.deliveries()

    raw = received.body.decode()
    body: dict[str, Any] = json.loads(raw)
    assert raw == json.dumps(body, sort_keys=True)  # keys sorted, Odoo's separators
    assert received.path == "/odoo/9f2c-secret"
    assert received.headers["Content-Type"] == "application/json"
    assert not any(h.lower().startswith(("webhook-", "x-signature")) for h in received.headers)
    assert body["_action"] == "Waybill: delivery ready(#1)"
    assert body["_model"] == "stock.picking"
    assert body["_id"] == body["id"] == picking.id
    assert body["name"] == picking.name and body["origin"] == order.name
    assert body["state"] == "assigned" and body["picking_type_code"] == "outgoing"
    assert isinstance(body["partner_id"], int) and body["sale_id"] == order.id  # bare ids
    assert body["move_ids"] == [m.id for m in picking.moves]  # x2many: id list
    assert body["carrier_id"] is False  # empty values are false
    for stamp in (body["scheduled_date"], body["write_date"]):
        assert re.fullmatch(DATETIME, stamp), stamp
    assert [d.outcome for d in deliveries] == ["delivered"]
    assert deliveries[0].attempts == 1


async def test_cancelling_an_order_over_json_rpc_posts_the_cancel_webhook(
    inbox: tuple[Inbox, RunningSandbox], http: aiohttp.ClientSession
) -> None:
    receiver, target = inbox
    async with running_odoo(version=19, webhook_url=f"{target.url}/hook") as odoo:
        params = {
            "service": "object",
            "method": "execute_kw",
            "args": [DB, 2, "admin", "sale.order", "action_cancel", [[2]]],
        }
        envelope = {"jsonrpc": "2.0", "method": "call", "params": params, "id": 1}
        async with http.post(f"{odoo.url}/jsonrpc", json=envelope) as response:
            assert (await response.json())["result"] is True
        [received] = await receiver.wait_for(1)

    body = received.json()
    assert body["_action"] == "Waybill: sale order cancelled(#2)"
    assert (body["_model"], body["_id"], body["state"]) == ("sale.order", 2, "cancel")
    assert body["picking_ids"] == [2]


async def post_json_rpc(http: aiohttp.ClientSession, url: str, *args: Any) -> dict[str, Any]:
    params = {"service": "object", "method": "execute_kw", "args": [DB, 2, "admin", *args]}
    envelope = {"jsonrpc": "2.0", "method": "call", "params": params, "id": 1}
    async with http.post(f"{url}/jsonrpc", json=envelope) as response:
        answer: dict[str, Any] = await response.json()
        return answer


@pytest.mark.parametrize(("version", "premature"), [(17, True), (19, False)])
async def test_odoo_17_sends_webhooks_for_changes_that_roll_back_and_19_does_not(
    inbox: tuple[Inbox, RunningSandbox],
    http: aiohttp.ClientSession,
    version: int,
    premature: bool,
) -> None:
    receiver, target = inbox
    async with running_odoo(version=version, webhook_url=f"{target.url}/hook") as odoo:
        uom = "product_uom_id" if version >= 19 else "product_uom"
        line = {"product_id": 1, "product_uom_qty": 1, uom: 1}
        quotation = await post_json_rpc(
            http,
            odoo.url,
            "sale.order",
            "create",
            [{"partner_id": 6, "order_line": [(0, 0, line)]}],
        )
        # Confirming a fresh quotation with an already confirmed order fails as a whole.
        failed = await post_json_rpc(
            http, odoo.url, "sale.order", "action_confirm", [[quotation["result"], 1]]
        )
        assert failed["error"]["data"]["name"] == "odoo.exceptions.UserError"
        assert odoo.sandbox.order(str(quotation["result"])).state == "draft"
        later = odoo.sandbox.create_order()  # a real one, as a marker
        received = await receiver.wait_for(2 if premature else 1)
        marker = odoo.sandbox.picking(later.pickings[0])

    bodies = [item.json() for item in received]
    assert bodies[-1]["_id"] == marker.id
    if premature:
        assert bodies[0]["origin"] == "S00004"  # announced, then rolled back
        assert bodies[0]["_id"] == marker.id  # ... and its id was handed out again
    assert len(bodies) == (2 if premature else 1)


async def test_a_failing_receiver_gets_one_attempt_and_no_retry(
    inbox: tuple[Inbox, RunningSandbox],
) -> None:
    receiver, target = inbox
    receiver.status = 500
    async with running_odoo(version=18, webhook_url=f"{target.url}/hook") as odoo:
        odoo.sandbox.create_order()
        await receiver.wait_for(1)
        await odoo.sandbox.settle()
        [delivery] = odoo.sandbox.webhooks.deliveries()
    assert (delivery.outcome, delivery.attempts, delivery.last_status) == ("failed", 1, 500)
    assert len(receiver.received) == 1


async def test_custom_rules_choose_model_trigger_domain_and_fields(
    inbox: tuple[Inbox, RunningSandbox],
) -> None:
    receiver, target = inbox
    async with running_odoo(version=17, webhook_url=f"{target.url}/hook") as odoo:
        odoo.sandbox.webhooks.replace_rules(
            [
                WebhookRule(
                    name="Tracking written",
                    model="stock.picking",
                    trigger_fields=["carrier_tracking_ref"],
                    domain=[["carrier_tracking_ref", "!=", False]],
                    fields=["carrier_tracking_ref"],
                ),
            ]
        )
        registry = odoo.sandbox.registry
        registry.write("stock.picking", [1], {"origin": "ignored: not a trigger field"}, uid=2)
        registry.write("stock.picking", [1], {"carrier_tracking_ref": False}, uid=2)
        registry.write("stock.picking", [1], {"carrier_tracking_ref": "1Z1"}, uid=2)
        [received] = await receiver.wait_for(1)
    assert received.json() == {
        "_action": "Tracking written(#3)",
        "_id": 1,
        "_model": "stock.picking",
        "carrier_tracking_ref": "1Z1",
        "id": 1,
    }


def test_bad_rules_are_refused_and_odoo_16_has_no_webhooks() -> None:
    sandbox = OdooSandbox(OdooSettings(version=17, orders=0))
    before = sandbox.webhooks.rules()
    bad_rules = [
        WebhookRule(name="x", model="no.model"),
        WebhookRule(name="x", model="stock.picking", fields=["nope"]),
        WebhookRule(name="x", model="stock.picking", trigger_fields=["nope"]),
        WebhookRule(name="x", model="stock.picking", domain=[["nope", "=", 1]]),
    ]
    for rule in bad_rules:
        with pytest.raises(ValueError, match=r"webhook rule|unknown model"):
            sandbox.webhooks.replace_rules([WebhookRule(name="ok", model="sale.order"), rule])
        assert sandbox.webhooks.rules() == before

    old = OdooSandbox(OdooSettings(version=16, webhook_url="http://127.0.0.1:9/hook"))
    assert old.webhooks.rules() == []
    with pytest.raises(ValueError, match="Odoo 16 has no webhook action"):
        old.webhooks.add_rule(WebhookRule(name="x", model="sale.order"))
    old.create_order()
    assert old.webhooks.deliveries() == []


# --- the rules are records (base.automation + ir.actions.server, 17+) ---------------------


@pytest.mark.parametrize(
    ("model", "values", "sent_to"),
    [
        ("base.automation", {"active": False}, None),  # archived: "will not be executed"
        ("base.automation", {"trigger": "on_create"}, None),  # pickings become ready on write
        ("ir.actions.server", {"state": "code"}, None),  # not a webhook action any more
        ("ir.actions.server", {"webhook_url": "http://127.0.0.1:9/elsewhere"}, "elsewhere"),
    ],
)
async def test_what_is_sent_follows_the_rule_records(
    inbox: tuple[Inbox, RunningSandbox],
    model: str,
    values: dict[str, Any],
    sent_to: str | None,
) -> None:
    receiver, target = inbox
    async with running_odoo(version=18, webhook_url=f"{target.url}/hook") as odoo:
        sandbox = odoo.sandbox
        rule, action = sandbox.webhooks.find("Waybill: delivery ready")
        sandbox.registry.write(model, [rule if model == "base.automation" else action], values, 1)
        order = sandbox.create_order()
        sandbox.cancel_order(order.name)  # the order rule, untouched: a marker sent after
        [marker] = await receiver.wait_for(1)
        await sandbox.settle()
        deliveries = sandbox.webhooks.deliveries()

    assert marker.json()["_model"] == "sale.order"
    assert [body["_model"] for body in receiver.bodies()] == ["sale.order"]
    picking_hooks = [d for d in deliveries if d.event_type.startswith("Waybill: delivery ready")]
    if sent_to is None:
        assert picking_hooks == []
    else:
        [sent] = picking_hooks
        assert sent.url is not None and sent.url.endswith(sent_to) and sent.outcome == "failed"


async def test_a_rule_on_another_model_sends_that_model() -> None:
    sandbox = OdooSandbox(OdooSettings(version=17, orders=0, webhook_url="http://127.0.0.1:9/h"))
    sandbox.webhooks.replace_rules(
        [WebhookRule(name="Moves", model="stock.move", trigger_fields=["state"])]
    )
    sandbox.create_order(lines=[("WB-0001", 1)])
    assert {json.loads(d.body)["_model"] for d in sandbox.webhooks.deliveries()} == {"stock.move"}


async def test_the_rules_are_read_over_json_rpc_and_json_2_by_settings_users_only(
    http: aiohttp.ClientSession,
) -> None:
    async with running_odoo(version=19, webhook_url="https://gw.example/webhooks/odoo/t") as odoo:
        rule, action = odoo.sandbox.webhooks.find("Waybill: delivery ready")
        rules = await post_json_rpc(
            http, odoo.url, "base.automation", "search_read", [[["id", "=", rule]]],
            {"fields": ["name", "model_name", "trigger", "trigger_field_ids", "filter_domain",
                        "active", "action_server_ids"]},
        )  # fmt: skip
        bearer = {"Authorization": f"bearer {odoo.sandbox.admin.api_key}"}
        async with http.post(
            f"{odoo.url}/json/2/ir.actions.server/read",
            json={"ids": [action], "fields": ["state", "webhook_url", "webhook_field_ids"]},
            headers=bearer,
        ) as response:
            [webhook] = await response.json()
        ops = odoo.sandbox.user("ops")
        async with http.post(
            f"{odoo.url}/json/2/base.automation/search_read",
            json={"domain": [], "fields": ["name"]},
            headers={"Authorization": f"bearer {ops.api_key}"},
        ) as refused:
            refused_status, refused_body = refused.status, await refused.json()

    [found] = rules["result"]
    assert found["name"] == "Waybill: delivery ready" and found["model_name"] == "stock.picking"
    assert (found["trigger"], found["active"], found["action_server_ids"]) == (
        "on_create_or_write", True, [action],
    )  # fmt: skip
    assert found["filter_domain"] == (
        "[('state', '=', 'assigned'), ('picking_type_code', '=', 'outgoing')]"
    )
    assert len(found["trigger_field_ids"]) == 1
    assert webhook["state"] == "webhook"
    assert webhook["webhook_url"] == "https://gw.example/webhooks/odoo/t"
    assert len(webhook["webhook_field_ids"]) == 10
    assert refused_status == 403
    assert "Administration/Settings" in refused_body["message"]
