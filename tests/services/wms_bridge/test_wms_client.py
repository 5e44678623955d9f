"""The WMS client against the WMS sandbox: answers, refusals and every kind of failure."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from tests.runtime.bus_helpers import release_command
from waybill_runtime.outcomes import Outcome, classify
from waybill_runtime.resilience import CircuitOpenError, PartnerTimeout
from waybill_runtime.settings import SettingsError, load_settings
from waybill_sandboxes.server import serve
from waybill_sandboxes.wms import WmsConfig, WmsSandbox
from waybill_wms_bridge.config import WmsBridgeSettings
from waybill_wms_bridge.orders import order_request
from waybill_wms_bridge.wms_client import (
    WmsAuthFailed,
    WmsClient,
    WmsConflict,
    WmsRejected,
    WmsUnavailable,
    open_wms_client,
)
from waybill_wms_bridge.wms_wire import WmsOrderRequest

KEY = "client-test-key"


@contextlib.asynccontextmanager
async def client_and_wms(**settings: Any) -> AsyncIterator[tuple[WmsClient, WmsSandbox]]:
    # Tests that need an order to stay put hold it; the rest run through quickly.
    sandbox = WmsSandbox(WmsConfig(api_key=KEY, stage_delays_s={"accepted": 0.0}))
    async with serve(sandbox.app()) as running:
        options: dict[str, Any] = {
            "wms_url": running.url,
            "wms_api_key": KEY,
            "wms_webhook_secret": "s",
            "wms_retry_attempts": 1,
            "wms_timeout_s": 2.0,
        }
        options.update(settings)
        loaded = load_settings(WmsBridgeSettings, environ={}, service="wms-bridge", **options)
        async with open_wms_client(loaded) as client:
            try:
                yield client, sandbox
            finally:
                for ref in list(sandbox.lifecycle.held()):
                    sandbox.lifecycle.release(ref)


def request(ref: str) -> WmsOrderRequest:
    return order_request(release_command(ref).order, "WH1")


async def test_creating_an_order_twice_returns_the_same_order() -> None:
    async with client_and_wms() as (client, wms):
        first = await client.create_order(request("WH/OUT/1"))
        second = await client.create_order(request("WH/OUT/1"))
        found = await client.find_order("WH/OUT/1")
        by_id = await client.get_order(first.order_id)
    assert first.order_id == second.order_id == by_id.order_id
    assert found is not None and found.order_id == first.order_id
    assert len(wms.warehouse.orders) == 1
    assert [line.sku for line in first.lines] == ["MUG-BLUE", "TEA-EARL"]


async def test_the_same_ref_with_other_content_is_a_permanent_conflict() -> None:
    async with client_and_wms() as (client, _wms):
        await client.create_order(request("WH/OUT/2"))
        changed = msgspec.structs.replace(request("WH/OUT/2"), notes="leave at the door")
        with pytest.raises(WmsConflict) as refused:
            await client.create_order(changed)
    assert refused.value.status == 409
    assert classify(refused.value).outcome is Outcome.DEAD_LETTER


async def test_an_invalid_order_is_refused_for_good_with_the_wms_reason() -> None:
    bad = msgspec.structs.replace(request("WH/OUT/3"), lines=[])
    async with client_and_wms() as (client, _wms):
        with pytest.raises(WmsRejected) as refused:
            await client.create_order(bad)
    assert refused.value.status == 422
    assert "lines" in refused.value.detail
    assert classify(refused.value).outcome is Outcome.DEAD_LETTER


async def test_looking_up_an_unknown_ref_finds_nothing_and_an_unknown_id_is_refused() -> None:
    async with client_and_wms() as (client, _wms):
        assert await client.find_order("WH/OUT/none") is None
        with pytest.raises(WmsRejected) as refused:
            await client.get_order("OO-999999")
    assert refused.value.status == 404


async def test_cancelling_a_packed_order_is_a_conflict() -> None:
    async with client_and_wms() as (client, wms):
        order = await client.create_order(request("WH/OUT/4"))
        await wms.settle()
        assert (await client.get_order(order.order_id)).status == "shipped"
        with pytest.raises(WmsConflict) as refused:
            await client.cancel_order(order.order_id)
    assert "can no longer be cancelled" in refused.value.detail


async def test_the_poll_lists_orders_updated_since_a_moment() -> None:
    async with client_and_wms() as (client, wms):
        wms.lifecycle.hold("WH/OUT/5", "accepted")
        wms.lifecycle.hold("WH/OUT/6", "accepted")
        first = await client.create_order(request("WH/OUT/5"))
        second = await client.create_order(request("WH/OUT/6"))
        everything = await client.orders_updated_since(first.updated_at)
        later = await client.orders_updated_since(second.updated_at)
        future = await client.orders_updated_since(datetime.now(UTC) + timedelta(hours=1))
    assert [o.client_order_ref for o in everything] == ["WH/OUT/5", "WH/OUT/6"]
    assert [o.client_order_ref for o in later] == ["WH/OUT/6"]
    assert future == []


@pytest.mark.parametrize(
    ("fault", "retry_after"),
    [
        pytest.param({"error_rate": 1.0}, None, id="503"),
        pytest.param({"outage": True}, None, id="connection-dropped"),
        pytest.param({"malformed": True}, None, id="garbled-200"),
        pytest.param({"rate_limit": True, "retry_after_s": 7}, 7.0, id="429"),
    ],
)
async def test_a_failing_wms_is_a_transient_error_after_the_configured_tries(
    fault: dict[str, Any], retry_after: float | None
) -> None:
    async with client_and_wms(wms_retry_attempts=2) as (client, wms):
        wms.faults.set("create_order", **fault)
        with pytest.raises(WmsUnavailable) as failed:
            await client.create_order(request("WH/OUT/7"))
    assert classify(failed.value).outcome is Outcome.RETRY
    assert failed.value.retry_after_s == retry_after
    # A 429 asking for longer than we hold a worker is left to the bus after one try.
    assert wms.calls()["create_order"] == (1 if retry_after else 2)
    assert not wms.warehouse.orders


async def test_a_wms_that_does_not_answer_in_time_is_a_partner_timeout() -> None:
    async with client_and_wms(wms_timeout_s=0.2) as (client, wms):
        wms.faults.set("get_order", timeout=True)
        with pytest.raises(PartnerTimeout) as failed:
            await client.get_order("OO-000001")
    assert "the WMS" in str(failed.value)
    assert classify(failed.value).outcome is Outcome.RETRY


async def test_an_unreachable_wms_is_a_transient_error() -> None:
    loaded = load_settings(
        WmsBridgeSettings,
        environ={},
        service="wms-bridge",
        wms_url="http://127.0.0.1:9",  # discard port: nothing listens
        wms_api_key=KEY,
        wms_webhook_secret="s",
        wms_retry_attempts=1,
    )
    async with open_wms_client(loaded) as client:
        with pytest.raises(WmsUnavailable) as failed:
            await client.find_order("WH/OUT/8")
    assert "could not be reached" in str(failed.value)


async def test_a_refused_key_is_retried_not_dead_lettered_and_cleared_by_a_good_answer() -> None:
    async with client_and_wms(wms_retry_attempts=3) as (client, wms):
        wms.config.api_key = "rotated"
        with pytest.raises(WmsAuthFailed) as refused:
            await client.find_order("WH/OUT/9")
        assert client.auth_problem is not None
        assert "WAYBILL_WMS_API_KEY" in client.auth_problem
        assert wms.calls()["list_orders"] == 1  # a wrong key is not retried on the spot
        wms.config.api_key = KEY
        await client.find_order("WH/OUT/9")
    assert classify(refused.value).outcome is Outcome.RETRY
    assert client.auth_problem is None


async def test_the_circuit_opens_after_repeated_failures_and_stops_calling() -> None:
    async with client_and_wms(wms_circuit_failures=2, wms_circuit_reset_s=60) as (client, wms):
        wms.faults.set("list_orders", error_rate=1.0)
        for _ in range(2):
            with pytest.raises(WmsUnavailable):
                await client.find_order("WH/OUT/10")
        calls = wms.calls()["list_orders"]
        with pytest.raises(CircuitOpenError) as open_circuit:
            await client.find_order("WH/OUT/10")
    assert wms.calls()["list_orders"] == calls
    assert classify(open_circuit.value).outcome is Outcome.RETRY


def test_settings_without_the_wms_secrets_name_the_missing_variable() -> None:
    with pytest.raises(SettingsError) as missing:
        load_settings(WmsBridgeSettings, environ={}, service="wms-bridge")
    assert "WAYBILL_WMS_API_KEY" in str(missing.value)
    loaded = load_settings(
        WmsBridgeSettings,
        environ={
            "WAYBILL_WMS_API_KEY": "k",
            "WAYBILL_WMS_WEBHOOK_SECRET": "s",
            "WAYBILL_WMS_RECONCILE_INTERVAL_S": "15",
        },
        service="wms-bridge",
    )
    assert loaded.wms_reconcile_interval_s == 15.0
    with pytest.raises(SettingsError) as bad:
        load_settings(
            WmsBridgeSettings,
            environ={"WAYBILL_WMS_API_KEY": "k", "WAYBILL_WMS_WEBHOOK_SECRET": "s",
                     "WAYBILL_WMS_URL": "ftp://wms"},
            service="wms-bridge",
        )  # fmt: skip
    assert "WAYBILL_WMS_URL" in str(bad.value)
