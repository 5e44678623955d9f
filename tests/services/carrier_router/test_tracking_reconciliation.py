"""Tracking reconciliation: milestones whose webhooks never came are asked of the carrier."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client as NatsClient

from tests.services.carrier_router.harness import QUICK_WALK, Rig, booking, carriers_and_router
from waybill_carrier_router.tracking_book import TrackingBook
from waybill_contracts.commands import VoidShipment
from waybill_contracts.events import MilestoneReached, ShipmentBooked, ShipmentVoided
from waybill_contracts.model import MilestoneCode, ServiceLevel
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.delivery import DeliveryMode, DeliveryPolicy

LEVEL_OF = {"carrier-a": ServiceLevel.NEXT_DAY, "carrier-b": ServiceLevel.STANDARD}
TRACK_CALLS = {"carrier-a": ("list_trackers", "get_tracker"), "carrier-b": ("get_track",)}
WALK = [
    MilestoneCode.LABEL_CREATED,
    MilestoneCode.IN_TRANSIT,
    MilestoneCode.OUT_FOR_DELIVERY,
    MilestoneCode.DELIVERED,
]
LOST = {"delivery": DeliveryPolicy(mode=DeliveryMode.LOSSY, drop_rate=1.0)}
RECONCILE_OFTEN: dict[str, Any] = {
    "tracking_reconcile_interval_s": 0.2,
    "tracking_quiet_after_s": 0.3,
}


def sandbox(carrier: str, **config: Any) -> dict[str, Any]:
    key = "carrier_a" if carrier == "carrier-a" else "carrier_b"
    return {key: config}


def track_calls(rig: Rig, carrier: str) -> int:
    clock = rig.clock_a if carrier == "carrier-a" else rig.clock_b
    return sum(len(clock.times.get(name, [])) for name in TRACK_CALLS[carrier])


async def open_shipments(rig: Rig) -> list[str]:
    """The shipments the router's own open index lists (what reconciliation visits)."""
    kv = await rig.nc.jetstream().key_value(rig.subjects.kv_bucket("tracking"))
    return await TrackingBook(kv).open_keys()


@pytest.mark.parametrize("carrier", ["carrier-a", "carrier-b"])
async def test_milestones_whose_webhooks_were_lost_are_found_by_asking_the_carrier(
    nc: NatsClient, nats_url: str, nats_prefix: str, carrier: str
) -> None:
    lost_walk = sandbox(carrier, tracking_delays_s=QUICK_WALK, **LOST)
    async with carriers_and_router(
        nc, nats_url, nats_prefix, **lost_walk, **RECONCILE_OFTEN
    ) as rig:
        await rig.send(booking("shp-quiet", level=LEVEL_OF[carrier]))
        [booked] = await rig.wait_for(ShipmentBooked, "shp-quiet")
        assert booked.shipment.carrier == carrier
        milestones = await rig.wait_for(
            MilestoneReached,
            "shp-quiet",
            until=lambda found: any(m.milestone.code is MilestoneCode.DELIVERED for m in found),
        )
        assert [m.milestone.code for m in milestones] == WALK  # each once, in order
        assert track_calls(rig, carrier) >= 1
        # Delivered: out of the open index, so never asked about again.
        assert await eventually(lambda: _none_open(rig), what="the shipment left the index")
        asked = track_calls(rig, carrier)
        await rig.commands_settled()
        assert await rig.dead_letters() == []
    assert track_calls(rig, carrier) <= asked + 1  # at most a round already under way


async def _none_open(rig: Rig) -> bool:
    return await open_shipments(rig) == []


async def test_a_shipment_heard_from_recently_is_not_asked_about(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    quiet_long: dict[str, Any] = {
        "tracking_reconcile_interval_s": 0.1,
        "tracking_quiet_after_s": 3600.0,
    }
    async with carriers_and_router(nc, nats_url, nats_prefix, **quiet_long) as rig:
        await rig.send(booking("shp-fresh", level=LEVEL_OF["carrier-b"]))
        await rig.wait_for(ShipmentBooked, "shp-fresh")
        assert len(await open_shipments(rig)) == 1
        assert await eventually(lambda: _rounds(rig), until=lambda n: n >= 3, what="3 rounds")
    assert track_calls(rig, "carrier-b") == 0


async def _rounds(rig: Rig) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{rig.router_url}/metrics") as answer:
        text = await answer.text()
    for line in text.splitlines():
        if line.startswith("waybill_tracking_reconciliation_rounds_total "):
            return float(line.split()[1])
    return 0.0


async def test_a_voided_label_leaves_the_open_index(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        await rig.send(booking("shp-void", level=LEVEL_OF["carrier-b"]))
        [booked] = await rig.wait_for(ShipmentBooked, "shp-void")
        assert len(await open_shipments(rig)) == 1
        await rig.send(
            VoidShipment(
                shipment_id="shp-void",
                order_ref="WH/OUT/shp-void",
                carrier=booked.shipment.carrier,
                tracking_number=booked.shipment.tracking_number,
                reason="order cancelled",
            )
        )
        await rig.wait_for(ShipmentVoided, "shp-void")
        assert await eventually(lambda: _none_open(rig), what="the voided label left the index")
