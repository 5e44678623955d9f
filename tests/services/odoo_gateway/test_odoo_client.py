"""The Odoo client on both protocols: login, version, error mapping, in-flight and per-record
bounds, against the Odoo sandbox."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import pytest
import yarl

from tests.services.odoo_gateway.stage import OdooStage, odoo_stage
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.gateway import odoo_client_for
from waybill_odoo_gateway.odoo_client import OdooHttpClient
from waybill_odoo_gateway.odoo_errors import (
    OdooLoginRejected,
    OdooRefused,
    OdooServerError,
    OdooUnavailable,
)
from waybill_odoo_gateway.odoo_protocols import AutoProtocolOdoo
from waybill_runtime.local.ports import free_port
from waybill_runtime.outcomes import Outcome, classify
from waybill_runtime.settings import load_settings


def settings_for(stage: OdooStage, **overrides: Any) -> OdooGatewaySettings:
    return load_settings(
        OdooGatewaySettings,
        environ={},
        service="odoo-gateway",
        **stage.gateway_settings(**overrides),
    )


@asynccontextmanager
async def client(
    stage: OdooStage, **overrides: Any
) -> AsyncIterator[OdooHttpClient | AutoProtocolOdoo]:
    odoo = odoo_client_for(settings_for(stage, **overrides))
    try:
        yield odoo
    finally:
        await odoo.close()


async def test_client_detects_the_version_and_logs_in(stage: OdooStage) -> None:
    async with client(stage) as odoo:
        assert not odoo.ready
        await odoo.connect()
        assert odoo.dialect.major == stage.version
        assert odoo.uid == stage.sandbox.admin.uid
        assert odoo.ready
        assert odoo.status.startswith(f"logged in to Odoo {stage.version}.0 at {stage.url}")


async def test_calls_parse_no_url(stage: OdooStage, monkeypatch: pytest.MonkeyPatch) -> None:
    async with client(stage) as odoo:
        await odoo.call("res.partner", "search", domain=[], limit=1)  # logged in, path known
        parsed: list[str] = []
        real_new = yarl.URL.__new__

        def counting_new(cls: type[yarl.URL], val: object = "", **options: Any) -> yarl.URL:
            if isinstance(val, str):
                parsed.append(val)
            return real_new(cls, val, **options)  # type: ignore[arg-type]

        monkeypatch.setattr(yarl.URL, "__new__", counting_new)
        for _ in range(5):
            await odoo.call("res.partner", "search", domain=[], limit=1)
    # The client keeps each path's URL; given a string, aiohttp parsed it on every
    # call (five before), about a tenth of a call's CPU here.
    assert parsed == []


def _entered(frames: Counter[str]) -> Callable[[FrameType, str, Any], None]:
    """A profile hook counting the client's logins awaited and the ``contextlib`` context
    managers entered (the client's and the runtime's bounds are made with it)."""

    def hook(frame: FrameType, event: str, _arg: Any) -> None:
        code = frame.f_code
        if event != "call":
            return
        if code.co_name == "connect" and "waybill_odoo_gateway" in code.co_filename:
            frames["connect"] += 1
        elif code.co_name == "__aenter__" and code.co_filename.endswith("contextlib.py"):
            frames["context managers"] += 1  # asynccontextmanager's and AsyncExitStack's

    return hook


@pytest.mark.parametrize("protocol", ["auto", "jsonrpc"])
async def test_a_call_awaits_no_login_and_holds_no_lock_it_does_not_need(
    stage17: OdooStage, protocol: str
) -> None:
    picking = stage17.sandbox.picking(stage17.new_order().pickings[0])
    async with client(stage17, odoo_protocol=protocol) as odoo:
        await odoo.connect()
        counted: dict[str, Counter[str]] = {"read": Counter(), "write": Counter()}
        arguments: dict[str, dict[str, Any]] = {"read": {"fields": ["name"]}, "write": {"vals": {}}}
        for method, named in arguments.items():
            sys.setprofile(_entered(counted[method]))
            try:
                await odoo.call("stock.picking", method, [picking.id], **named)
            finally:
                sys.setprofile(None)
    # Logged in: no login awaited per call (3 before with auto, 1 without). A read holds
    # only its place among the calls in flight (3 context managers before: a stack of
    # record locks, empty); a write to one record, that record's lock and its place
    # (4 before: the lock in a stack).
    assert counted == {
        "read": Counter({"context managers": 1}),
        "write": Counter({"context managers": 2}),
    }


async def test_configured_version_is_used_without_asking_odoo(stage17: OdooStage) -> None:
    async with client(stage17, odoo_version=16) as odoo:
        await odoo.connect()
        assert odoo.dialect.move_done_field == "quantity_done"
    assert "web.version_info" not in stage17.sandbox.calls()


async def test_wrong_password_is_one_clear_line_naming_what_to_check(
    stage17: OdooStage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="waybill.odoo")
    async with client(stage17, odoo_password="not-the-password") as odoo:
        for _ in range(3):
            with pytest.raises(OdooLoginRejected) as rejected:
                await odoo.connect()
        assert not odoo.ready
    line = (
        f"Odoo at {stage17.url} rejected login 'admin' for db 'waybill': "
        "check WAYBILL_ODOO_LOGIN/PASSWORD (or WAYBILL_ODOO_API_KEY)"
    )
    assert str(rejected.value) == line
    assert odoo.status == line
    assert [record.getMessage() for record in caplog.records] == [line]  # said once
    assert classify(rejected.value).outcome is Outcome.RETRY


async def test_wrong_api_key_on_json2_names_the_api_key_setting() -> None:
    async with (
        odoo_stage(version=19, protocol="json2") as stage,
        client(stage, odoo_api_key="0" * 40) as odoo,
    ):
        with pytest.raises(OdooLoginRejected) as rejected:
            await odoo.connect()
    assert str(rejected.value).endswith("check WAYBILL_ODOO_API_KEY")


async def test_json2_against_an_odoo_without_it_says_to_use_jsonrpc(stage17: OdooStage) -> None:
    async with client(stage17, odoo_protocol="json2", odoo_api_key="k" * 40) as odoo:
        with pytest.raises(OdooUnavailable, match=r"has no JSON-2 API.*WAYBILL_ODOO_PROTOCOL"):
            await odoo.connect()


async def test_unknown_database_is_reported_at_login(stage17: OdooStage) -> None:
    async with client(stage17, odoo_db="nope") as odoo:
        with pytest.raises(OdooUnavailable, match="could not log in to db 'nope'"):
            await odoo.connect()
        assert not odoo.ready


async def test_url_without_odoo_says_to_check_the_url(stage17: OdooStage) -> None:
    async with client(stage17, odoo_url=f"{stage17.url}/not-odoo") as odoo:
        with pytest.raises(OdooUnavailable, match="check WAYBILL_ODOO_URL"):
            await odoo.connect()


async def test_nothing_listening_is_unreachable_and_retried(stage17: OdooStage) -> None:
    async with client(stage17, odoo_url=f"http://127.0.0.1:{free_port()}") as odoo:
        with pytest.raises(OdooUnavailable, match="unreachable") as down:
            await odoo.connect()
        assert odoo.status.startswith("Odoo at http://127.0.0.1:")
    assert classify(down.value).outcome is Outcome.RETRY


async def test_a_call_odoo_does_not_answer_in_time_is_unavailable(stage17: OdooStage) -> None:
    async with client(stage17, odoo_timeout_s=0.2) as odoo:
        await odoo.connect()
        stage17.sandbox.faults.set("stock.picking.search_read", timeout=True)
        with pytest.raises(OdooUnavailable, match=r"did not answer within 0\.2 s"):
            await odoo.call("stock.picking", "search_read", domain=[], fields=["name"])
        assert not odoo.ready
        stage17.sandbox.faults.clear()
        await odoo.call("stock.picking", "search_read", domain=[], fields=["name"])
        assert odoo.ready


@pytest.mark.parametrize(
    "fault", [{"error_rate": 1.0}, {"outage": True}, {"malformed": True}, {"rate_limit": True}]
)
async def test_odoo_misbehaving_is_unavailable_not_a_refusal(
    stage: OdooStage, fault: dict[str, Any]
) -> None:
    async with client(stage) as odoo:
        await odoo.connect()
        stage.sandbox.faults.set("stock.picking.search_read", **fault)
        with pytest.raises(OdooUnavailable) as down:
            await odoo.call("stock.picking", "search_read", domain=[], fields=["name"])
    assert classify(down.value).outcome is Outcome.RETRY
    if fault.get("rate_limit"):
        assert down.value.retry_after_s == 1.0


async def test_lock_conflict_is_retried(stage: OdooStage) -> None:
    picking = stage.sandbox.picking(stage.new_order().pickings[0])
    stage.sandbox.registry.inject_lock_conflicts("stock.picking.write", times=1)
    async with client(stage) as odoo:
        with pytest.raises(OdooUnavailable, match="lock conflict"):
            await odoo.call("stock.picking", "write", [picking.id], vals={"priority": "1"})
        assert await odoo.call("stock.picking", "write", [picking.id], vals={"priority": "1"})


async def test_business_refusals_are_permanent_with_odoos_message(stage: OdooStage) -> None:
    order = stage.new_order()
    picking = stage.sandbox.picking(order.pickings[0])
    stage.sandbox.cancel_order(order.name)
    async with client(stage) as odoo:
        with pytest.raises(OdooRefused) as user_error:
            await odoo.call("stock.picking", "button_validate", [picking.id])
        with pytest.raises(OdooRefused) as missing:
            await odoo.call("stock.picking", "write", [9999], vals={"priority": "1"})
    assert str(user_error.value) == (
        "Odoo refused: UserError: You cannot validate a transfer that is cancelled."
    )
    assert str(missing.value).startswith("Odoo refused: MissingError: Record does not exist")
    assert classify(user_error.value).outcome is Outcome.DEAD_LETTER


async def test_unknown_method_is_not_retried_forever(stage: OdooStage) -> None:
    async with client(stage) as odoo:
        with pytest.raises((OdooServerError, OdooRefused)) as failed:
            await odoo.call("stock.picking", "no_such_method", [1])
    assert "no_such_method" in str(failed.value)


async def test_password_changed_while_running_makes_the_client_log_in_again(
    stage17: OdooStage,
) -> None:
    admin = stage17.sandbox.admin
    async with client(stage17) as odoo:
        await odoo.connect()
        admin.password = "changed-by-someone"
        with pytest.raises(OdooLoginRejected):
            await odoo.call("stock.picking", "search_read", domain=[], fields=["name"])
        assert odoo.uid is None and not odoo.ready
        with pytest.raises(OdooLoginRejected):
            await odoo.connect()


async def test_at_most_max_in_flight_calls_reach_odoo_at_once(stage: OdooStage) -> None:
    stage.sandbox.faults.set("stock.picking.search_read", latency_s=0.1)
    async with client(stage, odoo_max_in_flight=3) as odoo:
        await odoo.connect()
        await asyncio.gather(
            *(
                odoo.call("stock.picking", "search_read", domain=[], fields=["name"])
                for _ in range(10)
            )
        )
    assert stage.meter.most == 3


async def test_writes_to_one_record_never_overlap_while_others_proceed(
    stage17: OdooStage,
) -> None:
    stage = stage17
    first, second = (stage.sandbox.picking(stage.new_order().pickings[0]) for _ in range(2))
    stage.sandbox.faults.set("stock.picking.write", latency_s=0.1)
    async with client(stage, odoo_max_in_flight=8) as odoo:
        await asyncio.gather(
            *(
                odoo.call("stock.picking", "write", [picking.id], vals={"priority": "1"})
                for picking in (first, second, first, second, first, second)
            )
        )
    assert stage.meter.most_writes_on_one_record == 1
    assert stage.meter.most >= 2  # the two pickings were written at the same time


async def test_a_read_on_a_dropped_connection_is_sent_again_once(stage: OdooStage) -> None:
    async with client(stage) as odoo:
        await odoo.connect()
        stage.sandbox.faults.set("stock.picking.search_read", outage=True, times=1)
        assert await odoo.call("stock.picking", "search_read", domain=[], fields=["name"]) == []
        stage.sandbox.faults.set("stock.picking.write", outage=True, times=1)
        with pytest.raises(OdooUnavailable, match="unreachable"):
            await odoo.call("stock.picking", "write", [1], vals={"priority": "1"})
    calls = stage.sandbox.calls()
    assert (calls["stock.picking.search_read"], calls["stock.picking.write"]) == (2, 1)


async def _read_pickings(odoo: Any, times: int) -> None:
    await asyncio.gather(
        *(
            odoo.call("stock.picking", "search_read", domain=[], fields=["name"])
            for _ in range(times)
        )
    )


async def test_calls_in_flight_grow_while_odoo_answers_fast(stage: OdooStage) -> None:
    stage.sandbox.faults.set("stock.picking.search_read", latency_s=0.05)
    async with client(stage, odoo_max_in_flight=12) as odoo:
        await odoo.connect()
        assert odoo.in_flight_cap == 4  # where it starts
        await _read_pickings(odoo, 8)
        assert stage.meter.most == 4
        for _ in range(6):
            await _read_pickings(odoo, 12)
        assert odoo.in_flight_cap == 12
    assert stage.meter.most == 12


async def test_lock_conflicts_halve_the_calls_in_flight(stage17: OdooStage) -> None:
    stage = stage17
    picking = stage.sandbox.picking(stage.new_order().pickings[0])
    async with client(stage, odoo_max_in_flight=16) as odoo:
        await odoo.connect()
        for _ in range(8):
            await _read_pickings(odoo, 16)
        grown = odoo.in_flight_cap
        assert grown > 4
        stage.sandbox.registry.inject_lock_conflicts("stock.picking.write", times=1)
        with pytest.raises(OdooUnavailable, match="lock conflict"):
            await odoo.call("stock.picking", "write", [picking.id], vals={"priority": "1"})
        assert odoo.in_flight_cap == grown // 2
