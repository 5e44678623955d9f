"""VoidShipment: the label is voided at its carrier once, and ShipmentVoided says so; a void
the carrier refuses is announced as ShipmentVoidRefused."""

from __future__ import annotations

import msgspec
from nats.aio.client import Client as NatsClient

from tests.services.carrier_router.harness import QUICK_WALK, Rig, booking, carriers_and_router
from waybill_contracts.commands import VoidShipment
from waybill_contracts.events import (
    MilestoneReached,
    ShipmentBooked,
    ShipmentVoided,
    ShipmentVoidRefused,
)
from waybill_contracts.model import MilestoneCode, ServiceLevel, Shipment


def void_of(shipment: Shipment, **changes: object) -> VoidShipment:
    command = VoidShipment(
        shipment_id=shipment.shipment_id,
        order_ref=shipment.order_ref,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        carrier_reference=shipment.carrier_reference,
        reason="order cancelled in Odoo",
    )
    return msgspec.structs.replace(command, **changes)


async def booked(
    rig: Rig, shipment_id: str, level: ServiceLevel = ServiceLevel.STANDARD
) -> Shipment:
    await rig.send(booking(shipment_id, level=level))
    [event] = await rig.wait_for(ShipmentBooked, shipment_id)
    return event.shipment


async def test_void_cancels_the_label_at_its_carrier(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        shipment = await booked(rig, "shp-void")
        await rig.send(void_of(shipment))
        [voided] = await rig.wait_for(ShipmentVoided, "shp-void")
        assert (voided.carrier, voided.tracking_number) == ("carrier-b", shipment.tracking_number)
        assert voided.order_ref == shipment.order_ref
        [purchase] = rig.carrier_b.purchases_for("shp-void")
        assert purchase.voided is True


async def test_void_without_the_carriers_reference_uses_the_booking_record(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        shipment = await booked(rig, "shp-void-a", ServiceLevel.NEXT_DAY)
        assert shipment.carrier == "carrier-a"
        await rig.send(void_of(shipment, carrier_reference=None))
        await rig.wait_for(ShipmentVoided, "shp-void-a")
        [purchase] = rig.carrier_a.purchases_for("shp-void-a")
        assert purchase.voided is True


async def test_repeated_void_voids_once_and_reports_once(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        shipment = await booked(rig, "shp-void-twice")
        await rig.send(void_of(shipment))
        await rig.wait_for(ShipmentVoided, "shp-void-twice")
        await rig.send(void_of(shipment))
        await rig.commands_settled()
        assert rig.carrier_b.calls()["create_refund"] == 1
        assert len(await rig.events(ShipmentVoided, "shp-void-twice")) == 1


async def test_void_while_the_carrier_is_down_is_retried_until_it_works(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix, carrier_retry_attempts=1) as rig:
        shipment = await booked(rig, "shp-void-later")
        rig.carrier_b.faults.set("create_refund", error_rate=1.0, times=2)
        await rig.send(void_of(shipment))
        await rig.wait_for(ShipmentVoided, "shp-void-later")
        assert rig.carrier_b.calls()["create_refund"] == 3
        assert await rig.dead_letters() == []


async def test_void_with_an_unknown_carrier_is_dead_lettered(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        shipment = await booked(rig, "shp-void-dhl")
        await rig.send(void_of(shipment, carrier="dhl"))
        [letter] = await rig.wait_for_dead_letters()
        assert "'dhl' is not a carrier" in letter.error_message
        assert rig.carrier_b.calls().get("create_refund", 0) == 0


async def test_void_of_a_label_never_bought_is_dead_lettered(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        command = VoidShipment(
            shipment_id="shp-never",
            order_ref="WH/OUT/never",
            carrier="carrier-b",
            tracking_number="9205590175547799999999",
            reason="order cancelled",
        )
        await rig.send(command)
        [letter] = await rig.wait_for_dead_letters()
        assert "nothing to void" in letter.error_message
        assert await rig.events(ShipmentVoided) == []


async def test_void_the_carrier_refuses_is_announced_as_refused_with_its_reason(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(
        nc, nats_url, nats_prefix, carrier_b={"tracking_delays_s": QUICK_WALK}
    ) as rig:
        shipment = await booked(rig, "shp-scanned")
        await rig.wait_for(
            MilestoneReached,
            "shp-scanned",
            until=lambda found: any(m.milestone.code is MilestoneCode.IN_TRANSIT for m in found),
        )
        await rig.send(void_of(shipment))
        [refused] = await rig.wait_for(ShipmentVoidRefused, "shp-scanned")
        await rig.send(void_of(shipment))  # asked again: refused again, announced once
        await rig.commands_settled()
        assert len(await rig.events(ShipmentVoidRefused, "shp-scanned")) == 1
        assert rig.carrier_b.calls()["create_refund"] == 2
        assert await rig.events(ShipmentVoided) == []
        assert await rig.dead_letters() == []
    assert "already scanned" in refused.reason
    assert (refused.order_ref, refused.carrier, refused.tracking_number) == (
        shipment.order_ref,
        "carrier-b",
        shipment.tracking_number,
    )
    [purchase] = rig.carrier_b.purchases_for("shp-scanned")
    assert purchase.voided is False
