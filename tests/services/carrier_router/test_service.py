"""The carrier-router as a running service: its identity on NATS and its HTTP face."""

from __future__ import annotations

import aiohttp
import msgspec
from nats.aio.client import Client as NatsClient

from tests.services.carrier_router.harness import booking, carriers_and_router
from waybill_contracts import SubjectMap
from waybill_contracts.events import ShipmentBooked


async def test_router_answers_ping_with_its_name_and_version(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix, version="1.2.3"):
        name = SubjectMap(nats_prefix).query_service_name("carrier-router")
        reply = await nc.request(f"$SRV.PING.{name}", b"", timeout=5)
        pong = msgspec.json.decode(reply.data)
        assert (pong["name"], pong["version"]) == (name, "1.2.3")
        assert pong["type"] == "io.nats.micro.v1.ping_response"


async def test_metrics_count_bookings_and_webhooks_per_carrier(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        await rig.send(booking("shp-metrics"))
        await rig.wait_for(ShipmentBooked, "shp-metrics")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{rig.router_url}/healthz") as response:
                assert response.status == 200
            async with http.get(f"{rig.router_url}/metrics") as response:
                text = await response.text()
        assert 'waybill_carrier_bookings_total{carrier="carrier-b",outcome="booked"} 1.0' in text
