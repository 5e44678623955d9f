"""Cancelling warehouse orders: cancelled, too late (refused), or before the WMS had it."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient

from tests.services.wms_bridge.harness import wms_and_bridge
from waybill_contracts.commands import CancelWarehouseOrder
from waybill_contracts.events import (
    WarehouseOrderAccepted,
    WarehouseOrderCancelled,
    WarehouseOrderCancelRefused,
    WarehouseOrderPicked,
    WarehouseOrderShipped,
)


def cancel(ref: str) -> CancelWarehouseOrder:
    return CancelWarehouseOrder(order_ref=ref, reason="cancelled in Odoo")


async def test_cancelling_an_order_in_the_warehouse_reports_it_cancelled(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    ref = "WH/OUT/00010"
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        rig.wms.lifecycle.hold(ref, "picked")
        await rig.release(ref)
        await rig.wait_for(WarehouseOrderAccepted, ref)
        await rig.send(cancel(ref))
        await rig.send(cancel(ref))  # a repeat changes nothing
        cancelled = await rig.wait_for(WarehouseOrderCancelled, ref)
        await rig.commands_settled()
        rig.wms.lifecycle.release(ref)
        await rig.wms.settle()
        later = await rig.events(WarehouseOrderCancelled, ref)
        picked = await rig.events(WarehouseOrderPicked, ref)
    order = rig.wms.warehouse.order_by_ref(ref)
    assert order is not None and order.status == "cancelled"
    assert [c.outcome for c in rig.wms.warehouse.cancellations] == [
        "cancelled",
        "already_cancelled",
    ]
    assert len(later) == 1
    assert cancelled[0].warehouse_order_id == order.order_id
    assert picked == []
    assert await rig.dead_letters() == []


async def test_cancel_after_shipping_is_reported_refused_with_the_warehouse_reason(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    ref = "WH/OUT/00011"
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        await rig.release(ref)
        await rig.wait_for(WarehouseOrderShipped, ref)
        await rig.wms.settle()  # the lifecycle ran to the end: the order has shipped
        await rig.send(cancel(ref))
        [refused] = await rig.wait_for(WarehouseOrderCancelRefused, ref)
        await rig.send(cancel(ref))  # asked again: refused again, reported once
        await rig.commands_settled()
        letters = await rig.dead_letters()
        cancelled = await rig.events(WarehouseOrderCancelled, ref)
        refusals = await rig.events(WarehouseOrderCancelRefused, ref)
    order = rig.wms.warehouse.order_by_ref(ref)
    assert order is not None and order.status == "shipped"
    assert cancelled == [] and letters == []
    assert len(refusals) == 1
    assert "can no longer be cancelled" in refused.reason
    assert refused.warehouse_order_id == order.order_id
    assert [c.outcome for c in rig.wms.warehouse.cancellations] == ["refused", "refused"]


async def test_cancel_before_the_warehouse_has_the_order_stops_a_later_release(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    ref = "WH/OUT/00012"
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        await rig.send(cancel(ref))
        cancelled = await rig.wait_for(WarehouseOrderCancelled, ref)
        # The release was stuck in its retries (WMS down) and arrives after the cancel.
        await rig.release(ref)
        await rig.commands_settled()
        accepted = await rig.events(WarehouseOrderAccepted, ref)
    assert cancelled[0].warehouse_order_id is None
    assert accepted == []
    assert rig.wms.warehouse.creations[ref] == 0
    assert rig.wms.warehouse.order_by_ref(ref) is None
