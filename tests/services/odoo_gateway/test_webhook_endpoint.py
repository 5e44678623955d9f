"""POST /webhooks/odoo/<token>: who may send, what is accepted, and what is refused."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client as NatsClient
from opentelemetry.trace import SpanKind

from tests.services.odoo_gateway.stage import PATIENCE, TOKEN, OdooStage, published
from waybill_contracts.events import OrderReleased
from waybill_runtime.testing.tracing import recorded_spans
from waybill_runtime.testing.waiting import eventually


async def _post(stage: OdooStage, path: str, **request: Any) -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession(timeout=PATIENCE) as session,
        session.post(f"{stage.gateway_url}{path}", **request) as answer,
    ):
        body = await answer.json(content_type=None)
        return answer.status, answer.content_type, body


async def test_wrong_token_is_answered_404_problem_and_changes_nothing(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    stage.sandbox.webhooks.replace_rules([])
    async with stage.gateway(nats_url, nats_prefix):
        order = stage.new_order()
        picking_id = stage.sandbox.picking(order.pickings[0]).id
        status, content_type, body = await _post(
            stage,
            "/webhooks/odoo/not-the-token-0123456789",
            json={"_model": "stock.picking", "_id": picking_id},
        )
        reads = stage.sandbox.calls().get("stock.picking.web_search_read", 0)
        refused = await stage.metric("waybill_odoo_webhooks_total", outcome="refused")
    assert (status, content_type) == (404, "application/problem+json")
    assert body["status"] == 404
    assert TOKEN not in body["detail"]
    assert refused == 1
    assert reads == 0  # the startup poll never asks for one picking: nothing was re-read
    assert await published(nc, nats_prefix, OrderReleased) == []


async def test_webhooks_are_refused_when_no_token_is_configured(
    stage17: OdooStage, nats_url: str, nats_prefix: str
) -> None:
    async with stage17.gateway(nats_url, nats_prefix, odoo_webhook_token=None):
        status = await stage17.post_webhook("stock.picking", 1)
    assert status == 404


async def test_webhook_from_outside_the_allowed_networks_is_refused(
    stage17: OdooStage, nats_url: str, nats_prefix: str
) -> None:
    async with stage17.gateway(
        nats_url, nats_prefix, odoo_webhook_networks=("10.0.0.0/8", "192.168.1.5")
    ):
        status = await stage17.post_webhook("stock.picking", 1)
    assert status == 404


async def test_webhook_from_an_allowed_network_is_accepted(
    stage17: OdooStage, nats_url: str, nats_prefix: str
) -> None:
    async with stage17.gateway(nats_url, nats_prefix, odoo_webhook_networks=("127.0.0.0/8",)):
        status = await stage17.post_webhook("stock.picking", 1)
    assert status == 202


async def test_webhook_body_without_a_record_is_a_422_problem_naming_the_field(
    stage17: OdooStage, nats_url: str, nats_prefix: str
) -> None:
    async with stage17.gateway(nats_url, nats_prefix):
        missing = await _post(stage17, f"/webhooks/odoo/{TOKEN}", json={"_model": "x"})
        bad_id = await _post(
            stage17, f"/webhooks/odoo/{TOKEN}", json={"_model": "stock.picking", "_id": 0}
        )
        not_json = await _post(
            stage17,
            f"/webhooks/odoo/{TOKEN}",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        )
    assert missing[0] == 422 and missing[2]["errors"][0]["pointer"] == "#/_id"
    assert bad_id[0] == 422 and bad_id[2]["errors"][0]["pointer"] == "#/_id"
    assert not_json[0] == 400 and not_json[1] == "application/problem+json"


async def test_webhook_for_a_model_the_gateway_does_not_handle_is_ignored(
    stage17: OdooStage, nats_url: str, nats_prefix: str
) -> None:
    async with stage17.gateway(nats_url, nats_prefix):
        status, _type, body = await _post(
            stage17, f"/webhooks/odoo/{TOKEN}", json={"_model": "res.partner", "_id": 7}
        )
    assert status == 200
    assert body == {"status": "ignored", "model": "res.partner", "id": 7}


async def test_webhooks_beyond_the_backlog_are_answered_503_and_left_to_the_poll(
    stage17: OdooStage, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    # Odoo answers slowly, so accepted webhooks stay in progress.
    stage.sandbox.faults.set("stock.picking.web_search_read", latency_s=1.0)
    async with stage.gateway(nats_url, nats_prefix, odoo_webhook_backlog=2):
        statuses = [await stage.post_webhook("stock.picking", n) for n in (1, 2, 3)]
        overloaded = await stage.metric("waybill_odoo_webhooks_total", outcome="overloaded")
        stage.sandbox.faults.clear()
    assert statuses == [202, 202, 503]
    assert overloaded == 1


async def test_webhook_is_answered_before_a_slow_odoo_is_read(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    stage.sandbox.webhooks.replace_rules([])
    async with stage.gateway(nats_url, nats_prefix):
        order = stage.new_order()
        picking_id = stage.sandbox.picking(order.pickings[0]).id
        # Slower than Odoo's 1 s webhook timeout: answering after the re-read would time out.
        stage.sandbox.faults.set("stock.picking.web_search_read", latency_s=1.5, times=1)
        status = await stage.post_webhook("stock.picking", picking_id)
        released_at_answer = await published(nc, nats_prefix, OrderReleased)
        released = await eventually(
            lambda: published(nc, nats_prefix, OrderReleased), what="the release"
        )
    assert status == 202
    assert released_at_answer == []
    assert [event.order.odoo_picking_id for event in released] == [picking_id]


async def test_hostile_webhook_bodies_are_4xx_and_the_token_never_reaches_the_log(
    stage17: OdooStage, nats_url: str, nats_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hook = f"/webhooks/odoo/{TOKEN}"
    async with stage17.gateway(nats_url, nats_prefix):
        deep = await _post(
            stage17,
            hook,
            data=b'{"_model": "stock.picking", "_id": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000,
            headers={"Content-Type": "application/json"},
        )
        text = await _post(stage17, hook, data=b"_model=stock.picking&_id=1")
        plain = await _post(
            stage17, hook, data=b'{"_model": "stock.picking", "_id": 1}',
            headers={"Content-Type": "text/plain"},
        )  # fmt: skip
        beside = await _post(stage17, f"{hook}/extra", json={"_model": "stock.picking", "_id": 1})
        still = await stage17.post_webhook("stock.picking", 1)
    assert (deep[0], deep[2]["status"]) == (400, 400)
    assert "levels deep" in deep[2]["detail"]
    assert [text[0], plain[0], beside[0], still] == [415, 415, 404, 202]
    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records
    )
    assert TOKEN not in logged
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("answered")]
    assert len(refusals) == 4
    assert all("/webhooks/odoo/***" in line for line in refusals)


async def test_the_order_a_webhook_releases_is_traced_from_that_webhook(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    stage.sandbox.webhooks.replace_rules([])  # the webhook is posted here, once
    with recorded_spans() as exporter:
        async with stage.gateway(nats_url, nats_prefix):
            order = stage.new_order()
            picking_id = stage.sandbox.picking(order.pickings[0]).id
            status = await stage.post_webhook("stock.picking", picking_id)
            assert status == 202

            async def released() -> list[Any]:
                return await published(nc, nats_prefix, OrderReleased)

            await eventually(released, what="the order released by the webhook")
        spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER and "webhooks/odoo" in s.name]
    [fact] = [s for s in spans if s.kind is SpanKind.PRODUCER and "order.released" in s.name]
    # The order's trace begins with the webhook that released it, answered before the
    # record was read: its SERVER span went on into that work and ended after the fact.
    assert fact.context.trace_id == server.context.trace_id
    assert fact.parent is not None and fact.parent.span_id == server.context.span_id
    assert server.parent is None
    assert dict(server.attributes or {})["http.response.status_code"] == 202
    assert server.end_time is not None and fact.end_time is not None
    assert server.end_time >= fact.end_time
