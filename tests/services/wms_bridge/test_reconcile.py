"""The reconciliation poll recovers what lost webhooks never told, once, from a stored watermark."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import release_command
from tests.services.wms_bridge.harness import LOSE_EVERY_WEBHOOK, wms_and_bridge
from waybill_contracts.commands import CancelWarehouseOrder
from waybill_contracts.events import (
    WarehouseOrderAccepted,
    WarehouseOrderCancelled,
    WarehouseOrderPacked,
    WarehouseOrderPicked,
    WarehouseOrderShipped,
    WarehouseOrderShortPicked,
)
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.delivery import DeliveryMode, DeliveryPolicy
from waybill_sandboxes.wms import OutboundOrderRequest
from waybill_sandboxes.wms.records import OrderStatus
from waybill_wms_bridge.orders import order_request
from waybill_wms_bridge.reconcile import WATERMARK_KEY, Watermark

QUICK_POLLS = {"wms_reconcile_interval_s": 0.2}


async def test_reconciliation_recovers_every_stage_when_every_webhook_is_lost(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    refs = ["WH/OUT/00050", "WH/OUT/00051", "WH/OUT/00052"]
    short, cancelled = "WH/OUT/00053", "WH/OUT/00054"
    async with wms_and_bridge(
        nc, nats_url, nats_prefix, wms={"delivery": LOSE_EVERY_WEBHOOK}, **QUICK_POLLS
    ) as rig:
        rig.wms.warehouse.force_short_pick(short, "TEA-EARL", 1)
        rig.wms.lifecycle.hold(cancelled, "picked")
        for ref in [*refs, short, cancelled]:
            await rig.release(ref)
        await rig.wait_for(WarehouseOrderAccepted, cancelled)
        await rig.send(CancelWarehouseOrder(order_ref=cancelled, reason="cancelled in Odoo"))
        for ref in refs:
            await rig.wait_for(WarehouseOrderPacked, ref)
        await rig.wait_for(WarehouseOrderShortPicked, short)
        await rig.wait_for(WarehouseOrderCancelled, cancelled)
        rig.wms.lifecycle.release(cancelled)  # a cancelled order goes no further
        await rig.wms.settle()
        await rig.commands_settled()
        # A few more rounds over the same orders must not store anything again.
        rounds_before = await rig.poll_rounds()
        await eventually(
            rig.poll_rounds,
            until=lambda n: n >= rounds_before + 3,
            what="three more reconciliation rounds",
        )
        stored = await rig.stored()
    assert {w.outcome for w in rig.wms.sent_webhooks()} == {"dropped"}
    kinds: dict[str, list[str]] = {}
    for _id, event in stored:
        kinds.setdefault(event.business_key(), []).append(type(event).__name__)
    stages = [
        "WarehouseOrderAccepted",
        "WarehouseOrderPicked",
        "WarehouseOrderPacked",
        "WarehouseOrderShipped",
    ]
    assert {ref: kinds[ref] for ref in refs} == {ref: stages for ref in refs}
    assert kinds[short][:2] == ["WarehouseOrderAccepted", "WarehouseOrderShortPicked"]
    assert "WarehouseOrderPicked" not in kinds[short]
    assert kinds[cancelled] == ["WarehouseOrderAccepted", "WarehouseOrderCancelled"]


async def test_half_lost_webhooks_and_the_poll_together_store_each_fact_once(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    refs = [f"WH/OUT/0006{n}" for n in range(6)]
    lossy = DeliveryPolicy(mode=DeliveryMode.LOSSY, drop_rate=0.5)
    async with wms_and_bridge(
        nc, nats_url, nats_prefix, wms={"delivery": lossy}, **QUICK_POLLS
    ) as rig:
        for ref in refs:
            await rig.release(ref)
        for ref in refs:
            await rig.wait_for(WarehouseOrderPacked, ref)
        await rig.wms.settle()
        rounds_before = await rig.poll_rounds()
        await eventually(rig.poll_rounds, until=lambda n: n >= rounds_before + 2, what="two rounds")
        picked = await rig.events(WarehouseOrderPicked)
        packed = await rig.events(WarehouseOrderPacked)
    outcomes = {w.outcome for w in rig.wms.sent_webhooks()}
    assert outcomes == {"dropped", "delivered"}  # both paths were at work
    assert sorted(p.order_ref for p in picked) == refs
    assert sorted(p.order_ref for p in packed) == refs


async def test_a_poll_passes_over_orders_whose_webhooks_brought_every_fact(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    """Issue #18: every round reads the orders changed in its window, which in a steady
    flow are the ones the webhooks just reported; a snapshot whose facts are all out is
    not mapped to facts nor asked about again. Before, each round over these three
    shipped orders mapped and asked about 4 facts each (12 more a round)."""
    refs = [f"WH/OUT/0007{n}" for n in range(3)]
    async with wms_and_bridge(nc, nats_url, nats_prefix, wms_reconcile_interval_s=0.2) as rig:
        for ref in refs:
            await rig.release(ref)
        for ref in refs:
            await rig.wait_for(WarehouseOrderShipped, ref)
        await rig.wms.settle()
        await rig.commands_settled()
        seen = await rig.facts_seen()
        rounds_before = await rig.poll_rounds()
        await eventually(
            rig.poll_rounds, until=lambda n: n >= rounds_before + 3, what="three rounds"
        )
        assert await rig.facts_seen() == seen  # seen + 36 before
        shipped = await rig.events(WarehouseOrderShipped)
    assert {w.outcome for w in rig.wms.sent_webhooks()} == {"delivered"}
    assert sorted(s.order_ref for s in shipped) == refs


async def test_the_watermark_follows_the_newest_wms_change_and_survives_a_failed_round(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    ref = "WH/OUT/00070"
    async with wms_and_bridge(
        nc, nats_url, nats_prefix, wms={"delivery": LOSE_EVERY_WEBHOOK}, **QUICK_POLLS
    ) as rig:
        kv = await nc.jetstream().key_value(rig.subjects.kv_bucket("watermarks"))

        async def watermark() -> datetime | None:
            try:
                entry = await kv.get(WATERMARK_KEY)
            except Exception:
                return None
            return msgspec.json.decode(entry.value or b"", type=Watermark).updated_at

        rig.wms.faults.set("list_orders", outage=True)  # every round fails for now
        await rig.release(ref)
        await rig.wait_for(WarehouseOrderAccepted, ref)
        await rig.wms.settle()
        failing_rounds = await rig.poll_rounds()
        await eventually(
            rig.poll_rounds, until=lambda n: n >= failing_rounds + 2, what="failed rounds"
        )
        assert await rig.events(WarehouseOrderPacked, ref) == []
        assert await watermark() is None  # failed rounds move nothing
        rig.wms.faults.clear()
        await rig.wait_for(WarehouseOrderPacked, ref)
        order = rig.wms.warehouse.order_by_ref(ref)
        assert order is not None
        newest = order.updated_at
        reached = await eventually(watermark, until=lambda at: at == newest, what="the watermark")
    assert reached == newest
    assert reached.tzinfo is not None


async def test_an_order_the_wms_created_without_the_bridge_hearing_back_is_reported(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    # The release's answer was lost and its command dead-lettered, but the WMS has the order:
    # its creation moves it past the watermark, so the poll finds it.
    ref = "WH/OUT/00071"
    async with wms_and_bridge(
        nc, nats_url, nats_prefix, wms={"delivery": LOSE_EVERY_WEBHOOK}, **QUICK_POLLS
    ) as rig:
        request = order_request(release_command(ref).order, "WH1")
        created, _ = rig.wms.create_order(
            msgspec.json.decode(msgspec.json.encode(request), type=OutboundOrderRequest)
        )
        accepted = await rig.wait_for(WarehouseOrderAccepted, ref)
        await rig.wait_for(WarehouseOrderPacked, ref)
    assert accepted[0].warehouse_order_id == created.order_id
    assert accepted[0].accepted_at == created.created_at.astimezone(UTC)


async def test_an_order_whose_wms_values_break_the_contract_does_not_stop_the_poll(
    nc: NatsClient, nats_url: str, nats_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad, good = "WH/OUT/00080", "WH/OUT/00081"
    async with wms_and_bridge(
        nc, nats_url, nats_prefix, wms={"delivery": LOSE_EVERY_WEBHOOK}, **QUICK_POLLS
    ) as rig:
        rig.wms.lifecycle.hold(bad, "packed")
        await rig.release(bad)
        await rig.wait_for(WarehouseOrderPicked, bad)
        order = rig.wms.warehouse.order_by_ref(bad)
        assert order is not None
        # Packed with a scale gone wrong, in one step (no poll can see it in between).
        rig.wms.warehouse.advance(order.order_id, OrderStatus.PACKED)
        order.parcels = [msgspec.structs.replace(p, weight_kg=-1.0) for p in order.parcels]
        await rig.release(good)  # changed later: the poll reaches it after the bad one
        await rig.wait_for(WarehouseOrderPacked, good)
        assert await rig.events(WarehouseOrderPacked, bad) == []
        assert await rig.dead_letters() == []
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reconciling")]
    assert refusals and all(bad in line and "weight_kg" in line for line in refusals)
