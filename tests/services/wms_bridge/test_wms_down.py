"""The WMS failing: commands wait and complete once it is back; a refused key makes us unready."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.services.wms_bridge.harness import wms_and_bridge
from waybill_contracts import SubjectMap
from waybill_contracts.commands import CancelWarehouseOrder
from waybill_contracts.events import WarehouseOrderAccepted, WarehouseOrderCancelled
from waybill_runtime.queries import PingResponse
from waybill_runtime.testing.waiting import eventually
from waybill_wms_bridge.app import service

REFS = ("WH/OUT/00020", "WH/OUT/00021", "WH/OUT/00022")


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"outage": True}, id="connection-dropped"),
        pytest.param({"error_rate": 1.0}, id="503"),
        pytest.param({"rate_limit": True, "retry_after_s": 1}, id="429-retry-after"),
    ],
)
async def test_releases_sent_while_the_wms_fails_all_complete_once_it_recovers(
    nc: NatsClient, nats_url: str, nats_prefix: str, fault: dict[str, Any]
) -> None:
    async with wms_and_bridge(
        nc, nats_url, nats_prefix, wms_circuit_failures=3, wms_circuit_reset_s=0.2
    ) as rig:
        rig.wms.faults.set("create_order", **fault)
        for ref in REFS:
            await rig.release(ref)
        # Several tries per order have failed before the WMS comes back.
        await eventually(
            lambda: _calls(rig.wms.calls(), "create_order"),
            until=lambda n: n >= 2 * len(REFS),
            what="failed creation attempts",
        )
        assert not rig.wms.warehouse.orders
        rig.wms.faults.clear()
        for ref in REFS:
            await rig.wait_for(WarehouseOrderAccepted, ref)
        await rig.commands_settled()
        accepted = await rig.events(WarehouseOrderAccepted)
    assert sorted(a.order_ref for a in accepted) == sorted(REFS)
    assert {ref: rig.wms.warehouse.creations[ref] for ref in REFS} == dict.fromkeys(REFS, 1)
    assert await rig.dead_letters() == []


async def _calls(calls: dict[str, int], operation: str) -> int:
    return calls.get(operation, 0)


async def test_a_cancel_sent_while_the_wms_times_out_completes_once_it_answers(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    ref = "WH/OUT/00023"
    async with wms_and_bridge(nc, nats_url, nats_prefix, wms_timeout_s=0.3) as rig:
        rig.wms.lifecycle.hold(ref, "picked")
        await rig.release(ref)
        await rig.wait_for(WarehouseOrderAccepted, ref)
        rig.wms.faults.set("cancel_order", timeout=True, times=2)
        await rig.send(CancelWarehouseOrder(order_ref=ref, reason="cancelled in Odoo"))
        cancelled = await rig.wait_for(WarehouseOrderCancelled, ref)
        await rig.commands_settled()
        rig.wms.lifecycle.release(ref)
    assert rig.wms.calls()["cancel_order"] >= 3
    assert cancelled[0].order_ref == ref
    assert await rig.dead_letters() == []


async def test_a_refused_api_key_makes_the_bridge_unready_and_commands_wait_for_a_fix(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    ref = "WH/OUT/00024"
    async with (
        wms_and_bridge(nc, nats_url, nats_prefix, wms={"api_key": "a-newer-key"}) as rig,
        aiohttp.ClientSession(rig.bridge_url) as http,
    ):
        await rig.release(ref)

        async def readiness() -> tuple[int, Any]:
            async with http.get("/readyz") as answer:
                return answer.status, await answer.json()

        _status, body = await eventually(
            readiness, until=lambda answer: answer[0] == 503, what="the bridge to be unready"
        )
        wms_check = next(check for check in body["checks"] if check["name"] == "wms")
        assert "WAYBILL_WMS_API_KEY" in wms_check["detail"]
        assert await rig.dead_letters() == []
        rig.wms.config.api_key = "test-wms-key"  # the WMS now takes the bridge's key
        await rig.wait_for(WarehouseOrderAccepted, ref)
        await eventually(
            readiness, until=lambda answer: answer[0] == 200, what="the bridge to be ready"
        )
    assert rig.wms.warehouse.creations[ref] == 1


async def test_the_bridge_answers_ping_with_its_name_and_version(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with wms_and_bridge(nc, nats_url, nats_prefix, version="6.1.2"):
        name = SubjectMap(nats_prefix).query_service_name(service.name)
        reply = await nc.request(f"$SRV.PING.{name}", b"", timeout=5)
    ping = msgspec.json.decode(reply.data, type=PingResponse)
    assert ping.name == name
    assert name.endswith("wms-bridge")
    assert ping.version == "6.1.2"
