"""The notifier as a service: its name and version on $SRV.PING, and no personal data in logs."""

from __future__ import annotations

import logging

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.services.notifier.harness import notifier_and_sinks, shipment_booked
from waybill_contracts import SubjectMap
from waybill_notifier.app import service
from waybill_runtime.personal_data import hash_email
from waybill_runtime.queries import PingResponse


async def test_the_notifier_answers_ping_with_its_name_and_version(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix, version="7.0.1"):
        name = SubjectMap(nats_prefix).query_service_name(service.name)
        reply = await nc.request(f"$SRV.PING.{name}", b"", timeout=5)
    ping = msgspec.json.decode(reply.data, type=PingResponse)
    assert ping.name == name and name.endswith("notifier")
    assert ping.version == "7.0.1"


async def test_customer_emails_never_appear_in_the_log(
    nc: NatsClient, nats_url: str, nats_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    ref = "WH/OUT/00800"
    caplog.set_level(logging.DEBUG)
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        await rig.smtp.set_mode("defer")  # the relay's refusal names the address
        await rig.release(ref, email="private.person@example.com")
        await rig.publish(shipment_booked(ref))
        await rig.wait_for_failed(2, permanent=False)
        await rig.smtp.set_mode("up")
        await rig.wait_for_mail(1)
        await rig.settled()
        failures = await rig.failed(permanent=False)
    # Ours only: the SMTP sink (aiosmtpd, "mail.log") and the client log the SMTP dialogue.
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("waybill"))
    assert hash_email("private.person@example.com") in logged  # the same customer, unnamed
    assert "private.person" not in logged and "example.com" not in logged
    assert all("private.person" not in failure.reason for failure in failures)
