"""Releasing orders to the WMS sandbox: created once, and the warehouse's progress reported."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import release_command
from tests.services.wms_bridge.harness import LOSE_EVERY_WEBHOOK, wms_and_bridge
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.events import (
    WarehouseOrderAccepted,
    WarehouseOrderPacked,
    WarehouseOrderPicked,
    WarehouseOrderShipped,
    WarehouseOrderShortPicked,
)
from waybill_contracts.model import Quantity
from waybill_runtime.idempotency import OnceOnly
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.wms import OutboundOrderRequest
from waybill_wms_bridge import orders
from waybill_wms_bridge.lifecycle import WarehouseFact, accepted_fact
from waybill_wms_bridge.orders import ReleasedOrder, order_request, release_key


async def test_released_order_is_created_once_and_reported_accepted_picked_packed(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        command = await rig.release("WH/OUT/00001")
        packed = await rig.wait_for(WarehouseOrderPacked, "WH/OUT/00001")
        await rig.wms.settle()
        stored = [event for _id, event in await rig.stored()]
    order = rig.wms.warehouse.order_by_ref("WH/OUT/00001")
    assert order is not None
    assert rig.wms.warehouse.creations["WH/OUT/00001"] == 1
    # One event per stage, in the order the warehouse went through them.
    assert [type(event) for event in stored] == [
        WarehouseOrderAccepted,
        WarehouseOrderPicked,
        WarehouseOrderPacked,
        WarehouseOrderShipped,
    ]
    accepted, picked = stored[0], stored[1]
    assert isinstance(accepted, WarehouseOrderAccepted)
    assert accepted.warehouse_order_id == order.order_id
    assert isinstance(picked, WarehouseOrderPicked)
    assert [(line.sku, line.fulfilled) for line in picked.lines] == [
        (line.sku, line.quantity) for line in command.order.lines
    ]
    assert [p.reference for p in packed[0].parcels] == [p.sscc for p in order.parcels]
    assert [p.weight_kg for p in packed[0].parcels] == [p.weight_kg for p in order.parcels]
    assert all(p.dimensions is not None and p.contents for p in packed[0].parcels)
    # The sandbox's own webhooks reached the bridge and were taken.
    assert {(w.outcome, w.last_status) for w in rig.wms.sent_webhooks()} == {("delivered", 202)}


async def test_a_release_sent_twice_creates_one_warehouse_order(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        await rig.release("WH/OUT/00002")
        await rig.release("WH/OUT/00002")  # e.g. the orchestrator re-sent it past a deadline
        await rig.commands_settled()
        await rig.wait_for(WarehouseOrderPacked, "WH/OUT/00002")
        accepted = await rig.events(WarehouseOrderAccepted, "WH/OUT/00002")
    assert rig.wms.warehouse.creations["WH/OUT/00002"] == 1
    assert len(rig.wms.warehouse.orders) == 1
    assert len(accepted) == 1


async def test_the_accepted_webhook_after_a_release_asks_the_ledger_nothing(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    """Issue #18: the release published the accepted fact and remembers it with the order,
    so the WMS's ``order.accepted`` webhook that follows builds no fact and asks the ledger
    nothing (before: one fact built and one look-up)."""
    ref = "WH/OUT/00006"
    async with wms_and_bridge(
        nc, nats_url, nats_prefix, wms={"delivery": LOSE_EVERY_WEBHOOK}
    ) as rig:
        # The poll's one round (a second after the start) is over before the release.
        await eventually(rig.poll_rounds, until=lambda rounds: rounds >= 1, what="the first poll")
        await rig.release(ref)
        await rig.wait_for(WarehouseOrderAccepted, ref)
        await rig.commands_settled()
        # The webhook the sandbox meant to send, delivered now.
        webhook = rig.wms.sent_webhooks("order.accepted")[0]
        status, answer = await rig.post_webhook(webhook.body.encode())
        seen = await rig.facts_seen()
    assert (status, answer["facts"], answer["new"]) == (202, 1, 0)
    assert seen == 1  # 2 before


async def test_a_release_sent_again_builds_no_accepted_fact(
    nc: NatsClient, nats_url: str, nats_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #18: a release whose accepted fact is out (published by an earlier delivery,
    or by the WMS's webhook, which comes at once) does not make the fact again only for
    the ledger to find it known: 1 accepted fact built for two releases, 2 before."""
    ref = "WH/OUT/00007"
    built = 0

    def counted(*args: Any, **kwargs: Any) -> WarehouseFact:
        nonlocal built
        built += 1
        return accepted_fact(*args, **kwargs)

    monkeypatch.setattr(orders, "accepted_fact", counted)
    async with wms_and_bridge(
        nc, nats_url, nats_prefix, wms={"delivery": LOSE_EVERY_WEBHOOK}
    ) as rig:
        # The poll's one round is over before the releases: only they can report the order.
        await eventually(rig.poll_rounds, until=lambda rounds: rounds >= 1, what="the first poll")
        await rig.release(ref)
        await rig.commands_settled()
        await rig.release(ref)  # e.g. the orchestrator re-sent it past a deadline
        await rig.commands_settled()
        accepted = await rig.events(WarehouseOrderAccepted, ref)
    assert built == 1  # 2 before
    assert len(accepted) == 1


async def test_a_release_whose_earlier_attempt_died_mid_call_finds_the_order_by_ref(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    ref = "WH/OUT/00003"
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        # An earlier attempt recorded its intent, reached the WMS, and died before the answer.
        kv = await nc.jetstream().key_value(rig.subjects.kv_bucket("idempotency"))

        async def lost_answer() -> ReleasedOrder:
            raise ConnectionResetError("the answer was lost")

        with pytest.raises(ConnectionResetError):
            await OnceOnly(kv, ReleasedOrder).run(release_key(ref), lost_answer)
        request = order_request(release_command(ref).order, "WH1")
        existing, _ = rig.wms.create_order(
            msgspec.json.decode(msgspec.json.encode(request), type=OutboundOrderRequest)
        )
        await rig.release(ref)
        accepted = await rig.wait_for(WarehouseOrderAccepted, ref)
        await rig.commands_settled()
    assert rig.wms.warehouse.creations[ref] == 1  # only the lost attempt's
    assert [a.warehouse_order_id for a in accepted] == [existing.order_id]


async def test_short_pick_is_reported_with_the_shortages_and_no_picked_event(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    ref = "WH/OUT/00004"
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        rig.wms.warehouse.force_short_pick(ref, "MUG-BLUE", 1)
        await rig.release(ref)
        short = await rig.wait_for(WarehouseOrderShortPicked, ref)
        await rig.wms.settle()
        picked = await rig.events(WarehouseOrderPicked, ref)
        again = await rig.events(WarehouseOrderShortPicked, ref)
    assert len(again) == 1
    assert picked == []
    shortage = short[0].shortages
    assert [line.sku for line in shortage] == ["MUG-BLUE"]
    assert shortage[0].ordered.value == 2
    assert shortage[0].fulfilled.value == 1


async def test_an_order_the_warehouse_refuses_is_dead_lettered_with_its_reason(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    example = release_command("WH/OUT/00005")
    line = example.order.lines[0]
    empty_line = msgspec.structs.replace(
        line, quantity=Quantity(value=line.quantity.value * 0, uom=line.quantity.uom)
    )
    command = ReleaseToWarehouse(order=msgspec.structs.replace(example.order, lines=(empty_line,)))
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        await rig.send(command)
        # Waited for as such: on a loaded machine "settled" alone once came back before
        # the command was handled (the consumer's counts may not yet hold a message just stored).
        await eventually(rig.dead_letters, what="the refused release's dead letter")
        await rig.commands_settled()
        letters = await rig.dead_letters()
        accepted = await rig.events(WarehouseOrderAccepted)
    assert accepted == []
    assert len(letters) == 1
    assert letters[0].reason == "permanent error"
    assert "HTTP 422" in letters[0].error_message
    assert "WH/OUT/00005" in letters[0].error_message
    assert letters[0].attempts == 1  # not retried: retrying cannot fix it
