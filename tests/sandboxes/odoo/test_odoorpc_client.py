"""odoorpc (JSON-RPC) drives the sandbox as an integrator's script would, in Odoo 17 and 19.

The client is synchronous, so each script runs in a worker thread while the
sandbox serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import odoorpc
import pytest

from tests.sandboxes.odoo.running import DB, RunningOdoo

READY = [("state", "=", "assigned"), ("picking_type_code", "=", "outgoing")]


def connect(port: int, login: str = "admin", password: str = "admin") -> odoorpc.ODOO:
    client = odoorpc.ODOO("127.0.0.1", port=port, timeout=30)
    client.login(DB, login, password)
    return client


def ship_first_ready_delivery(port: int) -> dict[str, Any]:
    """What a shipping integration does: find a ready delivery, record the parcel, validate."""
    client = connect(port)
    Picking = client.env["stock.picking"]
    ready = Picking.search_read(READY, ["name", "partner_id", "move_ids", "write_date"])
    picking = Picking.browse(ready[0]["id"])
    moves = client.env["stock.move"].read(ready[0]["move_ids"], ["product_id", "product_uom_qty"])
    ops_uid = client.env["res.users"].search([("login", "=", "ops")])[0]
    german = client.env.ref("base.de")
    partner_id = client.env["res.partner"].create(
        {"name": "Lager Nord GmbH", "country_id": german.id, "city": "Bremen"}
    )
    picking.write({"carrier_tracking_ref": "1Z999AA10123456784"})
    # stock_sms (16-18) asks to confirm SMS once per company unless told to skip it.
    validated = picking.with_context(skip_sms=True).button_validate()
    message_id = picking.message_post(
        body="Shipped with 1Z999AA10123456784", message_type="comment", subtype_xmlid="mail.mt_note"
    )
    activity_id = picking.activity_schedule(
        "mail.mail_activity_data_todo", summary="Check the label", user_id=ops_uid
    )
    return {
        "version": client.version,
        "user": client.env.user.name,
        "context": dict(client.env.context),
        "model_exists": "stock.picking" in client.env,
        "ready": ready,
        "name": picking.name,
        "partner_name": picking.partner_id.name,
        "moves": moves,
        "partner": client.env["res.partner"].read([partner_id], ["name", "country_id"])[0],
        "validated": validated,
        "message_id": message_id,
        "activity_id": activity_id,
        "state_after": Picking.read([picking.id], ["state", "date_done"])[0],
    }


async def test_odoorpc_script_finds_ships_and_annotates_a_ready_delivery(odoo: RunningOdoo) -> None:
    out = await asyncio.to_thread(ship_first_ready_delivery, odoo.port)

    assert out["version"] == f"{odoo.version}.0"
    assert out["user"] == "Mitchell Admin"
    assert out["context"]["uid"] == odoo.sandbox.admin.uid
    assert out["model_exists"] is True
    assert len(out["ready"]) == 3  # the seeded orders' deliveries
    assert all(isinstance(row["partner_id"], list) for row in out["ready"])
    assert isinstance(out["moves"][0]["product_id"], list)
    assert out["partner"]["name"] == "Lager Nord GmbH"
    assert out["partner"]["country_id"][1] == "Germany"
    assert out["validated"] is True
    assert out["state_after"]["state"] == "done"
    assert out["state_after"]["date_done"]

    shipped = odoo.sandbox.picking(out["name"])
    assert shipped.state == "done"
    assert shipped.carrier_tracking_ref == "1Z999AA10123456784"
    assert shipped.partner == out["partner_name"]
    assert [m.id for m in shipped.messages] == [out["message_id"]]
    assert shipped.messages[0].body == "Shipped with 1Z999AA10123456784"
    assert shipped.messages[0].subtype == "Note"
    # activity_schedule has no @api.returns: up to 18 JSON-RPC sends the recordset's str().
    [activity] = shipped.activities
    expected = [activity.id] if odoo.version >= 19 else f"mail.activity({activity.id},)"
    assert out["activity_id"] == expected
    assert shipped.activities[0].assigned_to == "ops"
    assert shipped.activities[0].activity_type == "To-Do"


def collect_errors(port: int) -> dict[str, Any]:
    """Provoke one error of each kind and keep what odoorpc raised."""
    seen: dict[str, Any] = {}
    client = odoorpc.ODOO("127.0.0.1", port=port, timeout=30)
    try:
        client.login(DB, "admin", "not-the-password")
    except odoorpc.error.RPCError as refused:
        seen["login"] = str(refused)

    def rpc_error(call: Any) -> dict[str, Any]:
        with pytest.raises(odoorpc.error.RPCError) as raised:
            call()
        info: dict[str, Any] = raised.value.info
        return info

    client.login(DB, "admin", "admin")
    Picking = client.env["stock.picking"]
    seen["access_denied"] = rpc_error(
        lambda: client.json(
            "/jsonrpc",
            {
                "service": "object",
                "method": "execute_kw",
                "args": [DB, client.env.uid, "stolen", "res.partner", "search", [[]]],
            },
        )
    )
    first = Picking.search(READY)[0]
    Picking.browse(first).action_cancel()
    seen["user_error"] = rpc_error(lambda: Picking.browse(first).button_validate())
    seen["validation_error"] = rpc_error(lambda: client.env["res.partner"].create({"city": "Oslo"}))
    seen["missing_error"] = rpc_error(
        lambda: client.execute_kw(
            "stock.picking", "write", [[987654], {"carrier_tracking_ref": "X"}]
        )
    )
    seen["server_error"] = rpc_error(lambda: Picking.search([("no_such_field", "=", 1)]))
    seen["unknown_model"] = rpc_error(lambda: client.execute("no.such.model", "search", []))

    reader = connect(port, "reader", "reader")
    seen["access_error"] = rpc_error(
        lambda: reader.env["stock.picking"].browse(first).write({"carrier_tracking_ref": "X"})
    )
    seen["reader_can_read"] = reader.env["stock.picking"].search_count([])
    return seen


async def test_odoorpc_sees_each_error_kind_as_odoo_sends_it(odoo: RunningOdoo) -> None:
    seen = await asyncio.to_thread(collect_errors, odoo.port)
    code = 0 if odoo.version >= 19 else 200

    assert seen["login"] == "Wrong login ID or password"
    expected = {
        "access_denied": "odoo.exceptions.AccessDenied",
        "user_error": "odoo.exceptions.UserError",
        "validation_error": "odoo.exceptions.ValidationError",
        "missing_error": "odoo.exceptions.MissingError",
        "server_error": "builtins.ValueError",
        "unknown_model": "odoo.exceptions.UserError",
        "access_error": "odoo.exceptions.AccessError",
    }
    for kind, name in expected.items():
        info = seen[kind]
        assert info["code"] == code, kind
        assert info["message"] == "Odoo Server Error", kind
        assert info["data"]["name"] == name, kind
        assert info["data"]["arguments"] == [info["data"]["message"]], kind
    assert seen["access_denied"]["data"]["message"] == "Access Denied"
    assert "cancelled" in seen["user_error"]["data"]["message"]
    assert "Field: Name (name)" in seen["validation_error"]["data"]["message"]
    assert "stock.picking(987654,)" in seen["missing_error"]["data"]["message"]
    assert "no_such_field" in seen["server_error"]["data"]["message"]
    assert seen["unknown_model"]["data"]["message"] == "Object no.such.model doesn't exist"
    assert "not allowed to modify 'Transfer'" in seen["access_error"]["data"]["message"]
    assert seen["reader_can_read"] == 3
    # Nothing the reader tried was written.
    assert all(p.carrier_tracking_ref is None for p in odoo.sandbox.pickings())
