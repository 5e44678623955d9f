"""Business methods as an integration calls them: validation wizards, cancelling, chatter."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from tests.sandboxes.odoo.running import running_odoo
from waybill_sandboxes.odoo import OdooSandbox, OdooSettings
from waybill_sandboxes.odoo.exceptions import (
    AccessError,
    InternalError,
    UserError,
    WrongArguments,
)
from waybill_sandboxes.odoo.methods import call_kw


def sandbox_of(version: int, **settings: Any) -> OdooSandbox:
    """A small sandbox; stock_sms's confirmation off unless asked (tests of its own below)."""
    options: dict[str, Any] = {"sms_confirmation": False, **settings}
    return OdooSandbox(
        OdooSettings(version=version, seed=5, customers=3, products=4, orders=2, **options)
    )


def call(sandbox: OdooSandbox, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
    return call_kw(sandbox.registry, sandbox.admin, model, method, list(args), kwargs)


def done_field(sandbox: OdooSandbox) -> str:
    return sandbox.version.move_done_field


@pytest.mark.parametrize("version", [17, 18, 19])
def test_validating_a_fully_reserved_delivery_marks_it_done(version: int) -> None:
    sandbox = sandbox_of(version)
    before = sandbox.picking("1")
    assert call(sandbox, "stock.picking", "button_validate", [1]) is True
    after = sandbox.picking("1")
    assert after.state == "done" and after.date_done
    assert all(move.state == "done" and move.done == move.demand for move in after.moves)
    assert before.write_date <= after.write_date
    lines = sandbox.registry.read(
        "sale.order.line",
        sandbox.registry.all_ids("sale.order.line"),
        ["order_id", "product_uom_qty", "qty_delivered"],
    )
    assert all(
        line["qty_delivered"] == line["product_uom_qty"] for line in lines if line["order_id"] == 1
    )
    # Validating again: 17 refuses (nothing to process), 18+ processes the done moves again.
    if version == 17:
        with pytest.raises(UserError, match="no quantities are reserved nor done"):
            call(sandbox, "stock.picking", "button_validate", [1])
    else:
        assert call(sandbox, "stock.picking", "button_validate", [1]) is True


def test_odoo16_asks_for_an_immediate_transfer_unless_told_to_skip_it() -> None:
    sandbox = sandbox_of(16)
    wizard = call(sandbox, "stock.picking", "button_validate", [1])
    assert wizard["res_model"] == "stock.immediate.transfer"
    assert wizard["type"] == "ir.actions.act_window" and wizard["target"] == "new"
    assert wizard["context"]["default_pick_ids"] == [[4, 1]]
    assert sandbox.picking("1").state == "assigned"
    assert call(sandbox, "stock.picking", "button_validate", [1], context={"skip_immediate": True})
    assert sandbox.picking("1").state == "done"


@pytest.mark.parametrize("version", [16, 17, 19])
def test_short_quantities_open_the_backorder_wizard_or_follow_the_context(version: int) -> None:
    sandbox = sandbox_of(version)
    field = done_field(sandbox)
    for picking in (1, 2):
        first_move = sandbox.registry.value("stock.picking", picking, "move_ids")[0]
        demand = sandbox.registry.value("stock.move", first_move, "product_uom_qty")
        call(sandbox, "stock.move", "write", [first_move], {field: demand - 0.5})
        if version == 16:  # 16 starts from nothing done: fill the other moves in
            for move in sandbox.registry.value("stock.picking", picking, "move_ids")[1:]:
                qty = sandbox.registry.value("stock.move", move, "product_uom_qty")
                call(sandbox, "stock.move", "write", [move], {field: qty})

    wizard = call(sandbox, "stock.picking", "button_validate", [1])
    assert wizard["res_model"] == "stock.backorder.confirmation"
    assert sandbox.picking("1").state == "assigned"

    no_backorder = {"skip_backorder": True, "picking_ids_not_to_backorder": [1]}
    assert call(sandbox, "stock.picking", "button_validate", [1], context=no_backorder) is True
    assert sandbox.picking("1").state == "done"
    assert not [p for p in sandbox.pickings() if p.backorder_of == sandbox.picking("1").name]

    assert call(sandbox, "stock.picking", "button_validate", [2], context={"skip_backorder": True})
    second = sandbox.picking("2")
    [backorder] = [p for p in sandbox.pickings() if p.backorder_of == second.name]
    assert second.state == "done" and backorder.state == "confirmed"
    assert [m.demand for m in backorder.moves] == [0.5]


def test_nothing_done_cannot_be_validated_and_cancelled_pickings_neither() -> None:
    sandbox = sandbox_of(17)
    for move in sandbox.registry.value("stock.picking", 1, "move_ids"):
        call(sandbox, "stock.move", "write", [move], {"quantity": 0})
    with pytest.raises(UserError, match="no quantities are reserved nor done"):
        call(sandbox, "stock.picking", "button_validate", [1])
    call(sandbox, "stock.picking", "action_cancel", [2])
    with pytest.raises(UserError, match="cancelled"):
        call(sandbox, "stock.picking", "button_validate", [2])
    [draft] = sandbox.registry.create("stock.picking", [{"picking_type_id": 2}], uid=2)
    with pytest.raises(UserError, match="add some items"):
        call(sandbox, "stock.picking", "button_validate", [draft])


def test_a_done_picking_cannot_be_cancelled_but_its_tracking_ref_can_be_written() -> None:
    sandbox = sandbox_of(17)
    call(sandbox, "stock.picking", "button_validate", [1])
    with pytest.raises(UserError, match="set to 'Done'"):
        call(sandbox, "stock.picking", "action_cancel", [1])
    assert call(sandbox, "stock.picking", "write", [1], {"carrier_tracking_ref": "LATE-1"}) is True
    assert sandbox.picking("1").carrier_tracking_ref == "LATE-1"


def test_cancelling_an_order_cancels_its_open_delivery_and_releases_stock() -> None:
    sandbox = sandbox_of(17)
    registry = sandbox.registry
    reserved_before = sum(
        registry.value("stock.quant", q, "reserved_quantity")
        for q in registry.all_ids("stock.quant")
    )
    order = sandbox.cancel_order("S00001")
    assert order.state == "cancel"
    assert sandbox.picking(order.pickings[0]).state == "cancel"
    reserved_after = sum(
        registry.value("stock.quant", q, "reserved_quantity")
        for q in registry.all_ids("stock.quant")
    )
    assert reserved_after < reserved_before


@pytest.mark.parametrize("version", [16, 17])
def test_a_locked_order_cannot_be_cancelled(version: int) -> None:
    sandbox = sandbox_of(version)
    lock = "action_done" if version == 16 else "action_lock"
    call(sandbox, "sale.order", lock, [1])
    with pytest.raises(UserError, match="locked order"):
        sandbox.cancel_order("S00001")
    call(sandbox, "sale.order", "action_unlock", [1])
    assert sandbox.cancel_order("S00001").state == "cancel"


def test_confirming_a_quotation_creates_a_ready_delivery_or_a_waiting_one() -> None:
    sandbox = sandbox_of(19)
    customer = call(sandbox, "res.partner", "search", [("ref", "!=", False)], limit=1)[0]
    line = {"product_id": 1, "product_uom_qty": 2, "product_uom_id": 1}
    quotation = call(
        sandbox, "sale.order", "create", {"partner_id": customer, "order_line": [(0, 0, line)]}
    )
    assert call(sandbox, "sale.order", "action_confirm", [quotation]) is True
    order = sandbox.order(str(quotation))
    assert order.state == "sale" and sandbox.picking(order.pickings[0]).state == "assigned"
    with pytest.raises(UserError, match="not in a state requiring confirmation"):
        call(sandbox, "sale.order", "action_confirm", [quotation])

    huge = {"product_id": 1, "product_uom_qty": 100000, "product_uom_id": 1}
    big = call(
        sandbox, "sale.order", "create", {"partner_id": customer, "order_line": [(0, 0, huge)]}
    )
    call(sandbox, "sale.order", "action_confirm", [big])
    waiting = sandbox.picking(sandbox.order(str(big)).pickings[0])
    assert waiting.state == "confirmed"  # not enough stock to reserve


def test_message_post_takes_keywords_only_and_returns_the_message_id() -> None:
    sandbox = sandbox_of(17)
    message = call(
        sandbox,
        "sale.order",
        "message_post",
        [1],
        body="<p>Booked</p>",
        message_type="comment",
        subtype_xmlid="mail.mt_comment",
    )
    assert sandbox.order("S00001").messages[0].id == message
    assert sandbox.order("S00001").messages[0].subtype == "Discussions"
    with pytest.raises(WrongArguments):
        call(sandbox, "sale.order", "message_post", [1], "positional body")
    with pytest.raises(InternalError, match="Expected singleton"):
        call(sandbox, "sale.order", "message_post", [1, 2], body="x")
    with pytest.raises(InternalError, match="External ID not found"):
        call(sandbox, "sale.order", "message_post", [1], body="x", subtype_xmlid="mail.nope")


def test_activity_schedule_assigns_a_todo_with_a_deadline() -> None:
    sandbox = sandbox_of(17)
    ops = sandbox.user("ops").uid
    one = call(
        sandbox,
        "stock.picking",
        "activity_schedule",
        [1],
        "mail.mail_activity_data_warning",
        date_deadline="2030-01-31",
        summary="Carrier down",
        note="All carriers failed",
        user_id=ops,
    )
    several = call(sandbox, "stock.picking", "activity_schedule", [1, 2], summary="Check")
    fallback = call(sandbox, "stock.picking", "activity_schedule", [2], "mail.nope")
    # A recordset without @api.returns: JSON-RPC and XML-RPC (up to 18) send its str().
    assert one == "mail.activity(1,)"
    [activity] = [a for a in sandbox.picking("1").activities if a.id == 1]
    assert activity.activity_type == "Exception"
    assert (activity.assigned_to, activity.date_deadline) == ("ops", "2030-01-31")
    assert several == "mail.activity(2,3,)"
    assert fallback == "mail.activity(4,)"
    assert sandbox.registry.value("mail.activity", 4, "activity_type_id") == 1
    with pytest.raises(InternalError, match="Invalid field"):
        call(sandbox, "stock.picking", "activity_schedule", [1], color="red")


def test_context_get_and_external_ids_answer_what_odoorpc_asks() -> None:
    sandbox = sandbox_of(17)
    assert call(sandbox, "res.users", "context_get") == {
        "lang": "en_US",
        "tz": "Europe/Brussels",
        "uid": 2,
    }
    assert call(sandbox, "ir.model.data", "check_object_reference", "base", "user_admin") == [
        "res.users",
        2,
    ]
    assert call(sandbox, "ir.model", "search", [("model", "=", "stock.picking")])
    with pytest.raises(AccessError):
        call(sandbox, "ir.model", "unlink", [1])


def test_a_reader_can_read_but_every_change_is_an_access_error() -> None:
    sandbox = sandbox_of(17)
    reader = sandbox.user("reader")
    assert call_kw(sandbox.registry, reader, "stock.picking", "search_count", [[]]) == 2
    changes: list[tuple[str, str, list[Any], dict[str, Any]]] = [
        ("res.partner", "create", [{"name": "x"}], {}),
        ("res.partner", "write", [[3], {"name": "x"}], {}),
        ("res.partner", "unlink", [[3]], {}),
        ("stock.picking", "button_validate", [[1]], {}),
        ("stock.picking", "action_cancel", [[1]], {}),
        ("stock.picking", "message_post", [[1]], {"body": "x"}),
        ("stock.picking", "activity_schedule", [[1]], {"summary": "x"}),
    ]
    for model, method, args, kwargs in changes:
        with pytest.raises(AccessError):
            call_kw(sandbox.registry, reader, model, method, args, kwargs)
    assert sandbox.picking("1").state == "assigned" and not sandbox.picking("1").messages
    sandbox.set_can_write("reader", True)
    assert call_kw(sandbox.registry, reader, "res.partner", "write", [[3], {"name": "x"}])


def test_fields_get_and_default_get_describe_the_model() -> None:
    sandbox = sandbox_of(17)
    described = call(sandbox, "stock.picking", "fields_get", attributes=["type", "relation"])
    assert described["move_ids"] == {"type": "one2many", "relation": "stock.move"}
    assert described["state"] == {"type": "selection"}
    full = call(sandbox, "stock.picking", "fields_get", ["state"])
    assert set(full) == {"state"} and ["assigned", "Ready"] in full["state"]["selection"]
    assert call(sandbox, "res.partner", "default_get", ["lang", "name"]) == {"lang": "en_US"}
    found = call(sandbox, "res.partner", "name_search", "Mitchell")
    assert found == [[sandbox.registry.value("res.users", 2, "partner_id"), "Mitchell Admin"]]


# --- what real Odoo does that the gateway must cope with (issue 15) ----------------------


@pytest.mark.parametrize("version", [16, 17, 18, 19])
def test_stock_sms_asks_to_confirm_sms_on_16_to_18_unless_skip_sms(version: int) -> None:
    sandbox = sandbox_of(version, sms_confirmation=None)  # the version's default
    context = {"skip_backorder": True, "picking_ids_not_to_backorder": [1], "skip_immediate": True}
    answer = call(sandbox, "stock.picking", "button_validate", [1], context=context)
    if version <= 18:
        assert answer["res_model"] == "confirm.stock.sms"
        assert sandbox.picking("1").state == "assigned"
        skipped = {**context, "skip_sms": True}
        answer = call(sandbox, "stock.picking", "button_validate", [1], context=skipped)
    assert answer is True
    assert sandbox.picking("1").state == "done"


@pytest.mark.parametrize("version", [17, 18, 19])
def test_auto_print_returns_a_print_action_after_the_picking_is_done(version: int) -> None:
    sandbox = sandbox_of(version, auto_print_delivery_slip=True)
    answer = call(sandbox, "stock.picking", "button_validate", [1])
    assert answer["type"] == "ir.actions.client" and answer["tag"] == "do_multi_print"
    first_done = sandbox.registry.value("stock.picking", 1, "date_done")
    assert sandbox.picking("1").state == "done" and first_done
    if version == 17:
        with pytest.raises(UserError, match="no quantities are reserved nor done"):
            call(sandbox, "stock.picking", "button_validate", [1])
    else:
        again = call(sandbox, "stock.picking", "button_validate", [1])
        assert again["tag"] == "do_multi_print"


def test_odoo16_has_no_auto_print_and_validates_a_done_picking_as_a_no_op() -> None:
    sandbox = sandbox_of(16)
    assert "auto_print_delivery_slip" not in sandbox.registry.models["stock.picking.type"].fields
    call(sandbox, "stock.picking", "button_validate", [1], context={"skip_immediate": True})
    assert call(sandbox, "stock.picking", "button_validate", [1]) is True


@pytest.mark.parametrize("version", [16, 17, 18, 19])
def test_message_post_escapes_a_plain_body_from_17_unless_body_is_html(version: int) -> None:
    sandbox = sandbox_of(version)
    body = "<p>Tom &amp; Jerry's &quot;box&quot;</p>"
    posted = call(sandbox, "stock.picking", "message_post", [1], body=body)
    stored = sandbox.registry.value("mail.message", posted, "body")
    # The sanitizer writes quotes as characters; & < > stay escaped.
    as_html = '<p>Tom &amp; Jerry\'s "box"</p>'
    if version == 16:
        assert stored == as_html
        with pytest.raises(InternalError, match="body_is_html"):
            call(sandbox, "stock.picking", "message_post", [1], body=body, body_is_html=True)
    else:
        assert stored.startswith("&lt;p&gt;Tom &amp;amp;")
        html_one = call(sandbox, "stock.picking", "message_post", [1], body=body, body_is_html=True)
        assert sandbox.registry.value("mail.message", html_one, "body") == as_html


@pytest.mark.parametrize("version", [16, 17, 18, 19])
def test_shipping_weight_is_computed_and_dropped_on_16_17_stored_from_18(version: int) -> None:
    sandbox = sandbox_of(version)
    weight = sandbox.registry.value("stock.picking", 1, "weight")
    call(sandbox, "stock.picking", "write", [1], {"shipping_weight": 42.5})
    expected = 42.5 if version >= 18 else weight
    assert sandbox.registry.value("stock.picking", 1, "shipping_weight") == expected


@pytest.mark.parametrize("version", [16, 18])
def test_without_the_delivery_module_carrier_fields_are_invalid(version: int) -> None:
    sandbox = sandbox_of(version, delivery_module=False)
    with pytest.raises(InternalError, match="Invalid field 'carrier_tracking_ref'"):
        call(sandbox, "stock.picking", "read", [1], ["carrier_tracking_ref"])
    modules = call(sandbox, "ir.module.module", "search_read", [("state", "=", "installed")])
    names = {row["name"] for row in modules}
    assert "stock" in names and sandbox.version.delivery_module not in names


@pytest.mark.parametrize("version", [16, 17, 18, 19])
def test_api_keys_expire_from_18(version: int) -> None:
    sandbox = sandbox_of(version, api_key_days=3)
    keys = call(sandbox, "res.users.apikeys", "search_read", [("user_id", "=", 2)])
    assert len(keys) == 1
    if version >= 18:
        assert keys[0]["expiration_date"]
        assert sandbox.admin.api_key_expires_at is not None
    else:
        assert "expiration_date" not in keys[0]
        assert sandbox.admin.api_key_expires_at is None
    expired = sandbox_of(version, api_key_days=-1)
    assert expired.credentials.login("admin", expired.admin.api_key) == (
        None if version >= 18 else expired.admin.uid
    )


@pytest.mark.parametrize("version", [18, 19])
async def test_jsonrpc_is_answered_and_logged_as_deprecated_on_19(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "jsonrpc": "2.0",
        "method": "call",
        "params": {"service": "common", "method": "version", "args": []},
        "id": 1,
    }
    with caplog.at_level(logging.WARNING, logger="waybill_sandboxes"):
        async with (
            running_odoo(version=version) as odoo,
            aiohttp.ClientSession() as http,
        ):
            for _ in range(2):
                async with http.post(f"{odoo.url}/jsonrpc", json=body) as answer:
                    assert (await answer.json())["result"]["server_version"] == f"{version}.0"
    deprecated = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(deprecated) == (1 if version >= 19 else 0)  # once per server
