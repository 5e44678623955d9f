"""Readiness follows Odoo (reachable and logged in), the picking_status query, and PING."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.services.odoo_gateway.stage import OdooStage
from waybill_contracts import SubjectMap
from waybill_contracts.queries import PickingStatusRequest, PickingStatusResponse
from waybill_runtime.queries import PingResponse, QueryError, ask
from waybill_runtime.testing.waiting import eventually


def _odoo_check(readyz: dict[str, Any]) -> dict[str, Any]:
    checks: list[dict[str, Any]] = [c for c in readyz["checks"] if c["name"] == "odoo"]
    [check] = checks
    return check


async def test_rejected_login_leaves_the_gateway_up_not_ready_with_one_clear_line(
    stage: OdooStage, nats_url: str, nats_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waybill.odoo")
    user = stage.sandbox.admin
    wrong = {"odoo_password": "wrong-password"}
    if stage.protocol == "json2":
        wrong = {"odoo_api_key": "f" * 40}
    async with stage.gateway(nats_url, nats_prefix, **wrong):
        await eventually(
            lambda: _logins(stage),
            until=lambda n: n >= 3,
            what="the gateway to try logging in again",
        )
        readyz = await stage.ready()
        # Someone fixes the credentials in Odoo; the gateway logs in by itself.
        if stage.protocol == "json2":
            user.api_key = "f" * 40
        else:
            user.password = "wrong-password"
        ready_again = await eventually(
            stage.ready, until=lambda r: r["status"] == "ready", what="readiness"
        )
    check = "WAYBILL_ODOO_API_KEY" if stage.protocol == "json2" else "WAYBILL_ODOO_LOGIN/PASSWORD"
    line = f"Odoo at {stage.url} rejected login 'admin' for db 'waybill': check {check}"
    assert readyz["status"] == "not ready"
    assert _odoo_check(readyz)["ok"] is False
    # /readyz answers anyone: what to check, not where or as whom; the log has it all.
    assert _odoo_check(readyz)["detail"].startswith(f"Odoo rejected the login: check {check}")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(line)
    assert _odoo_check(ready_again)["detail"].startswith("logged in to Odoo")


async def test_gateway_is_not_ready_while_odoo_is_down_and_ready_once_it_is_back(
    stage17: OdooStage, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    stage.sandbox.faults.set("*", outage=True)
    async with stage.gateway(nats_url, nats_prefix):
        down = await eventually(
            stage.ready,
            until=lambda r: "unreachable" in _odoo_check(r)["detail"],
            what="the gateway to notice Odoo is down",
        )
        stage.sandbox.faults.clear()
        up = await eventually(stage.ready, until=lambda r: r["status"] == "ready", what="ready")
    assert down["status"] == "not ready"
    assert _odoo_check(up)["ok"] is True


async def test_picking_status_reads_the_picking_from_odoo(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subject = SubjectMap(nats_prefix).query_subject("odoo-gateway", "picking_status")
    picking = stage.sandbox.picking(stage.new_order().pickings[0])
    async with stage.gateway(nats_url, nats_prefix):
        found = await ask(
            nc,
            subject,
            PickingStatusRequest(order_ref=picking.name, odoo_picking_id=picking.id),
            PickingStatusResponse,
            timeout=10,
        )
        unknown = await ask(
            nc,
            subject,
            PickingStatusRequest(order_ref="WH/OUT/99999", odoo_picking_id=99999),
            PickingStatusResponse,
            timeout=10,
        )
    assert (found.found, found.state, found.order_ref) == (True, "assigned", picking.name)
    assert found.carrier_tracking_ref is None and found.date_done is None
    assert (unknown.found, unknown.state, unknown.odoo_picking_id) == (False, None, 99999)


async def test_picking_status_while_odoo_is_down_is_a_503(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subject = SubjectMap(nats_prefix).query_subject("odoo-gateway", "picking_status")
    async with stage17.gateway(nats_url, nats_prefix):
        stage17.sandbox.faults.set("*", error_rate=1.0)
        with pytest.raises(QueryError) as refused:
            await ask(
                nc,
                subject,
                PickingStatusRequest(order_ref="WH/OUT/00001", odoo_picking_id=1),
                PickingStatusResponse,
                timeout=10,
            )
    assert refused.value.code == 503
    assert refused.value.description.startswith("Odoo is unavailable")


async def test_gateway_answers_ping_with_its_name_and_version(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    name = SubjectMap(nats_prefix).query_service_name("odoo-gateway")
    async with stage17.gateway(nats_url, nats_prefix, version="1.4.2"):
        reply = await nc.request(f"$SRV.PING.{name}", b"", timeout=5)
    ping = msgspec.json.decode(reply.data, type=PingResponse)
    assert (ping.name, ping.version) == (name, "1.4.2")
    assert ping.metadata["service"] == "odoo-gateway"


async def _logins(stage: OdooStage) -> int:
    calls = stage.sandbox.calls()
    return calls.get("common.login", 0) + calls.get("res.users.context_get", 0)
