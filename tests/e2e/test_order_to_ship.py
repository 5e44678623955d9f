"""Order to ship, end to end: Odoo → warehouse → carrier → Odoo, on real services and NATS.

Acceptance of the first business flow: every order released in the Odoo
sandbox comes back as a validated delivery with exactly one tracking number,
one label bought per shipment, carrier failover, compensation on cancel,
holds on short picks, and partner webhooks that arrive twice, out of order
or not at all.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from standardwebhooks.webhooks import Webhook

from tests.e2e.mesh import ALL_SERVICES, FLOW_SERVICES, Mesh, running_mesh, undeclared_senders
from waybill_contracts.events import (
    ExceptionRaised,
    MilestoneReached,
    PartnerCircuitChanged,
    ShipmentBooked,
    ShipmentVoidRefused,
    WarehouseOrderCancelRefused,
    WarehouseOrderPacked,
)
from waybill_contracts.model import MilestoneCode
from waybill_contracts.queries import OrderStatusRequest, OrderStatusResponse
from waybill_demo.scenario import SKUS
from waybill_runtime.queries import ask
from waybill_runtime.testing.streams import stored_messages
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.delivery import DeliveryMode, DeliveryPolicy
from waybill_sandboxes.mail import Delivery

# Generous bounds for a hung run on a loaded machine; these are not performance limits.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


def release_orders(mesh: Mesh, count: int, *, seed: int = 3) -> list[str]:
    """Create ``count`` confirmed orders in Odoo; returns their delivery pickings."""
    rng = random.Random(seed)
    refs = []
    for _ in range(count):
        lines = [(sku, float(rng.randint(1, 3))) for sku in rng.sample(SKUS, rng.randint(1, 3))]
        refs.append(mesh.odoo.create_order(lines=lines).pickings[0])
    return refs


async def all_shipped(mesh: Mesh, refs: list[str], *, timeout_s: float = 240) -> None:
    # Each look-up scans the sandbox's pickings and their chatter, on the event loop the
    # services run on: asking for every order every 50 ms starved them (O(orders²) a poll,
    # most of a 200-order run's CPU). A validated picking stays done, so each is asked
    # about until it is, and a poll stops at the first one that is not.
    left = list(refs)

    async def unfinished() -> list[str]:
        while left and mesh.odoo.picking(left[0]).state == "done":
            left.pop(0)
        return left

    await eventually(
        unfinished, until=lambda left: not left, timeout_s=timeout_s, what="every picking validated"
    )


async def shipped_emails(mesh: Mesh) -> list[str]:
    """Order refs of the "shipped" emails in the SMTP sink, one entry per email."""
    return [
        mail.headers.get("X-Waybill-Order-Ref", "")
        for mail in mesh.mail.smtp.messages
        if mail.headers.get("X-Waybill-Notification-Kind") == "shipped"
    ]


async def settled_shipped_emails(mesh: Mesh, refs: list[str], *, timeout_s: float) -> list[str]:
    """The shipped emails once there is one per order and a repeat would have come too."""
    await eventually(
        lambda: shipped_emails(mesh),
        until=lambda sent: len(sent) >= len(refs),
        timeout_s=timeout_s,
        what="a shipped email per order",
    )
    await asyncio.sleep(1.0)  # anything sent twice would arrive now
    return await shipped_emails(mesh)


async def booked_webhooks(mesh: Mesh) -> list[Delivery]:
    """Verified shipment-booked webhooks the receiver got."""
    return [
        d for d in mesh.mail.receiver.deliveries if d.verified and '"shipment.booked"' in d.body
    ]


def purchases_per_shipment(mesh: Mesh) -> Counter[str]:
    bought: Counter[str] = Counter()
    for carrier in (mesh.carrier_a, mesh.carrier_b):
        bought.update(carrier.purchases_per_reference())
    return bought


async def test_orders_ship_with_one_tracking_number_one_label_one_email_and_one_webhook(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    async with running_mesh(
        nc, nats_url, nats_prefix, services=ALL_SERVICES, tmp_state_dir=str(tmp_path)
    ) as mesh:
        # More than a fetch batch (64) and five times a consumer's concurrency (16): every
        # service takes several batches, many orders at once, which is what a repeated label,
        # email or webhook would need. 200 took 2.5 times as long for nothing these do not reach.
        refs = release_orders(mesh, 80)
        await all_shipped(mesh, refs)
        pickings = [mesh.odoo.picking(ref) for ref in refs]
        booked = await stored_messages(nc, mesh.subjects, ShipmentBooked)
        emails = await eventually(
            lambda: shipped_emails(mesh),
            until=lambda sent: len(sent) >= len(refs),
            timeout_s=120,
            what="a shipped email per order",
        )
        hooks = await eventually(
            lambda: booked_webhooks(mesh),
            until=lambda sent: len(sent) >= len(refs),
            timeout_s=120,
            what="a shipment.booked webhook per order",
        )
        await asyncio.sleep(1.0)  # anything sent twice would arrive now
        emails, hooks = await shipped_emails(mesh), await booked_webhooks(mesh)
        # Every service sent only what the contracts say it may.
        assert await undeclared_senders(nc, mesh.subjects) == []
    assert Counter(emails) == Counter({ref: 1 for ref in refs})
    assert len(hooks) == len(refs) and len({d.webhook_id for d in hooks}) == len(refs)
    verifier = Webhook(mesh.plan.offered("webhook-receiver")["secret"])
    for delivery in hooks:
        verifier.verify(delivery.body, delivery.headers)  # raises if the signature is wrong
    tracking = [p.carrier_tracking_ref for p in pickings]
    assert all(tracking), "a validated picking has no tracking number"
    assert len(set(tracking)) == len(refs)
    bought = purchases_per_shipment(mesh)
    assert sum(bought.values()) == len(refs)
    assert set(bought.values()) == {1}
    assert sorted(b.shipment.order_ref for b, _ in booked) == sorted(refs)
    by_order = {b.shipment.order_ref: b.shipment.tracking_number for b, _ in booked}
    assert all(by_order[p.name] == p.carrier_tracking_ref for p in pickings)


async def test_with_carrier_a_down_every_shipment_goes_with_carrier_b(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with running_mesh(nc, nats_url, nats_prefix) as mesh:
        mesh.carrier_a.faults.set("*", outage=True)
        refs = release_orders(mesh, 12)
        await all_shipped(mesh, refs)
        booked = await stored_messages(nc, mesh.subjects, ShipmentBooked)
        # The router's breaker for carrier A opened, and the runtime said so on the bus
        # (as the carrier-router's own NATS identity, which may publish it).
        news = await eventually(
            lambda: stored_messages(nc, mesh.subjects, PartnerCircuitChanged),
            until=lambda found: any(n.partner == "carrier-a" for n, _ in found),
            what="carrier A's breaker news",
        )
        senders = await undeclared_senders(nc, mesh.subjects)
    assert mesh.carrier_a.purchases_per_reference() == {}
    assert sum(mesh.carrier_b.purchases_per_reference().values()) == len(refs)
    assert {b.shipment.carrier for b, _ in booked} == {"carrier-b"}
    opened = [(n.service, n.partner, n.previous_state) for n, _ in news if n.state == "open"]
    assert ("carrier-router", "carrier-a", "closed") in opened
    assert {context.source for _, context in news} == {"waybill/carrier-router"}
    assert senders == []


async def test_an_order_cancelled_after_booking_is_voided_cancelled_and_noted(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    # The carrier scans the parcel only much later: the label can still be voided.
    async with running_mesh(nc, nats_url, nats_prefix, tracking_delays_s=(60, 60, 60)) as mesh:
        # Odoo refuses writes for now, so the order stays booked but unrecorded,
        # and the warehouse keeps the packed parcel from shipping.
        mesh.odoo.faults.set("stock.picking.write", outage=True)
        order = mesh.odoo.create_order(lines=[("WB-0001", 2)])
        ref = order.pickings[0]
        mesh.wms.lifecycle.hold(ref, "shipped")

        async def bought() -> int:
            return purchases_per_shipment(mesh).total()

        await eventually(bought, until=lambda n: n == 1, what="the label to be bought")
        mesh.odoo.cancel_order(order.name)

        async def voided() -> bool:
            return any(
                p.voided
                for carrier in (mesh.carrier_a, mesh.carrier_b)
                for p in carrier.purchases
                if p.reference and ref.replace("/", "-") in p.reference
            )

        await eventually(voided, what="the label to be voided")

        async def wms_cancelled() -> list[str]:
            return [
                c.outcome for c in mesh.wms.warehouse.cancellations if c.client_order_ref == ref
            ]

        await eventually(wms_cancelled, until=lambda o: "cancelled" in o, what="the WMS cancel")

        async def noted() -> int:
            return len(mesh.odoo.picking(ref).messages) + len(mesh.odoo.order(order.name).messages)

        await eventually(noted, until=lambda n: n > 0, what="a chatter note in Odoo")
        mesh.odoo.faults.clear()
        mesh.wms.lifecycle.release(ref)
    assert mesh.odoo.picking(ref).state == "cancel"
    assert purchases_per_shipment(mesh).total() == 1


async def test_a_cancel_too_late_for_warehouse_and_carrier_holds_the_order_for_ops(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    # The parcel leaves the warehouse and is scanned by the carrier at once, while
    # Odoo refuses writes: the order is booked but not recorded, so it can still
    # be cancelled in Waybill, and both compensations come too late.
    async with running_mesh(nc, nats_url, nats_prefix) as mesh:
        mesh.odoo.faults.set("stock.picking.write", outage=True)
        order = mesh.odoo.create_order(lines=[("WB-0001", 2)])
        ref = order.pickings[0]

        async def gone_and_scanned() -> tuple[str | None, bool]:
            wms_order = mesh.wms.warehouse.order_by_ref(ref)
            reached = await stored_messages(nc, mesh.subjects, MilestoneReached)
            scanned = any(
                m.order_ref == ref and m.milestone.code is MilestoneCode.IN_TRANSIT
                for m, _ in reached
            )
            return (wms_order.status if wms_order else None), scanned

        await eventually(
            gone_and_scanned,
            until=lambda s: s == ("shipped", True),
            what="the parcel shipped by the warehouse and scanned by the carrier",
        )
        mesh.odoo.cancel_order(order.name)

        async def told() -> tuple[int, set[str]]:
            raised = await stored_messages(nc, mesh.subjects, ExceptionRaised)
            codes = {e.code for e, _ in raised if e.order_ref == ref}
            return len(mesh.odoo.picking(ref).activities), codes

        activities, codes = await eventually(
            told,
            until=lambda t: t[0] >= 2 and len(t[1]) >= 2,
            what="both refusals raised and in Odoo",
        )
        refused_cancel = await stored_messages(nc, mesh.subjects, WarehouseOrderCancelRefused)
        refused_void = await stored_messages(nc, mesh.subjects, ShipmentVoidRefused)
        status = await ask(
            nc,
            mesh.subjects.query_subject("orchestrator", "order_status"),
            OrderStatusRequest(order_ref=ref),
            OrderStatusResponse,
            timeout=10,
        )
        assert await undeclared_senders(nc, mesh.subjects) == []
    assert codes == {"warehouse_cancel_refused", "void_refused"}
    assert activities == 2
    assert [e.order_ref for e, _ in refused_cancel] == [ref]
    assert [e.order_ref for e, _ in refused_void] == [ref]
    assert (status.stage, status.held) == ("held", True)
    assert [c.outcome for c in mesh.wms.warehouse.cancellations] == ["refused"]
    assert not any(p.voided for p in mesh.carrier_b.purchases + mesh.carrier_a.purchases)


async def test_a_short_pick_holds_the_order_and_tells_operations_in_odoo(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with running_mesh(nc, nats_url, nats_prefix) as mesh:
        short, normal = release_orders(mesh, 2)
        mesh.wms.warehouse.force_short_pick(short)
        await all_shipped(mesh, [normal])

        async def told() -> tuple[int, int]:
            picking = mesh.odoo.picking(short)
            return len(picking.activities), len(picking.messages)

        await eventually(told, until=lambda t: t[0] > 0 and t[1] > 0, what="activity and note")
        raised = await stored_messages(nc, mesh.subjects, ExceptionRaised)
    assert mesh.odoo.picking(short).state != "done"
    assert [e.order_ref for e, _ in raised] == [short]
    assert raised[0][0].order_held
    assert purchases_per_shipment(mesh).total() == 1  # only the normal order got a label


async def test_duplicate_reordered_and_lost_partner_webhooks_change_nothing(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with running_mesh(
        nc,
        nats_url,
        nats_prefix,
        wms_config={"delivery": DeliveryPolicy(mode=DeliveryMode.LOSSY, drop_rate=0.5)},
        service_settings={"wms-bridge": {"wms_reconcile_interval_s": 0.5}},
    ) as mesh:
        mesh.carrier_a.webhooks.policy = DeliveryPolicy(mode=DeliveryMode.DUPLICATE)
        mesh.carrier_b.webhooks.policy = DeliveryPolicy(mode=DeliveryMode.REORDER)
        refs = release_orders(mesh, 10)
        await all_shipped(mesh, refs)
        packed = await stored_messages(nc, mesh.subjects, WarehouseOrderPacked)

        async def delivered() -> set[str]:
            reached = await stored_messages(nc, mesh.subjects, MilestoneReached)
            return {m.order_ref for m, _ in reached if m.milestone.code == "delivered"}

        await eventually(delivered, until=lambda d: d == set(refs), what="every delivery")
        milestones = await stored_messages(nc, mesh.subjects, MilestoneReached)
    assert Counter(p.order_ref for p, _ in packed) == Counter({ref: 1 for ref in refs})
    per_order_code = Counter((m.order_ref, m.milestone.code) for m, _ in milestones)
    assert set(per_order_code.values()) == {1}
    assert purchases_per_shipment(mesh).total() == len(refs)


async def test_every_service_answers_ping_with_its_name_and_version(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    import msgspec

    from waybill_runtime.queries import PingResponse

    async with running_mesh(nc, nats_url, nats_prefix) as mesh:
        answers = {}
        for service in FLOW_SERVICES:
            name = mesh.subjects.query_service_name(service)
            reply = await nc.request(f"$SRV.PING.{name}", b"", timeout=5)
            answers[service] = msgspec.json.decode(reply.data, type=PingResponse)
        await asyncio.sleep(0)
    for service, ping in answers.items():
        assert ping.name == mesh.subjects.query_service_name(service)
        assert ping.version
        assert ping.type == "io.nats.micro.v1.ping_response"
