"""Customer emails: sent once per notification, whatever is redelivered or broken meanwhile."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from nats.aio.client import Client as NatsClient

from tests.services.notifier.harness import (
    Rig,
    milestone,
    notifier_and_sinks,
    shipment_booked,
    shipment_id_of,
)
from waybill_contracts.model import MilestoneCode, NotificationChannel
from waybill_notifier.notifications import NotificationKind, notification_id
from waybill_runtime.testing.waiting import eventually

REF = "WH/OUT/00100"


async def test_a_booked_shipment_sends_one_shipped_email_with_text_and_html(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        await rig.release(REF, email="marie@example.com", name="Marie Jansen")
        await rig.publish(shipment_booked(REF, tracking_url="https://track.example/TN1"))
        sent = await rig.wait_for_sent(1, NotificationChannel.EMAIL)
        await rig.settled()
    [mail] = rig.smtp.messages
    expected_id = notification_id(REF, NotificationKind.SHIPPED, shipment_id_of(REF))
    assert mail.rcpt_tos == ["marie@example.com"]
    assert mail.mail_from == "ship@acme.test"
    assert mail.from_ == "Acme Shipping <ship@acme.test>"
    assert mail.to == ["Marie Jansen <marie@example.com>"]
    assert mail.subject == f"Your order {REF} has shipped"
    assert mail.message_id == f"<{expected_id}@acme.test>"
    assert mail.text is not None and "TNWHOUT00100" in mail.text
    assert "https://track.example/TN1" in mail.text
    assert mail.html is not None and 'href="https://track.example/TN1"' in mail.html
    assert [(s.notification_id, s.recipient, s.template) for s in sent] == [
        (expected_id, "marie@example.com", "shipped")
    ]
    assert sent[0].provider_message_id == mail.message_id


async def test_a_redelivered_booking_still_sends_one_email(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        await rig.release(REF)
        booked = shipment_booked(REF)
        # Published three times with fresh ids: JetStream keeps all three.
        for _ in range(3):
            await rig.publish(booked)
        await rig.wait_for_mail(1)
        await rig.settled()
        # And once more after the first was fully handled.
        await rig.publish(booked)
        await rig.settled()
    assert len(rig.smtp.messages) == 1
    assert len(await rig.sent(NotificationChannel.EMAIL)) == 1
    assert await rig.dead_letters() == []


@pytest.mark.parametrize("mode", ["refuse", "unavailable", "defer"])
async def test_emails_wait_for_a_broken_relay_while_webhooks_keep_flowing_then_arrive_once(
    nc: NatsClient, nats_url: str, nats_prefix: str, mode: str
) -> None:
    refs = [f"WH/OUT/0020{n}" for n in range(3)]
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        await rig.smtp.set_mode(mode)
        for ref in refs:
            await rig.release(ref)
            await rig.publish(shipment_booked(ref))
        # The consumer kept going: every order's webhook went out meanwhile.
        await rig.wait_for_sent(len(refs), NotificationChannel.WEBHOOK)
        await rig.wait_for_failed(2 * len(refs), permanent=False)
        assert rig.smtp.messages == []
        await rig.smtp.set_mode("up")
        await rig.wait_for_mail(len(refs))
        await rig.settled()
        failures = await rig.failed(permanent=False)
    assert sorted(m.subject for m in rig.smtp.messages) == sorted(
        f"Your order {ref} has shipped" for ref in refs
    )
    assert len(rig.receiver.deliveries) == len(refs)
    assert {f.channel for f in failures} == {NotificationChannel.EMAIL}
    assert await rig.failed(permanent=True) == []
    assert await rig.dead_letters() == []


async def test_a_booking_seen_before_its_order_is_retried_and_sent_once_the_order_is_known(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        await rig.publish(shipment_booked(REF))
        # Redelivered a few times while the order is unknown; nothing sent.
        await rig.publish(milestone(REF, MilestoneCode.IN_TRANSIT))
        await eventually(
            lambda: _delivery_count(rig),
            until=lambda n: n >= 3,
            what="the booking redelivered",
        )
        assert rig.smtp.messages == []
        await rig.release(REF, email="late@example.com")
        [mail] = await rig.wait_for_mail(1)
        await rig.settled()
    assert mail.rcpt_tos == ["late@example.com"]
    assert len(rig.smtp.messages) == 1


async def _delivery_count(rig: Rig) -> int:
    info = await rig.nc.jetstream().consumer_info(
        rig.subjects.events_stream.name, rig.subjects.durable("notifier", "events")
    )
    return info.delivered.consumer_seq if info.delivered is not None else 0


async def test_only_out_for_delivery_delivered_and_exception_milestones_are_notified(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    skipped = [
        MilestoneCode.LABEL_CREATED,
        MilestoneCode.IN_TRANSIT,
        MilestoneCode.AVAILABLE_FOR_PICKUP,
        MilestoneCode.DELIVERY_ATTEMPT_FAILED,
        MilestoneCode.RETURNED_TO_SENDER,
        MilestoneCode.CANCELLED,
        MilestoneCode.UNKNOWN,
    ]
    told = [MilestoneCode.OUT_FOR_DELIVERY, MilestoneCode.DELIVERED, MilestoneCode.EXCEPTION]
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        await rig.release(REF, locale="nl_NL")
        for code in skipped:
            await rig.publish(milestone(REF, code))
        await rig.publish(
            milestone(REF, MilestoneCode.EXCEPTION, location="Utrecht", description="Damaged")
        )
        await rig.publish(milestone(REF, MilestoneCode.OUT_FOR_DELIVERY))
        await rig.publish(milestone(REF, MilestoneCode.DELIVERED))
        await rig.wait_for_mail(len(told))
        await rig.settled()
        sent = await rig.sent(NotificationChannel.EMAIL)
    assert sorted(s.template for s in sent) == sorted(code.value for code in told)
    subjects = sorted(m.subject for m in rig.smtp.messages)
    assert subjects == sorted(
        [
            f"Er is een probleem met de bezorging van je bestelling {REF}",
            f"Je bestelling {REF} wordt vandaag bezorgd",
            f"Je bestelling {REF} is bezorgd",
        ]
    )
    [problem] = [m for m in rig.smtp.messages if "probleem" in m.subject]
    assert problem.text is not None and "Damaged" in problem.text and "Utrecht" in problem.text
    assert len(rig.receiver.deliveries) == len(told)


async def test_a_milestone_email_links_the_tracking_page_known_from_the_booking(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        await rig.release(REF)
        await rig.publish(shipment_booked(REF, tracking_url="https://track.example/abc"))
        await rig.wait_for_mail(1)
        await rig.publish(milestone(REF, MilestoneCode.OUT_FOR_DELIVERY))
        mails = await rig.wait_for_mail(2)
    assert all(m.text is not None and "https://track.example/abc" in m.text for m in mails)


async def test_a_carrier_without_tracking_page_gets_one_from_the_configured_template(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    templates = {"dhl": "https://dhl.example/track?id={tracking_number}"}
    async with notifier_and_sinks(
        nc, nats_url, nats_prefix, tracking_url_templates=templates
    ) as rig:
        await rig.release(REF)
        await rig.publish(shipment_booked(REF))
        [mail] = await rig.wait_for_mail(1)
        [delivery] = await rig.wait_for_deliveries(1)
    assert mail.html is not None and "https://dhl.example/track?id=TNWHOUT00100" in mail.html
    assert '"tracking_url":"https://dhl.example/track?id=TNWHOUT00100"' in delivery.body


async def test_a_customer_without_email_gets_no_email_but_the_webhook_still_goes_out(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        await rig.release(REF, email=None)
        await rig.publish(shipment_booked(REF))
        [failure] = await rig.wait_for_failed(1, permanent=True)
        await rig.wait_for_sent(1, NotificationChannel.WEBHOOK)
        await rig.settled()
    assert failure.channel is NotificationChannel.EMAIL
    assert "no customer email" in failure.reason
    assert failure.recipient is None  # there was no address to go to
    assert rig.smtp.messages == []
    assert await rig.dead_letters() == []


class _RefusingSink:
    """Makes a sink refuse one mailbox for good (550), as a relay does for unknown users."""

    def __init__(self, refused: str) -> None:
        self.refused = refused

    def install(self, sink: object) -> None:
        original = sink.handle_RCPT  # type: ignore[attr-defined]
        refused = self.refused

        async def handle_rcpt(
            server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
        ) -> str:
            if address == refused:
                return "550 5.1.1 No such user here"
            result: str = await original(server, session, envelope, address, options)
            return result

        sink.handle_RCPT = handle_rcpt  # type: ignore[attr-defined]


async def test_a_mailbox_refused_for_good_is_reported_once_and_not_retried(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        _RefusingSink("nobody@example.com").install(rig.smtp)
        await rig.release(REF, email="nobody@example.com")
        await rig.publish(shipment_booked(REF))
        [failure] = await rig.wait_for_failed(1, permanent=True)
        await rig.settled()
        await rig.publish(shipment_booked(REF))  # a redelivery tries nothing more
        await rig.settled()
        failures = await rig.failed()
    assert failure.channel is NotificationChannel.EMAIL
    assert "550" in failure.reason
    assert "nobody@example.com" not in failure.reason  # masked: the reason is free text
    assert failure.recipient == "nobody@example.com"  # as the contract says (personal data)
    assert len(failures) == 1
    assert rig.smtp.messages == []
