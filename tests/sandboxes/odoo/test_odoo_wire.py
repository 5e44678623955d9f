"""The sandbox's wire shapes where clients depend on them: JSON-RPC, web routes, XML-RPC, JSON-2."""

from __future__ import annotations

import xmlrpc.client
from typing import Any

import aiohttp
import pytest

from tests.sandboxes.odoo.running import DB, RunningOdoo, running_odoo


async def rpc(http: aiohttp.ClientSession, url: str, params: dict[str, Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "method": "call", "params": params, "id": 7}
    async with http.post(url, json=body) as response:
        assert response.status == 200
        answer: dict[str, Any] = await response.json()
        return answer


async def execute_kw(
    http: aiohttp.ClientSession, odoo: RunningOdoo, *args: Any, password: str = "admin"
) -> dict[str, Any]:
    params = {"service": "object", "method": "execute_kw", "args": [DB, 2, password, *args]}
    return await rpc(http, f"{odoo.url}/jsonrpc", params)


async def test_jsonrpc_common_answers_version_login_and_authenticate(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    url = f"{odoo.url}/jsonrpc"
    version = await rpc(http, url, {"service": "common", "method": "version", "args": []})
    good = await rpc(
        http, url, {"service": "common", "method": "login", "args": [DB, "admin", "admin"]}
    )
    bad = await rpc(http, url, {"service": "common", "method": "login", "args": [DB, "admin", "x"]})
    key = odoo.sandbox.admin.api_key
    by_key = await rpc(
        http, url, {"service": "common", "method": "authenticate", "args": [DB, "admin", key, {}]}
    )
    wrong_db = await rpc(
        http, url, {"service": "common", "method": "login", "args": ["nope", "a", "b"]}
    )

    assert version == {
        "jsonrpc": "2.0",
        "id": 7,
        "result": {
            "server_version": f"{odoo.version}.0",
            "server_version_info": [odoo.version, 0, 0, "final", 0, ""],
            "server_serie": f"{odoo.version}.0",
            "protocol_version": 1,
        },
    }
    assert good["result"] == 2 and by_key["result"] == 2
    assert bad == {"jsonrpc": "2.0", "id": 7, "result": False}  # login never raises
    assert wrong_db["error"]["data"]["name"] == "psycopg2.OperationalError"


async def test_jsonrpc_error_object_has_odoo_shape_and_version_code(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    answer = await execute_kw(http, odoo, "res.partner", "search", [[]], password="wrong")

    assert set(answer) == {"jsonrpc", "id", "error"}
    assert answer["error"]["code"] == (0 if odoo.version >= 19 else 200)
    assert answer["error"]["message"] == "Odoo Server Error"
    data = answer["error"]["data"]
    assert data["name"] == "odoo.exceptions.AccessDenied"
    assert data["message"] == "Access Denied"
    assert data["arguments"] == ["Access Denied"]
    assert data["context"] == {}
    assert data["debug"].startswith("Traceback")


async def test_jsonrpc_rejects_a_body_that_is_not_json_with_plain_400(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    for body in (b"{not json", b"[1, 2]", b'{"params": 5}'):
        async with http.post(f"{odoo.url}/jsonrpc", data=body) as response:
            assert response.status == 400
            assert "400 Bad Request" in await response.text()


async def test_jsonrpc_unknown_service_method_and_arity_are_server_errors(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    url = f"{odoo.url}/jsonrpc"
    service = await rpc(http, url, {"service": "nope", "method": "x", "args": []})
    method = await rpc(http, url, {"service": "common", "method": "nope", "args": []})
    arity = await rpc(http, url, {"service": "common", "method": "login", "args": [DB]})
    private = await execute_kw(http, odoo, "res.partner", "_private", [])
    unknown = await execute_kw(http, odoo, "res.partner", "fly", [])
    no_ids = await execute_kw(http, odoo, "res.partner", "write", [])

    assert service["error"]["data"]["name"] == "builtins.KeyError"
    assert method["error"]["data"]["name"] == "builtins.NameError"
    assert arity["error"]["data"]["name"] == "builtins.TypeError"
    assert private["error"]["data"]["name"] == "odoo.exceptions.AccessError"
    assert unknown["error"]["data"]["name"] == "builtins.AttributeError"
    assert no_ids["error"]["data"]["name"] == "builtins.TypeError"


async def test_jsonrpc_reads_many2one_as_pair_or_bare_id_per_load(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    pair = await execute_kw(http, odoo, "stock.picking", "read", [[1], ["partner_id", "move_ids"]])
    bare = await execute_kw(
        http, odoo, "stock.picking", "read", [[1]], {"fields": ["partner_id"], "load": None}
    )
    empty = await execute_kw(http, odoo, "stock.picking", "read", [[1], ["carrier_tracking_ref"]])

    partner = odoo.sandbox.registry.value("stock.picking", 1, "partner_id")
    name = odoo.sandbox.registry.display_name("res.partner", partner)
    assert pair["result"] == [{"id": 1, "partner_id": [partner, name], "move_ids": [1, 2]}]
    assert bare["result"] == [{"id": 1, "partner_id": partner}]
    assert empty["result"] == [{"id": 1, "carrier_tracking_ref": False}]


async def test_web_read_reads_related_records_in_place_per_specification(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    named: dict[str, Any] = {"fields": {"display_name": {}}}
    spec = {
        "name": {},
        "partner_id": {"fields": {"name": {}}},
        "move_ids": {"fields": {"product_id": named, "product_uom_qty": {}}},
        "sale_id": {},
        "carrier_id": named,
    }
    read = await execute_kw(http, odoo, "stock.picking", "web_read", [[1]], {"specification": spec})
    found = await execute_kw(
        http, odoo, "stock.picking", "web_search_read", [[("id", "=", 1)], {"name": {}}]
    )
    none = await execute_kw(
        http, odoo, "stock.picking", "web_search_read", [[("id", "=", 0)], {"name": {}}]
    )

    registry = odoo.sandbox.registry
    partner = registry.value("stock.picking", 1, "partner_id")
    [row] = read["result"]
    assert row["partner_id"] == {
        "id": partner,
        "name": registry.value("res.partner", partner, "name"),
    }
    assert row["sale_id"] == registry.value("stock.picking", 1, "sale_id")  # no fields: the id
    carrier = registry.value("stock.picking", 1, "carrier_id")
    assert row["carrier_id"] == {"id": carrier, "display_name": "Carrier A"}
    assert [m["id"] for m in row["move_ids"]] == [1, 2]
    product = registry.value("stock.move", 1, "product_id")
    assert row["move_ids"][0]["product_id"] == {
        "id": product,
        "display_name": registry.display_name("product.product", product),
    }
    assert found["result"] == {"length": 1, "records": [{"id": 1, "name": row["name"]}]}
    assert none["result"] == {"length": 0, "records": []}


async def test_web_session_authenticate_then_call_kw_until_the_session_expires(
    odoo: RunningOdoo,
) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # the sandbox listens on an IP address
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        info = await rpc(http, f"{odoo.url}/web/webclient/version_info", {})
        login = f"{odoo.url}/web/session/authenticate"
        denied = await rpc(http, login, {"db": DB, "login": "admin", "password": "nope"})
        no_db = await rpc(http, login, {"db": "other", "login": "admin", "password": "admin"})
        session = await rpc(http, login, {"db": DB, "login": "admin", "password": "admin"})
        call = {"model": "stock.picking", "method": "search_count", "args": [[]], "kwargs": {}}
        counted = await rpc(
            http, f"{odoo.url}/web/dataset/call_kw/stock.picking/search_count", call
        )
        current = await rpc(http, f"{odoo.url}/web/session/get_session_info", {})
        odoo.sandbox.expire_sessions()
        expired = await rpc(http, f"{odoo.url}/web/dataset/call_kw", call)
        destroyed = await rpc(http, f"{odoo.url}/web/session/destroy", {})

    assert info["result"]["server_serie"] == f"{odoo.version}.0"
    assert denied["error"]["data"]["name"] == "odoo.exceptions.AccessDenied"
    assert no_db["error"]["data"]["name"] == "odoo.exceptions.AccessError"
    assert session["result"]["uid"] == 2
    assert session["result"]["user_context"]["lang"] == "en_US"
    assert counted["result"] == 3
    assert current["result"]["username"] == "admin"
    assert expired["error"]["code"] == 100
    assert expired["error"]["message"] == "Odoo Session Expired"
    assert expired["error"]["data"]["name"] == "odoo.http.SessionExpiredException"
    assert "result" not in destroyed and "error" not in destroyed  # None: no result key


async def xmlrpc_call(
    http: aiohttp.ClientSession, url: str, method: str, *params: Any
) -> tuple[Any, ...]:
    body = xmlrpc.client.dumps(params, method)
    async with http.post(url, data=body, headers={"Content-Type": "text/xml"}) as response:
        assert response.status == 200
        loaded: tuple[Any, ...] = xmlrpc.client.loads(await response.read())[0]
        return loaded


async def xmlrpc_fault(http: aiohttp.ClientSession, url: str, method: str, *params: Any) -> Any:
    with pytest.raises(xmlrpc.client.Fault) as raised:
        await xmlrpc_call(http, url, method, *params)
    return raised.value


async def object_fault(
    http: aiohttp.ClientSession,
    odoo: RunningOdoo,
    model: str,
    method: str,
    args: list[Any],
    *,
    uid: int = 2,
    password: str = "admin",
    endpoint: str = "/xmlrpc/2/object",
) -> Any:
    """The fault of an ``execute_kw`` call over XML-RPC (the test fails if there is none)."""
    url = f"{odoo.url}{endpoint}"
    return await xmlrpc_fault(http, url, "execute_kw", DB, uid, password, model, method, args)


async def object_result(
    http: aiohttp.ClientSession, odoo: RunningOdoo, model: str, method: str, args: list[Any]
) -> Any:
    url = f"{odoo.url}/xmlrpc/2/object"
    (result,) = await xmlrpc_call(http, url, "execute_kw", DB, 2, "admin", model, method, args)
    return result


async def test_xmlrpc_2_fault_codes_follow_odoo(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    reader = odoo.sandbox.user("reader")
    generic = await object_fault(http, odoo, "res.partner", "search", [[("nope", "=", 1)]])
    await object_result(http, odoo, "stock.picking", "action_cancel", [[1]])
    user = await object_fault(http, odoo, "stock.picking", "button_validate", [[1]])
    missing = await object_fault(http, odoo, "stock.picking", "write", [[999], {"origin": "x"}])
    denied = await object_fault(http, odoo, "res.partner", "search", [[]], password="wrong")
    forbidden = await object_fault(
        http, odoo, "res.partner", "unlink", [[1]], uid=reader.uid, password="reader"
    )

    assert generic.faultCode == 1 and generic.faultString.startswith("Traceback")
    assert (user.faultCode, missing.faultCode) == (2, 2)
    assert "cancelled" in user.faultString
    assert denied.faultCode == 3 and denied.faultString == "Access Denied"
    assert forbidden.faultCode == 4 and "not allowed to delete 'Contact'" in forbidden.faultString


async def test_xmlrpc_cannot_marshal_a_method_returning_none(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    fault = await object_fault(http, odoo, "sale.order", "action_lock", [[1]])
    # The lock itself went through before the answer failed, as in Odoo.
    locked = await object_fault(http, odoo, "sale.order", "action_cancel", [[1]])
    legacy = await object_fault(
        http, odoo, "sale.order", "action_unlock", [[1]], endpoint="/xmlrpc/object"
    )
    cancelled = await object_result(http, odoo, "sale.order", "action_cancel", [[1]])

    assert fault.faultCode == 1 and "cannot marshal None" in fault.faultString
    assert locked.faultCode == 2 and "locked order" in locked.faultString
    assert "cannot marshal None" in legacy.faultCode
    assert cancelled is True
    assert odoo.sandbox.order("S00001").state == "cancel"


async def test_xmlrpc_common_and_db_services(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    (version,) = await xmlrpc_call(http, f"{odoo.url}/xmlrpc/2/common", "version")
    (uid,) = await xmlrpc_call(http, f"{odoo.url}/xmlrpc/common", "login", DB, "admin", "admin")
    (bad,) = await xmlrpc_call(http, f"{odoo.url}/xmlrpc/2/common", "login", DB, "admin", "x")
    (databases,) = await xmlrpc_call(http, f"{odoo.url}/xmlrpc/2/db", "list")
    async with http.post(f"{odoo.url}/xmlrpc/2/common", data=b"<not-xml") as response:
        garbled = response.status

    assert version["server_version_info"][0] == odoo.version
    assert (uid, bad, databases) == (2, False, [DB])
    assert garbled == 400


async def json2(
    http: aiohttp.ClientSession, url: str, path: str, key: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"bearer {key}", "X-Odoo-Database": DB}
    async with http.post(f"{url}/json/2/{path}", json=body or {}, headers=headers) as response:
        if response.content_type != "application/json":
            return response.status, await response.text()
        return response.status, await response.json()


async def test_json2_statuses_and_bodies(http: aiohttp.ClientSession) -> None:
    async with running_odoo(version=19) as odoo19:
        url, sandbox = odoo19.url, odoo19.sandbox
        key, reader_key = sandbox.admin.api_key, sandbox.user("reader").api_key
        first_ready = {
            "domain": [["state", "=", "assigned"]],
            "fields": ["name"],
            "limit": 1,
            "order": "id",
        }
        ok = await json2(http, url, "stock.picking/search_read", key, first_ready)
        bad_key = await json2(http, url, "res.partner/search", "nope", {"domain": []})
        forbidden = await json2(
            http, url, "res.partner/write", reader_key, {"ids": [1], "vals": {"name": "x"}}
        )
        no_model = await json2(http, url, "no.model/search", key, {"domain": []})
        missing = await json2(
            http, url, "stock.picking/write", key, {"ids": [999], "vals": {"origin": "x"}}
        )
        model_with_ids = await json2(
            http, url, "res.partner/search", key, {"ids": [1], "domain": []}
        )
        positional = await json2(http, url, "res.partner/search", key, {"args": [[]]})
        validation = await json2(
            http, url, "res.partner/create", key, {"vals_list": [{"city": "x"}]}
        )
        server_error = await json2(
            http, url, "res.partner/search", key, {"domain": [["x", "=", 1]]}
        )
        created = await json2(http, url, "res.partner/create", key, {"vals_list": {"name": "A"}})
        auth = {"Authorization": f"bearer {key}"}
        search = f"{url}/json/2/res.partner/search"
        async with http.post(search, data=b"{oops", headers=auth) as response:
            unparsable = response.status, await response.json()
        async with http.post(f"{url}/json/2/res.partner/search", json={}) as response:
            anonymous = response.status, response.headers.get("WWW-Authenticate")

    assert ok == (200, [{"id": 1, "name": "WH/OUT/00001"}])
    assert bad_key[0] == 401
    assert bad_key[1]["name"] == "werkzeug.exceptions.Unauthorized"
    assert bad_key[1]["message"] == "Invalid apikey"
    assert bad_key[1]["arguments"] == ["Invalid apikey", 401]
    assert set(bad_key[1]) == {"name", "message", "arguments", "context", "debug"}
    assert (forbidden[0], forbidden[1]["name"]) == (403, "odoo.exceptions.AccessError")
    assert (no_model[0], no_model[1]["name"]) == (404, "werkzeug.exceptions.NotFound")
    assert (missing[0], missing[1]["name"]) == (404, "odoo.exceptions.MissingError")
    assert model_with_ids[0] == 422
    assert model_with_ids[1]["message"] == "cannot call res.partner.search with ids"
    assert positional[0] == 422  # JSON-2 has no positional arguments
    assert (validation[0], validation[1]["name"]) == (422, "odoo.exceptions.ValidationError")
    assert (server_error[0], server_error[1]["name"]) == (500, "builtins.ValueError")
    assert created[0] == 200 and isinstance(created[1], list) and len(created[1]) == 1
    assert unparsable[0] == 400 and unparsable[1]["name"] == "werkzeug.exceptions.BadRequest"
    assert anonymous == (401, "Bearer")


async def test_web_version_and_api_documentation(http: aiohttp.ClientSession) -> None:
    async with running_odoo(version=19) as odoo19:
        key = odoo19.sandbox.admin.api_key
        async with http.get(f"{odoo19.url}/web/version") as response:
            version = await response.json()
        headers = {"Authorization": f"Bearer {key}"}
        async with http.get(f"{odoo19.url}/doc-bearer/stock.picking.json", headers=headers) as r:
            doc = await r.json()
        async with http.get(f"{odoo19.url}/doc-bearer/no.model.json", headers=headers) as r:
            unknown = r.status
        async with http.get(f"{odoo19.url}/doc-bearer/stock.picking.json") as r:
            anonymous = r.status

    assert version == {"version_info": [19, 0, 0, "final", 0, ""], "version": "19.0"}
    assert doc["model"] == "stock.picking" and doc["name"] == "Transfer"
    assert list(doc["methods"]["search"]["parameters"]) == ["domain", "offset", "limit", "order"]
    assert doc["methods"]["search"]["api"] == ["model"]
    assert "api" not in doc["methods"]["button_validate"]
    assert doc["methods"]["message_post"]["parameters"]["body"]["kind"] == "KEYWORD_ONLY"
    assert doc["fields"]["move_ids"]["relation"] == "stock.move"
    assert (unknown, anonymous) == (404, 401)


async def test_json2_does_not_exist_before_odoo_19(http: aiohttp.ClientSession) -> None:
    async with running_odoo(version=18) as odoo18:
        status, _body = await json2(http, odoo18.url, "res.partner/search", "k", {"domain": []})
    assert status == 404
