"""Outbound webhooks: signed per Standard Webhooks, retried with the same id, never repeated."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from standardwebhooks import Webhook

from tests.services.notifier.harness import (
    milestone,
    notifier_and_sinks,
    notifier_running,
    shipment_booked,
    shipment_id_of,
    sinks,
    subscription,
)
from waybill_contracts import fact_id
from waybill_contracts.model import MilestoneCode, NotificationChannel
from waybill_notifier import signing, subscriptions, webhooks
from waybill_notifier.notifications import NotificationKind, notification_id

REF = "WH/OUT/00300"


async def test_a_booking_posts_one_webhook_that_the_reference_library_verifies(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        await rig.release(REF)
        await rig.publish(shipment_booked(REF, tracking_url="https://track.example/1"))
        [sent] = await rig.wait_for_sent(1, NotificationChannel.WEBHOOK)
        await rig.settled()
    [delivery] = rig.receiver.deliveries
    expected_id = notification_id(REF, NotificationKind.SHIPPED, shipment_id_of(REF))
    assert delivery.verified, delivery.error
    assert delivery.webhook_id == expected_id == sent.notification_id
    payload = Webhook(rig.receiver.secret).verify(delivery.body, delivery.headers)
    assert payload["type"] == "shipment.booked"
    assert payload["data"]["order_ref"] == REF
    assert payload["data"]["tracking_url"] == "https://track.example/1"
    assert "marie@example.com" not in delivery.body  # no personal data in webhooks
    assert sent.recipient == f"{rig.receiver_url}/webhooks"


async def test_a_failing_endpoint_is_retried_with_the_same_webhook_id_until_it_accepts(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        rig.receiver.respond_with(503, times=2)
        await rig.release(REF)
        await rig.publish(shipment_booked(REF))
        await rig.wait_for_sent(1, NotificationChannel.WEBHOOK)
        await rig.settled()
        # A redelivered booking sends nothing more.
        await rig.publish(shipment_booked(REF))
        await rig.settled()
    answered = [d.answered for d in rig.receiver.deliveries]
    assert answered == [503, 503, 204]
    assert len({d.webhook_id for d in rig.receiver.deliveries}) == 1
    assert all(d.verified for d in rig.receiver.deliveries)
    failures = await rig.failed(permanent=False)
    assert [f.attempts for f in failures] == [1, 2]
    assert len(rig.smtp.messages) == 1  # the email went out at the first try regardless


async def test_a_429_is_retried_no_sooner_than_its_retry_after(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        rig.receiver.respond_with(429, retry_after_s=1, times=1)
        await rig.release(REF)
        await rig.publish(shipment_booked(REF))
        await rig.wait_for_sent(1, NotificationChannel.WEBHOOK)
    first, second = rig.receiver.deliveries
    assert (first.answered, second.answered) == (429, 204)
    # The redelivery backoff is 0.05 s: only the Retry-After can explain the wait.
    assert (second.received_at - first.received_at).total_seconds() >= 1.0


async def test_a_410_disables_the_endpoint_for_good_even_across_a_restart(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    other = "WH/OUT/00301"
    async with sinks(nc, nats_prefix) as rig:
        async with notifier_running(rig, nats_url, nats_prefix):
            rig.receiver.respond_with(410)
            await rig.release(REF)
            await rig.release(other)
            await rig.publish(shipment_booked(REF))
            [failure] = await rig.wait_for_failed(1, permanent=True)
            await rig.settled()
            rig.receiver.respond_normally()
            await rig.publish(shipment_booked(other))
            await rig.wait_for_mail(2)
            await rig.settled()
        # A new instance remembers it too.
        async with notifier_running(rig, nats_url, nats_prefix):
            await rig.publish(milestone(other, MilestoneCode.DELIVERED))
            await rig.wait_for_mail(3)
            await rig.settled()
    assert failure.channel is NotificationChannel.WEBHOOK
    assert "410" in failure.reason
    assert [d.answered for d in rig.receiver.deliveries] == [410]
    assert len(await rig.failed(permanent=True)) == 1


async def test_a_refusing_endpoint_is_given_up_after_one_attempt(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        rig.receiver.respond_with(400)
        await rig.release(REF)
        await rig.publish(shipment_booked(REF))
        [failure] = await rig.wait_for_failed(1, permanent=True)
        await rig.settled()
        rig.receiver.respond_normally()
        # The next notification to it is tried again: only 410 disables.
        await rig.publish(milestone(REF, MilestoneCode.DELIVERED))
        await rig.wait_for_sent(1, NotificationChannel.WEBHOOK)
        await rig.settled()
    assert "HTTP 400" in failure.reason
    assert failure.recipient is not None and failure.recipient.endswith("/webhooks")
    assert [d.answered for d in rig.receiver.deliveries] == [400, 204]


async def test_a_redirect_is_not_followed(nc: NatsClient, nats_url: str, nats_prefix: str) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        rig.receiver.respond_with(308)
        await rig.release(REF)
        await rig.publish(shipment_booked(REF))
        [failure] = await rig.wait_for_failed(1, permanent=True)
        await rig.settled()
    assert "redirects are not followed" in failure.reason
    assert len(rig.receiver.deliveries) == 1


async def test_an_endpoint_that_times_out_or_drops_the_connection_is_retried(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix, webhook_timeout_s=0.3) as rig:
        rig.receiver.faults.set("receive_webhook", timeout=True, times=1)
        await rig.release(REF)
        await rig.publish(shipment_booked(REF))
        await rig.wait_for_sent(1, NotificationChannel.WEBHOOK)
        rig.receiver.faults.set("receive_webhook", outage=True, times=1)
        await rig.publish(milestone(REF, MilestoneCode.DELIVERED))
        await rig.wait_for_sent(2, NotificationChannel.WEBHOOK)
        await rig.settled()
        failures = await rig.failed(permanent=False)
    assert len(failures) == 2
    assert all(f.channel is NotificationChannel.WEBHOOK for f in failures)
    assert [d.answered for d in rig.receiver.deliveries] == [204, 204]


async def test_subscriptions_choose_endpoints_by_channel_customer_and_event(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subscriptions = [
        subscription("{receiver}/webhooks/web", "{secret}", channels=["web"]),
        subscription("{receiver}/webhooks/market", "{secret}", channels=["marketplace"]),
        subscription("{receiver}/webhooks/vip", "{secret}", partner_ids=[99]),
        subscription("{receiver}/webhooks/delivered", "{secret}", events=["shipment.delivered"]),
    ]
    web, market = "WH/OUT/00310", "WH/OUT/00311"
    async with notifier_and_sinks(nc, nats_url, nats_prefix, subscriptions=subscriptions) as rig:
        await rig.release(web, channel="web", partner_id=99)
        await rig.release(market, channel="marketplace", partner_id=5)
        for ref in (web, market):
            await rig.publish(shipment_booked(ref))
            await rig.publish(milestone(ref, MilestoneCode.DELIVERED))
        await rig.wait_for_mail(4)
        await rig.settled()
    got = sorted(
        (d.path, json.loads(d.body)["data"]["order_ref"], json.loads(d.body)["type"])
        for d in rig.receiver.deliveries
    )
    assert got == sorted(
        [
            ("/webhooks/web", web, "shipment.booked"),
            ("/webhooks/web", web, "shipment.delivered"),
            ("/webhooks/vip", web, "shipment.booked"),
            ("/webhooks/vip", web, "shipment.delivered"),
            ("/webhooks/delivered", web, "shipment.delivered"),
            ("/webhooks/market", market, "shipment.booked"),
            ("/webhooks/market", market, "shipment.delivered"),
            ("/webhooks/delivered", market, "shipment.delivered"),
        ]
    )
    assert all(d.verified for d in rig.receiver.deliveries)


async def test_one_dead_endpoint_does_not_hold_back_another(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subscriptions = [
        subscription("http://127.0.0.1:9/webhooks", "{secret}", name="unreachable"),
        subscription("{receiver}/webhooks/alive", "{secret}", name="alive"),
    ]
    async with notifier_and_sinks(nc, nats_url, nats_prefix, subscriptions=subscriptions) as rig:
        await rig.release(REF)
        await rig.publish(shipment_booked(REF))
        [sent] = await rig.wait_for_sent(1, NotificationChannel.WEBHOOK)
        failures = await rig.wait_for_failed(2, permanent=False)
        await rig.wait_for_mail(1)
    assert sent.recipient == "alive"
    assert {f.channel for f in failures} == {NotificationChannel.WEBHOOK}
    assert all("unreachable" in f.reason for f in failures)


async def test_the_webhook_body_is_the_same_bytes_on_every_attempt(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        rig.receiver.respond_with(502, times=1)
        await rig.release(REF)
        await rig.publish(milestone(REF, MilestoneCode.OUT_FOR_DELIVERY, location="Depot 4"))
        await rig.wait_for_sent(1, NotificationChannel.WEBHOOK)
        await rig.wait_for_deliveries(2)
    first, second = rig.receiver.deliveries
    assert first.body == second.body
    body = msgspec.json.decode(second.body)
    assert body["type"] == "shipment.out_for_delivery"
    assert body["data"]["milestone"]["location"] == "Depot 4"


async def test_each_webhook_builds_only_its_own_three_headers_and_decodes_no_secret(
    nc: NatsClient, nats_url: str, nats_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    given: list[dict[str, str]] = []
    decoded: list[str] = []
    hashed: list[tuple[str, ...]] = []
    request = aiohttp.ClientSession._request
    decode = signing.decode_secret
    endpoint_hash = fact_id

    async def counted_request(
        session: aiohttp.ClientSession, method: str, url: Any, **options: Any
    ) -> aiohttp.ClientResponse:
        given.append(dict(options["headers"]))
        return await request(session, method, url, **options)

    def counted_decode(secret: str) -> bytes:
        decoded.append(secret)
        return decode(secret)

    def counted_hash(*parts: str) -> str:
        hashed.append(parts)
        return endpoint_hash(*parts)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", counted_request)
    monkeypatch.setattr(webhooks, "decode_secret", counted_decode, raising=False)
    monkeypatch.setattr(signing, "decode_secret", counted_decode)  # sign_standard_webhook's
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        monkeypatch.setattr(subscriptions, "fact_id", counted_hash)  # after the start
        await rig.release(REF)
        await rig.publish(shipment_booked(REF))
        await rig.publish(milestone(REF, MilestoneCode.OUT_FOR_DELIVERY))
        await rig.publish(milestone(REF, MilestoneCode.DELIVERED))
        await rig.wait_for_sent(3, NotificationChannel.WEBHOOK)
        await rig.settled()
    # Three webhooks: three headers each (five before: the content type and the user
    # agent are the session's), one secret decoded (three before), no endpoint key
    # worked out again (nine before: three a webhook).
    assert [sorted(headers) for headers in given] == [
        ["webhook-id", "webhook-signature", "webhook-timestamp"]
    ] * 3
    assert decoded == [rig.receiver.secret]
    assert hashed == []
    deliveries = rig.receiver.deliveries
    assert len(deliveries) == 3 and all(delivery.verified for delivery in deliveries)
    assert {d.headers.get("Content-Type") for d in deliveries} == {"application/json"}
    assert {d.headers.get("User-Agent", "")[:17] for d in deliveries} == {"Waybill-Notifier/"}
