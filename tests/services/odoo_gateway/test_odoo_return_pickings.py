"""Returns made in Odoo (issue 20): a return picking an Odoo user made from a delivery is
announced once as ReturnRequested (by webhook or poll, however often it is seen), its
cancellation before receipt as ReturnCancelled; the gateway's own RMA pickings and receipts
from vendors announce nothing."""

from __future__ import annotations

from decimal import Decimal

from nats.aio.client import Client as NatsClient

from tests.services.odoo_gateway.stage import (
    OdooStage,
    published,
    send_command,
    wait_for_events,
)
from waybill_contracts.events import (
    OrderReleased,
    ReturnCancelled,
    ReturnRequested,
    ReturnStockPosted,
)
from waybill_contracts.model import Quantity
from waybill_contracts.return_commands import ReceiveReturnInOdoo
from waybill_contracts.returns import InspectedLine
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.gateway import odoo_client_for
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.return_pickings import ReturnedLine, ReturnRequest, create_return
from waybill_runtime.settings import load_settings
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.odoo.methods import call_kw


async def returned_in_odoo(stage: OdooStage, odoo: OdooClient, **lines: int) -> tuple[str, int]:
    """A delivered order and a return picking made from it with Odoo's return wizard, as a
    user leaves it (origin ``Return of WH/OUT/...``): (delivery name, return picking id)."""
    order = stage.new_order(("WB-0001", 3), ("WB-0002", 2))
    stage.sandbox.deliver_order(order.name)
    [delivery] = stage.sandbox.order(order.name).pickings
    wanted = tuple(
        ReturnedLine(sku=sku.replace("_", "-"), quantity=Decimal(q)) for sku, q in lines.items()
    )
    made = await create_return(odoo, ReturnRequest(reference="x", delivery=delivery, lines=wanted))
    # The wizard's own origin: the gateway's RMA mark taken off again.
    stage.sandbox.registry.write(
        "stock.picking", [made.id], {"origin": f"Return of {delivery}"}, uid=2
    )
    return str(delivery), made.id


async def test_a_return_made_in_odoo_is_requested_once_and_its_cancellation_announced(
    any_odoo: OdooStage, odoo: OdooClient, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = any_odoo
    delivery, picking_id = await returned_in_odoo(stage, odoo, WB_0001=2)
    [name] = [p.name for p in stage.sandbox.pickings() if p.id == picking_id]
    async with stage.gateway(nats_url, nats_prefix):
        # As an automation rule on incoming transfers sends it, twice (a save, a retry).
        for _ in range(2):
            assert await stage.post_webhook("stock.picking", picking_id) == 202
        [requested] = await wait_for_events(nc, nats_prefix, ReturnRequested)
        await eventually(
            lambda: stage.checked("webhook", "already_known"),
            until=lambda known: known >= 1,
            what="the second webhook found the return known",
        )
        call_kw(
            stage.sandbox.registry,
            stage.sandbox.admin,
            "stock.picking",
            "action_cancel",
            [[picking_id]],
        )
        for _ in range(2):
            assert await stage.post_webhook("stock.picking", picking_id) == 202
        [cancelled] = await wait_for_events(nc, nats_prefix, ReturnCancelled)
        await eventually(
            lambda: stage.checked("webhook", "already_known"),
            until=lambda known: known >= 2,
            what="the second cancellation webhook found it known",
        )
        assert len(await published(nc, nats_prefix, ReturnRequested)) == 1
        assert len(await published(nc, nats_prefix, ReturnCancelled)) == 1
    assert (requested.return_id, requested.order_ref) == (name, delivery)
    assert requested.odoo_return_picking_id == picking_id
    assert [(line.sku, line.quantity.value) for line in requested.lines] == [
        ("WB-0001", Decimal(2))
    ]
    assert all(line.odoo_move_id for line in requested.lines)
    assert requested.customer.name and requested.pickup_address.city
    assert requested.odoo_sale_order_id is not None
    assert (cancelled.return_id, cancelled.order_ref) == (name, delivery)
    assert len(await published(nc, nats_prefix, ReturnCancelled)) == 1


async def test_the_poll_announces_returns_made_in_odoo_and_nothing_else_incoming(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    settings = load_settings(
        OdooGatewaySettings, environ={}, service="odoo-gateway", **stage.gateway_settings()
    )
    odoo = odoo_client_for(settings)
    try:
        delivery, picking_id = await returned_in_odoo(stage, odoo, WB_0002=1)
        # The gateway's own RMA picking (marked with its reference): requested by the API.
        order = stage.new_order(("WB-0001", 1))
        stage.sandbox.deliver_order(order.name)
        [other] = stage.sandbox.order(order.name).pickings
        rma = ReturnRequest(
            reference="RMA-9",
            delivery=other,
            lines=(ReturnedLine(sku="WB-0001", quantity=Decimal(1)),),
        )
        marked = await create_return(odoo, rma)
    finally:
        await odoo.close()
    async with stage.gateway(nats_url, nats_prefix, odoo_poll_interval_s=0.1):
        [requested] = await wait_for_events(nc, nats_prefix, ReturnRequested)
        # Rounds after it: the return is known, the RMA's picking left alone.
        await eventually(
            lambda: stage.checked("poll", "already_known"),
            until=lambda known: known >= 1,
            what="a later poll round",
        )
        requests = await published(nc, nats_prefix, ReturnRequested)
    assert [(r.odoo_return_picking_id, r.order_ref) for r in requests] == [(picking_id, delivery)]
    assert marked.id != requested.odoo_return_picking_id
    assert await published(nc, nats_prefix, OrderReleased) == []


async def test_a_return_cancelled_by_its_receipt_is_no_cancellation(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    settings = load_settings(
        OdooGatewaySettings, environ={}, service="odoo-gateway", **stage.gateway_settings()
    )
    odoo = odoo_client_for(settings)
    try:
        delivery, picking_id = await returned_in_odoo(stage, odoo, WB_0001=1)
    finally:
        await odoo.close()
    async with stage.gateway(nats_url, nats_prefix):
        assert await stage.post_webhook("stock.picking", picking_id) == 202
        [requested] = await wait_for_events(nc, nats_prefix, ReturnRequested)
        # The parcel came empty: receiving cancels the return picking in Odoo.
        [line] = requested.lines
        nothing = InspectedLine(
            line_no=1, sku=line.sku, resellable=units(0), damaged=units(0), missing=units(1)
        )
        receive = ReceiveReturnInOdoo(
            return_id=requested.return_id,
            order_ref=delivery,
            odoo_picking_id=requested.odoo_picking_id,
            odoo_return_picking_id=picking_id,
            lines=(nothing,),
        )
        await send_command(nc, nats_prefix, receive)
        await wait_for_events(nc, nats_prefix, ReturnStockPosted)
        assert await stage.post_webhook("stock.picking", picking_id) == 202
        await eventually(
            lambda: stage.checked("webhook", "ignored"),
            until=lambda ignored: ignored >= 1,
            what="the cancelled return looked at",
        )
        assert await published(nc, nats_prefix, ReturnCancelled) == []
    [row] = [p for p in stage.sandbox.pickings() if p.id == picking_id]
    assert row.state == "cancel"


def units(n: int) -> Quantity:
    return Quantity(value=Decimal(n), uom="Units")
