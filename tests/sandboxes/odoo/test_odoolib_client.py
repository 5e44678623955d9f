"""odoo-client-lib drives the sandbox over JSON-RPC, XML-RPC (legacy endpoint) and JSON-2.

JSON-RPC and XML-RPC run against Odoo 17 and 19; JSON-2 exists in 19 only.
Each script logs in, searches and reads, creates, writes, validates a
delivery and posts a note, then provokes every error kind.
"""

from __future__ import annotations

import asyncio
import xmlrpc.client
from collections.abc import Callable
from typing import Any

import odoolib
import pytest
from odoolib.tools import AuthenticationError, JsonRPCException

from tests.sandboxes.odoo.running import DB, RunningOdoo, running_odoo

READY = [("state", "=", "assigned"), ("picking_type_code", "=", "outgoing")]


def connection(port: int, protocol: str, login: str, secret: str) -> Any:
    return odoolib.get_connection(
        hostname="127.0.0.1",
        port=port,
        protocol=protocol,
        database=DB,
        login=login,
        password=secret,
    )


def ship_with_odoolib(port: int, protocol: str, secret: str) -> dict[str, Any]:
    """Find a ready delivery, write its tracking number, validate it and leave a note."""
    conn = connection(port, protocol, "admin", secret)
    pickings = conn.get_model("stock.picking")
    ready = pickings.search_read(READY, ["name", "partner_id", "move_ids"], order="id")
    first = ready[0]["id"]
    if protocol == "json2":
        one = pickings.read([first], ["name", "move_ids"])
    else:
        one = pickings.read(first, ["name", "move_ids"])
    partner_id = conn.get_model("res.partner").create({"name": f"Client {protocol}"})
    written = pickings.write([first], {"carrier_tracking_ref": f"TRK-{protocol}"})
    # stock_sms (16-18) asks to confirm SMS once per company unless told to skip it.
    validated = pickings.button_validate([first], context={"skip_sms": True})
    note = pickings.message_post([first], body=f"Shipped via {protocol}")
    return {
        "context": conn.get_user_context(),
        "ready": ready,
        "one": one,
        "partner_id": partner_id,
        "written": written,
        "validated": validated,
        "note": note,
    }


async def check_shipping_script(running: RunningOdoo, protocol: str, secret: str) -> None:
    out = await asyncio.to_thread(ship_with_odoolib, running.port, protocol, secret)
    sandbox = running.sandbox

    assert out["context"]["uid"] == sandbox.admin.uid
    assert [row["id"] for row in out["ready"]] == [1, 2, 3]
    assert out["one"]["name"] == out["ready"][0]["name"]
    assert out["one"]["move_ids"] == out["ready"][0]["move_ids"]
    assert out["written"] is True
    assert out["validated"] is True
    # JSON-2 returns created records as id lists (result.ids); RPC downgrades to one id.
    single = protocol != "json2"
    partner_ids = [out["partner_id"]] if single else out["partner_id"]
    assert sandbox.registry.read("res.partner", partner_ids, ["name"])[0]["name"] == (
        f"Client {protocol}"
    )
    note_ids = [out["note"]] if single else out["note"]
    shipped = sandbox.picking(out["ready"][0]["name"])
    assert shipped.state == "done"
    assert shipped.carrier_tracking_ref == f"TRK-{protocol}"
    assert [m.id for m in shipped.messages] == note_ids
    assert shipped.messages[0].body == f"Shipped via {protocol}"


@pytest.mark.parametrize("protocol", ["jsonrpc", "xmlrpc"])
async def test_odoolib_rpc_script_ships_a_delivery(odoo: RunningOdoo, protocol: str) -> None:
    await check_shipping_script(odoo, protocol, "admin")


async def test_odoolib_json2_script_ships_a_delivery_with_an_api_key() -> None:
    async with running_odoo(version=19) as odoo19:
        await check_shipping_script(odoo19, "json2", odoo19.sandbox.admin.api_key)


def rpc_errors(port: int, protocol: str) -> dict[str, Any]:
    """One error of each kind over odoolib's JSON-RPC or XML-RPC connector."""
    failure = JsonRPCException if protocol == "jsonrpc" else xmlrpc.client.Fault

    def error(call: Any) -> Any:
        with pytest.raises(failure) as raised:
            call()
        found = raised.value
        return found.error if protocol == "jsonrpc" else (found.faultCode, found.faultString)

    seen: dict[str, Any] = {}
    with pytest.raises(AuthenticationError):
        connection(port, protocol, "admin", "wrong").check_login()
    admin = connection(port, protocol, "admin", "admin")
    pickings = admin.get_model("stock.picking")
    # A connection that believes it is logged in, with a password changed since.
    stale = odoolib.get_connection(
        hostname="127.0.0.1",
        port=port,
        protocol=protocol,
        database=DB,
        login="admin",
        password="wrong",
        user_id=2,
    )
    seen["access_denied"] = error(lambda: stale.get_model("res.partner").search([]))
    first = pickings.search(READY)[0]
    pickings.action_cancel([first])
    seen["user_error"] = error(lambda: pickings.button_validate([first]))
    seen["missing_error"] = error(lambda: pickings.write([424242], {"origin": "X"}))
    seen["validation_error"] = error(lambda: admin.get_model("res.partner").create({"city": "X"}))
    seen["server_error"] = error(lambda: pickings.search([("nope", "=", 1)]))
    reader = connection(port, protocol, "reader", "reader")
    seen["access_error"] = error(
        lambda: reader.get_model("stock.picking").write([first], {"origin": "X"})
    )
    return seen


async def test_odoolib_jsonrpc_errors_carry_odoo_exception_names(odoo: RunningOdoo) -> None:
    seen = await asyncio.to_thread(rpc_errors, odoo.port, "jsonrpc")
    code = 0 if odoo.version >= 19 else 200
    names = {
        "access_denied": "odoo.exceptions.AccessDenied",
        "user_error": "odoo.exceptions.UserError",
        "missing_error": "odoo.exceptions.MissingError",
        "validation_error": "odoo.exceptions.ValidationError",
        "server_error": "builtins.ValueError",
        "access_error": "odoo.exceptions.AccessError",
    }
    for kind, name in names.items():
        assert seen[kind]["code"] == code, kind
        assert seen[kind]["data"]["name"] == name, kind


async def test_odoolib_legacy_xmlrpc_faults_use_odoo_string_codes(odoo: RunningOdoo) -> None:
    seen = await asyncio.to_thread(rpc_errors, odoo.port, "xmlrpc")

    assert seen["access_denied"] == ("AccessDenied", "Access Denied")
    code, text = seen["user_error"]
    assert code.startswith("warning -- UserError\n\n") and "cancelled" in code and text == ""
    assert seen["missing_error"][0].startswith("warning -- MissingError\n\nRecord does not exist")
    # ValidationError is a UserError to the legacy endpoint, as in Odoo.
    assert seen["validation_error"][0].startswith("warning -- UserError\n\nThe operation cannot")
    assert seen["access_error"][0].startswith("warning -- AccessError\n\nYou are not allowed")
    code, text = seen["server_error"]
    assert "nope" in code and text.startswith("Traceback (most recent call last):")


def json2_errors(port: int, admin_key: str, reader_key: str) -> dict[str, str]:
    """odoo-client-lib's JSON-2 errors: AuthenticationError on 401, ValueError otherwise."""
    seen: dict[str, str] = {}
    bad = connection(port, "json2", "admin", "not-a-key")
    with pytest.raises(AuthenticationError):
        bad.get_model("res.partner").search_count(domain=[])
    seen["bad_key_check_login"] = str(bad.check_login())
    admin = connection(port, "json2", "admin", admin_key)
    pickings = admin.get_model("stock.picking")
    first = pickings.search(domain=READY)[0]
    pickings.action_cancel(ids=[first])
    reader = connection(port, "json2", "reader", reader_key).get_model("stock.picking")
    calls: dict[str, Callable[[], Any]] = {
        "user_error": lambda: pickings.button_validate(ids=[first]),
        "missing_error": lambda: pickings.write(ids=[424242], vals={"origin": "X"}),
        "validation_error": lambda: admin.get_model("res.partner").create(vals_list={"zip": "1"}),
        "wrong_arguments": lambda: pickings.write(ids=[first], values={"origin": "X"}),
        "unknown_method": lambda: pickings.fly_to_the_moon(ids=[first]),
        "access_error": lambda: reader.write(ids=[first], vals={"origin": "X"}),
    }
    for kind, call in calls.items():
        with pytest.raises(ValueError) as raised:
            call()
        seen[kind] = str(raised.value)
    return seen


async def test_odoolib_json2_errors_map_to_http_statuses() -> None:
    async with running_odoo(version=19) as odoo19:
        sandbox = odoo19.sandbox
        seen = await asyncio.to_thread(
            json2_errors, odoo19.port, sandbox.admin.api_key, sandbox.user("reader").api_key
        )

    assert seen["bad_key_check_login"] == "False"
    assert seen["user_error"].startswith("Invalid request: ")  # 422
    assert "odoo.exceptions.UserError" in seen["user_error"]
    assert seen["validation_error"].startswith("Invalid request: ")  # 422
    assert "odoo.exceptions.ValidationError" in seen["validation_error"]
    assert seen["missing_error"].startswith("Unexpected status code 404")
    assert "odoo.exceptions.MissingError" in seen["missing_error"]
    assert seen["wrong_arguments"].startswith("Invalid request: ")
    assert "werkzeug.exceptions.UnprocessableEntity" in seen["wrong_arguments"]
    assert seen["unknown_method"].startswith("Unexpected status code 404")
    assert seen["access_error"].startswith("Unexpected status code 403")
    assert "odoo.exceptions.AccessError" in seen["access_error"]
