"""Faults injected on Odoo operations reach real clients as a failing Odoo (or its proxy) would.

Operations are named ``<model>.<method>`` whatever the protocol, and
``common.<method>`` / ``web.*`` otherwise; every call is counted.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.error
import xmlrpc.client
from typing import Any

import aiohttp
import odoorpc
import pytest

from tests.sandboxes.odoo.running import DB, RunningOdoo, running_odoo

CONNECTION_LOST = (urllib.error.URLError, ConnectionError, http.client.HTTPException)


def odoorpc_outcome(port: int, call: str, timeout: float = 30) -> Any:
    """Log in with odoorpc and run one call; returns the result or the exception raised."""
    try:
        client = odoorpc.ODOO("127.0.0.1", port=port, timeout=timeout)
        client.login(DB, "admin", "admin")
        pickings = client.env["stock.picking"]
        if call == "validate":
            return pickings.browse(1).button_validate()
        return pickings.search_count([])
    except Exception as failure:
        return failure


async def test_a_503_on_button_validate_reaches_odoorpc_as_an_http_error(
    odoo: RunningOdoo,
) -> None:
    odoo.sandbox.faults.set("stock.picking.button_validate", error_rate=1.0)
    failure = await asyncio.to_thread(odoorpc_outcome, odoo.port, "validate")
    other_calls_work = await asyncio.to_thread(odoorpc_outcome, odoo.port, "count")

    assert isinstance(failure, urllib.error.HTTPError) and failure.code == 503
    assert other_calls_work == 3
    assert odoo.sandbox.picking("1").state == "assigned"  # the call never ran
    calls = odoo.sandbox.calls()
    assert calls["stock.picking.button_validate"] == 1
    assert calls["common.login"] == 2 and calls["res.users.context_get"] == 2
    assert calls["stock.picking.fields_get"] == 2 and calls["web.version_info"] == 2


async def test_an_outage_drops_the_connection_under_odoorpc(odoo: RunningOdoo) -> None:
    odoo.sandbox.faults.set("stock.picking.search_count", outage=True)
    failure = await asyncio.to_thread(odoorpc_outcome, odoo.port, "count")
    assert isinstance(failure, CONNECTION_LOST)


async def test_a_malformed_answer_breaks_odoorpcs_json_parsing(odoo: RunningOdoo) -> None:
    odoo.sandbox.faults.set("res.users.context_get", malformed=True)
    failure = await asyncio.to_thread(odoorpc_outcome, odoo.port, "count")
    assert isinstance(failure, json.JSONDecodeError)


async def test_a_hung_odoo_times_out_the_client(odoo: RunningOdoo) -> None:
    odoo.sandbox.faults.set("stock.picking.search_count", timeout=True)
    failure = await asyncio.to_thread(odoorpc_outcome, odoo.port, "count", 0.5)
    assert isinstance(failure, TimeoutError | urllib.error.URLError)


async def test_a_rate_limit_storm_answers_429_with_retry_after(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    odoo.sandbox.faults.set("*", rate_limit=True, retry_after_s=7)
    envelope = {
        "jsonrpc": "2.0",
        "method": "call",
        "id": 1,
        "params": {"service": "common", "method": "version", "args": []},
    }
    async with http.post(f"{odoo.url}/jsonrpc", json=envelope) as response:
        assert (response.status, response.headers["Retry-After"]) == (429, "7")
    odoo.sandbox.faults.clear()
    async with http.post(f"{odoo.url}/jsonrpc", json=envelope) as response:
        assert (await response.json())["result"]["server_version_info"][0] == odoo.version


async def test_faults_apply_to_xml_rpc_and_json_2_by_the_same_operation_name(
    http: aiohttp.ClientSession,
) -> None:
    async with running_odoo(version=19) as odoo19:
        odoo19.sandbox.faults.set("stock.picking.write", error_rate=1.0, times=2)

        def over_xmlrpc() -> Any:
            proxy = xmlrpc.client.ServerProxy(f"{odoo19.url}/xmlrpc/2/object")
            with pytest.raises(xmlrpc.client.ProtocolError) as raised:
                proxy.execute_kw(DB, 2, "admin", "stock.picking", "write", [[1], {"origin": "x"}])
            return raised.value.errcode

        xmlrpc_status = await asyncio.to_thread(over_xmlrpc)
        headers = {"Authorization": f"bearer {odoo19.sandbox.admin.api_key}"}
        body = {"ids": [1], "vals": {"origin": "x"}}
        url = f"{odoo19.url}/json/2/stock.picking/write"
        async with http.post(url, json=body, headers=headers) as response:
            json2_status = response.status
        async with http.post(url, json=body, headers=headers) as response:
            after_the_storm = response.status, await response.json()

    assert (xmlrpc_status, json2_status) == (503, 503)
    assert after_the_storm == (200, True)


async def test_faults_can_be_set_over_the_admin_routes(
    odoo: RunningOdoo, http: aiohttp.ClientSession
) -> None:
    async with http.put(f"{odoo.url}/_sandbox/faults/common.login", json={"error_rate": 1}) as r:
        assert r.status == 200
    uid = await asyncio.to_thread(odoorpc_outcome, odoo.port, "count")
    async with http.get(f"{odoo.url}/_sandbox/calls") as r:
        calls = await r.json()
    assert isinstance(uid, urllib.error.HTTPError) and uid.code == 503
    assert calls["common.login"] == 1


async def test_injected_lock_conflicts_fail_like_a_serialization_failure_then_clear(
    http: aiohttp.ClientSession,
) -> None:
    async with running_odoo(version=19) as odoo19:
        sandbox = odoo19.sandbox
        url = f"{odoo19.url}/_sandbox/odoo/lock-conflicts/stock.picking.write"
        async with http.put(url, json={"times": 3}) as response:
            assert response.status == 200
        async with http.put(url, json={"times": -1}) as response:
            assert response.status == 400

        def over_rpc() -> tuple[Any, Any]:
            client = odoorpc.ODOO("127.0.0.1", port=odoo19.port, timeout=30)
            client.login(DB, "admin", "admin")
            with pytest.raises(odoorpc.error.RPCError) as raised:
                client.env["stock.picking"].browse(1).write({"carrier_tracking_ref": "A"})
            proxy = xmlrpc.client.ServerProxy(f"{odoo19.url}/xmlrpc/2/object")
            with pytest.raises(xmlrpc.client.Fault) as fault:
                proxy.execute_kw(DB, 2, "admin", "stock.picking", "write", [[1], {"origin": "B"}])
            return raised.value.info, fault.value

        info, fault = await asyncio.to_thread(over_rpc)
        headers = {"Authorization": f"bearer {sandbox.admin.api_key}"}
        body = {"ids": [1], "vals": {"carrier_tracking_ref": "C"}}
        write = f"{odoo19.url}/json/2/stock.picking/write"
        async with http.post(write, json=body, headers=headers) as response:
            conflict = response.status, await response.json()
        untouched = sandbox.picking("1")
        async with http.post(write, json=body, headers=headers) as response:
            retried = response.status

    # 19: odoo/service/model.py's retrying re-raises the conflict as ConcurrencyError.
    assert info["data"]["name"] == "odoo.exceptions.ConcurrencyError"
    assert "could not serialize" not in info["data"]["message"]
    assert fault.faultCode == 1 and "ConcurrencyError" in fault.faultString
    assert conflict[0] == 409 and conflict[1]["name"] == "odoo.exceptions.ConcurrencyError"
    assert untouched.carrier_tracking_ref is None
    assert retried == 200 and sandbox.picking("1").carrier_tracking_ref == "C"
