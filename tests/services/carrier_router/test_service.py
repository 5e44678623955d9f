"""The carrier-router as a running service: its identity on NATS and its HTTP face."""

from __future__ import annotations

import aiohttp
import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.services.carrier_router.harness import booking, carriers_and_router
from waybill_carrier_router.app import service
from waybill_contracts import SubjectMap
from waybill_contracts.events import ShipmentBooked
from waybill_runtime.settings import SettingsError
from waybill_runtime.testing.services import running_service


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


async def test_the_router_refuses_to_start_with_the_sandboxes_keys_outside_a_local_stack(
    nats_url: str, nats_prefix: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
            pass  # pragma: no cover - it does not start
    message = str(refused.value)
    assert message.startswith("WAYBILL_CARRIER_A_API_KEY, WAYBILL_CARRIER_A_WEBHOOK_SECRET, ")
    assert "EZTK-sandbox" not in message
    # The same keys in a local stack (what `waybill up` runs) are fine.
    async with running_service(
        service, nats_url=nats_url, subject_prefix=nats_prefix, local_stack=True
    ):
        pass
