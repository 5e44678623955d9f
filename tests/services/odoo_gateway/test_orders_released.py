"""Orders released and cancelled in Odoo become one event each, whatever mix of webhooks
and polls saw them."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from tests.services.odoo_gateway.stage import (
    OdooStage,
    odoo_stage,
    published,
    published_with_context,
    wait_for_events,
)
from waybill_contracts import Lane, SubjectMap, fact_id
from waybill_contracts.events import OrderCancelled, OrderReleased
from waybill_contracts.model import DeliveryMethod
from waybill_odoo_gateway.deliveries import DeliveryReader
from waybill_odoo_gateway.delivery_poll import WATERMARK_KEY
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_runtime.security.fact_ids import keyed_fact_id
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.delivery import DeliveryMode, DeliveryPolicy
from waybill_sandboxes.odoo import OdooSandbox

FACT_ID_KEY = "the-gateway-fact-id-key"
LOSE_EVERY_WEBHOOK = DeliveryPolicy(mode=DeliveryMode.LOSSY, drop_rate=1.0, max_attempts=1)


async def test_ready_delivery_webhook_publishes_one_order_released_with_the_order(
    stage: OdooStage,
    nc: NatsClient,
    nats_url: str,
    nats_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="waybill")
    # The id of an observed fact is keyed with the gateway's secret (no other client
    # can squat it): given here, so the test can compute it.
    async with stage.gateway(nats_url, nats_prefix, fact_id_key=FACT_ID_KEY):
        order = stage.new_order(("WB-0001", 2), ("WB-0003", 1))
        await stage.sandbox.settle()
        [released] = await wait_for_events(nc, nats_prefix, OrderReleased)
        await eventually(
            lambda: stage.checked("webhook", "released"), until=lambda n: n == 1, what="webhook"
        )
    picking = stage.sandbox.picking(order.pickings[0])
    sale = stage.sandbox.order(order.name)
    assert released.order.ref == picking.name
    assert released.order.odoo_picking_id == picking.id
    assert released.order.odoo_sale_order_id == sale.id
    assert released.order.sale_order_ref == sale.name
    assert released.order.customer_reference == sale.client_order_ref
    assert released.order.customer.name == picking.partner
    assert [(line.sku, str(line.quantity.value)) for line in released.order.lines] == [
        ("WB-0001", "2.0"),
        ("WB-0003", "1.0"),
    ]
    assert all(line.weight_kg for line in released.order.lines)
    assert len(released.order.ship_to.country_code) == 2
    # An order released as it should be logs no line at INFO (1 before): it is in the
    # event stream and the auditor's trail.
    assert [r.getMessage() for r in caplog.records if picking.name in r.getMessage()] == []
    [stored] = await published_with_context(nc, nats_prefix, OrderReleased)
    fact = fact_id("odoo", "stock.picking", picking.id, "released")
    assert stored.context.id == keyed_fact_id(FACT_ID_KEY.encode(), fact)
    assert stored.context.source == "waybill/odoo-gateway"


async def test_the_delivery_method_comes_from_the_picking_else_from_its_sale_order(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    # Orders made before the gateway runs; the poll finds them all.
    stage.sandbox.webhooks.sender.configure(policy=LOSE_EVERY_WEBHOOK)
    sandbox, registry = stage.sandbox, stage.sandbox.registry
    on_picking = sandbox.create_order(lines=[("WB-0001", 1)], carrier="Carrier B")
    on_sale_only = sandbox.create_order(lines=[("WB-0002", 1)], carrier="Carrier A")
    without = sandbox.create_order(lines=[("WB-0003", 1)])
    picking_id = sandbox.picking(on_sale_only.pickings[0]).id
    with registry.transaction():
        registry.write("stock.picking", [picking_id], {"carrier_id": False}, uid=2)
    async with stage.gateway(nats_url, nats_prefix, odoo_poll_interval_s=0.1):
        released = await wait_for_events(nc, nats_prefix, OrderReleased, 3)
    method = {event.order.ref: event.order.delivery_method for event in released}

    def carrier(name: str) -> DeliveryMethod:
        [carrier_id] = registry.search("delivery.carrier", [("name", "=", name)])
        return DeliveryMethod(name=name, odoo_carrier_id=carrier_id)

    assert method == {
        on_picking.pickings[0]: carrier("Carrier B"),
        on_sale_only.pickings[0]: carrier("Carrier A"),
        without.pickings[0]: None,
    }


async def test_repeated_webhooks_and_polls_publish_the_order_once(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    subject = SubjectMap(nats_prefix).subject_for(OrderReleased)
    marker_reads: list[bytes] = []

    async def seen(msg: Msg) -> None:
        if b".released" in msg.data:
            marker_reads.append(msg.data)

    # The gateway's KV reads, as nats-server receives them.
    watching = await nc.subscribe("$JS.API.STREAM.MSG.GET.>", cb=seen)
    async with stage.gateway(nats_url, nats_prefix, odoo_poll_interval_s=0.1):
        order = stage.new_order()
        await wait_for_events(nc, nats_prefix, OrderReleased)
        picking = stage.sandbox.picking(order.pickings[0])
        for _ in range(3):
            assert await stage.post_webhook("stock.picking", picking.id) == 202
        await eventually(
            lambda: stage.checked("webhook", "already_known"),
            until=lambda n: n >= 3,
            what="the repeated webhooks to be checked",
        )
        await eventually(
            lambda: stage.checked("poll", "already_known"),
            until=lambda n: n >= 2,
            what="two polls to see the released delivery",
        )
        # Not even a duplicate reached JetStream: the release marker stopped them.
        assert await stage.publishes(subject) == 1
    await watching.unsubscribe()
    assert len(await published(nc, nats_prefix, OrderReleased)) == 1
    # The marker read once, before the release; the gateway knows it wrote it since
    # (one read per repeated webhook and per poll before: 6 and more).
    assert len(marker_reads) == 1


async def test_lost_webhook_is_made_up_for_by_the_poll(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage.sandbox.webhooks.sender.configure(policy=LOSE_EVERY_WEBHOOK)
    async with stage.gateway(nats_url, nats_prefix, odoo_poll_interval_s=0.1):
        order = stage.new_order()
        await stage.sandbox.settle()
        [released] = await wait_for_events(nc, nats_prefix, OrderReleased)
        assert await stage.checked("webhook", "released") == 0
    assert released.order.ref == order.pickings[0]
    assert [w.outcome for w in stage.sandbox.webhooks.deliveries()] == ["dropped"]


async def test_a_restarted_gateway_does_not_release_an_order_again(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    subject = SubjectMap(nats_prefix).subject_for(OrderReleased)
    async with stage.gateway(nats_url, nats_prefix):
        order = stage.new_order()
        await wait_for_events(nc, nats_prefix, OrderReleased)
    picking_id = stage.sandbox.picking(order.pickings[0]).id
    # Forget the poll's watermark too, as after a long outage: only the marker remains.
    kv = await nc.jetstream().key_value(SubjectMap(nats_prefix).kv_bucket("watermarks"))
    await kv.delete(WATERMARK_KEY)
    async with stage.gateway(nats_url, nats_prefix, odoo_poll_interval_s=0.1):
        assert await stage.post_webhook("stock.picking", picking_id) == 202
        await eventually(
            lambda: stage.checked("poll", "already_known"),
            until=lambda n: n >= 2,
            what="the new gateway to poll the released delivery",
        )
        await eventually(
            lambda: stage.checked("webhook", "already_known"),
            until=lambda n: n == 1,
            what="the replayed webhook to be checked",
        )
        assert await stage.publishes(subject) == 0
    assert len(await published(nc, nats_prefix, OrderReleased)) == 1


async def test_cancelled_sale_order_publishes_order_cancelled_once(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with stage.gateway(nats_url, nats_prefix):
        order = stage.new_order()
        await wait_for_events(nc, nats_prefix, OrderReleased)
        stage.sandbox.cancel_order(order.name)
        [cancelled] = await wait_for_events(nc, nats_prefix, OrderCancelled)
        assert await stage.post_webhook("sale.order", order.id) == 202
        await eventually(
            lambda: stage.checked("webhook", "already_known"),
            until=lambda n: n == 1,
            what="the repeated cancellation webhook",
        )
    picking = stage.sandbox.picking(order.pickings[0])
    assert cancelled.order_ref == picking.name
    assert cancelled.odoo_picking_id == picking.id
    assert cancelled.odoo_sale_order_id == order.id
    assert cancelled.reason == f"sale order {order.name} was cancelled in Odoo"
    assert len(await published(nc, nats_prefix, OrderCancelled)) == 1


async def test_cancellation_without_webhook_is_found_by_the_poll(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    async with stage.gateway(nats_url, nats_prefix, odoo_poll_interval_s=0.1):
        order = stage.new_order()
        await wait_for_events(nc, nats_prefix, OrderReleased)
        stage.sandbox.webhooks.sender.configure(policy=LOSE_EVERY_WEBHOOK)
        stage.sandbox.cancel_order(order.name)
        [cancelled] = await wait_for_events(nc, nats_prefix, OrderCancelled)
    assert cancelled.order_ref == order.pickings[0]


async def test_delivery_cancelled_before_it_was_released_announces_nothing(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    stage.sandbox.webhooks.sender.configure(policy=LOSE_EVERY_WEBHOOK)
    async with stage.gateway(nats_url, nats_prefix):
        order = stage.new_order()
        stage.sandbox.cancel_order(order.name)
        assert await stage.post_webhook("sale.order", order.id) == 202
        await eventually(
            lambda: stage.checked("webhook", "ignored"),
            until=lambda n: n == 1,
            what="the cancellation webhook to be checked",
        )
    assert await published(nc, nats_prefix, OrderCancelled) == []
    assert await published(nc, nats_prefix, OrderReleased) == []


async def test_premature_webhook_is_checked_again_until_the_delivery_is_ready(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    stage.sandbox.webhooks.replace_rules([])  # this test sends the webhook itself
    registry = stage.sandbox.registry
    async with stage.gateway(nats_url, nats_prefix, odoo_webhook_recheck_s=(0.5, 1.0, 2.0)):
        order = stage.new_order()
        picking_id = stage.sandbox.picking(order.pickings[0]).id
        # As Odoo 17 does: the webhook leaves before the transaction making it ready commits.
        registry.write("stock.picking", [picking_id], {"state": "confirmed"}, uid=2)
        # From 17 the picking is read with its order, in one web_search_read.
        reads = stage.sandbox.calls().get("stock.picking.web_search_read", 0)
        assert await stage.post_webhook("stock.picking", picking_id) == 202
        await eventually(
            lambda: _calls(stage, "stock.picking.web_search_read"),
            until=lambda n: n > reads,
            what="the gateway's first read",
        )
        registry.write("stock.picking", [picking_id], {"state": "assigned"}, uid=2)
        [released] = await wait_for_events(nc, nats_prefix, OrderReleased)
    assert released.order.odoo_picking_id == picking_id


async def test_delivery_without_an_address_is_skipped_and_the_poll_moves_on(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    sandbox = stage.sandbox
    stage.sandbox.webhooks.sender.configure(policy=LOSE_EVERY_WEBHOOK)
    [nowhere] = sandbox.registry.create("res.partner", [{"name": "No Street Ltd"}], uid=2)
    bad = sandbox.create_order(customer_id=nowhere, lines=[("WB-0001", 1)])
    good = stage.new_order()
    async with stage.gateway(nats_url, nats_prefix, odoo_poll_interval_s=0.1):
        [released] = await wait_for_events(nc, nats_prefix, OrderReleased)
        await eventually(
            lambda: stage.checked("poll", "failed"), until=lambda n: n >= 1, what="the skip"
        )
    assert released.order.ref == good.pickings[0]
    kv = await nc.jetstream().key_value(SubjectMap(nats_prefix).kv_bucket("watermarks"))
    watermark = (await kv.get(WATERMARK_KEY)).value
    assert watermark is not None
    assert watermark.decode() >= sandbox.picking(bad.pickings[0]).write_date


async def _calls(stage: OdooStage, operation: str) -> int:
    return stage.sandbox.calls().get(operation, 0)


async def test_a_picking_validated_between_poll_pages_makes_the_poll_skip_no_other(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    # Under a burst, write-backs validate pickings while a poll round pages through the
    # ready ones: a picking leaving the result must not shift the next page past one
    # never seen (found by the end-to-end benchmark, which lost about a fifth of a
    # 1,000-order burst that way).
    sandbox_of: list[OdooSandbox] = []
    pages = 0

    @web.middleware
    async def validate_one_after_the_first_page(
        request: web.Request, handler: Any
    ) -> web.StreamResponse:
        nonlocal pages
        body = await request.read()
        answer: web.StreamResponse = await handler(request)
        if b"search_read" in request.path.encode() + body and b"stock.picking" in (
            request.path.encode() + body
        ):
            pages += 1
            if pages == 1:
                sandbox = sandbox_of[0]
                first = sandbox.registry.search("stock.picking", [], order="id asc")[0]
                with sandbox.registry.transaction():
                    sandbox.registry.write("stock.picking", [first], {"state": "done"}, uid=2)
        return answer

    async with odoo_stage(
        version=17, protocol="jsonrpc", middlewares=(validate_one_after_the_first_page,)
    ) as stage:
        sandbox_of.append(stage.sandbox)
        stage.sandbox.webhooks.sender.configure(policy=LOSE_EVERY_WEBHOOK)
        orders = [stage.new_order(("WB-0001", 1)) for _ in range(5)]
        await stage.sandbox.settle()
        # No overlap: only the paging can bring the pickings of the round's first second.
        async with stage.gateway(
            nats_url,
            nats_prefix,
            odoo_poll_interval_s=0.1,
            odoo_poll_page_size=2,
            odoo_poll_overlap_s=0.0,
        ):
            released = await wait_for_events(nc, nats_prefix, OrderReleased, 5)
    assert sorted(event.order.ref for event in released) == sorted(
        order.pickings[0] for order in orders
    )


def _promise_in(sandbox: OdooSandbox, order_name: str, delay: timedelta) -> None:
    registry = sandbox.registry
    promised = datetime.strptime(registry.now(), "%Y-%m-%d %H:%M:%S") + delay
    with registry.transaction():
        registry.write(
            "sale.order",
            [sandbox.order(order_name).id],
            {"commitment_date": promised.strftime("%Y-%m-%d %H:%M:%S")},
            uid=2,
        )


async def _released_lanes(nc: NatsClient, nats_prefix: str) -> dict[str, Lane]:
    return {
        d.message.order.ref: d.context.lane
        for d in await published_with_context(nc, nats_prefix, OrderReleased)
        if isinstance(d.message, OrderReleased)
    }


async def test_urgent_and_soon_promised_orders_are_released_on_the_express_lane(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    # Orders made before the gateway runs; the poll finds them all.
    stage.sandbox.webhooks.sender.configure(policy=LOSE_EVERY_WEBHOOK)
    sandbox = stage.sandbox
    plain = sandbox.create_order(lines=[("WB-0001", 1)])  # promised in three days
    urgent = sandbox.create_order(lines=[("WB-0002", 1)], urgent=True)  # Odoo's priority star
    soon = sandbox.create_order(lines=[("WB-0003", 1)])
    _promise_in(sandbox, soon.name, timedelta(hours=5))
    async with stage.gateway(nats_url, nats_prefix, odoo_poll_interval_s=0.1):
        await wait_for_events(nc, nats_prefix, OrderReleased, 3)
    lanes = await _released_lanes(nc, nats_prefix)
    assert lanes[plain.pickings[0]] is Lane.STANDARD
    assert lanes[urgent.pickings[0]] is Lane.EXPRESS
    assert lanes[soon.pickings[0]] is Lane.EXPRESS


async def test_with_no_promise_window_only_the_priority_star_makes_an_order_express(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage.sandbox.webhooks.sender.configure(policy=LOSE_EVERY_WEBHOOK)
    sandbox = stage.sandbox
    urgent = sandbox.create_order(lines=[("WB-0002", 1)], urgent=True)
    soon = sandbox.create_order(lines=[("WB-0003", 1)])
    _promise_in(sandbox, soon.name, timedelta(hours=5))
    async with stage.gateway(
        nats_url, nats_prefix, odoo_poll_interval_s=0.1, express_promised_within_h=0
    ):
        await wait_for_events(nc, nats_prefix, OrderReleased, 2)
    lanes = await _released_lanes(nc, nats_prefix)
    assert lanes == {urgent.pickings[0]: Lane.EXPRESS, soon.pickings[0]: Lane.STANDARD}


_ORDER_MODELS = {
    "stock.picking", "sale.order", "res.partner", "stock.move", "product.product", "res.country",
    "res.country.state",
}  # fmt: skip
_READS = {"read", "search_read", "web_read", "web_search_read"}


@pytest.mark.parametrize(
    ("version", "protocol"),
    [(16, "jsonrpc"), (17, "jsonrpc"), (18, "jsonrpc"), (19, "json2")],
    ids=["odoo16", "odoo17", "odoo18", "odoo19-json2"],
)
async def test_a_release_reads_the_picking_and_its_order_in_one_call_from_odoo_17(
    version: int, protocol: str, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with odoo_stage(version=version, protocol=protocol) as stage:
        stage.sandbox.webhooks.sender.configure(policy=LOSE_EVERY_WEBHOOK)
        async with stage.gateway(nats_url, nats_prefix):
            await eventually(stage.ready, until=lambda r: r["status"] == "ready", what="login")
            order = stage.new_order(("WB-0001", 2), ("WB-0003", 1))
            picking = stage.sandbox.picking(order.pickings[0])
            stage.meter.calls.clear()
            assert await stage.post_webhook("stock.picking", picking.id) == 202
            [released] = await wait_for_events(nc, nats_prefix, OrderReleased)
        # Its reads (the setup check after the login may still be asking its questions).
        calls = {
            call: n
            for call, n in stage.meter.calls.items()
            if call[0] in _ORDER_MODELS and call[1] in _READS
        }
    assert [(line.sku, str(line.quantity.value)) for line in released.order.lines] == [
        ("WB-0001", "2.0"),
        ("WB-0003", "1.0"),
    ]
    assert released.order.customer.name == picking.partner
    assert len(released.order.ship_to.country_code) == 2
    if version == 16:  # no web_read: the picking, its sale order, partners, moves, products
        assert calls == {
            ("stock.picking", "search_read"): 1,
            ("sale.order", "read"): 1,
            ("res.partner", "read"): 1,
            ("stock.move", "read"): 1,
            ("product.product", "read"): 1,
            ("res.country", "read"): 1,
        }
    else:  # the picking with everything its order needs in one call (2 before, 6 before that)
        assert calls == {("stock.picking", "web_search_read"): 1}


async def test_a_picking_read_with_its_order_is_the_picking_and_the_order_read_apart(
    any_odoo: OdooStage, odoo: OdooClient
) -> None:
    order = any_odoo.new_order()
    picking_id = any_odoo.sandbox.picking(order.pickings[0]).id
    reader = DeliveryReader(odoo)
    apart = await reader.picking(picking_id)
    any_odoo.meter.calls.clear()
    together = await reader.picking_to_decide(picking_id)
    assert together is not None and apart is not None
    released_together = await reader.order(together)
    calls = sum(any_odoo.meter.calls.values())
    assert together.row == apart.row  # what decides on it, as search_read gives it
    assert released_together == await reader.order(apart)
    # From 17 the order needs no call of its own (two calls before: the picking, the order).
    assert calls == (6 if any_odoo.version == 16 else 1)
    assert await reader.picking_to_decide(10**6) is None
