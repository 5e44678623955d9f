"""SMTP sessions kept open between emails: reused while fresh, replaced when dropped or failed."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from nats.aio.client import Client as NatsClient

from tests.services.notifier.harness import notifier_and_sinks, shipment_booked
from waybill_contracts.model import NotificationChannel
from waybill_notifier import smtp_sessions
from waybill_notifier.attempts import NotDelivered
from waybill_notifier.config import NotifierSettings
from waybill_notifier.smtp_sessions import SmtpSessions
from waybill_runtime.settings import load_settings
from waybill_sandboxes.mail.smtp import SmtpMode, SmtpSink


async def test_a_burst_of_emails_goes_over_a_few_sessions(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    refs = [f"WH/OUT/{n:05d}" for n in range(300, 312)]
    async with notifier_and_sinks(nc, nats_url, nats_prefix, smtp_max_connections=2) as rig:
        for ref in refs:
            await rig.release(ref)
            await rig.publish(shipment_booked(ref))
        await rig.wait_for_sent(len(refs), NotificationChannel.EMAIL)
        await rig.settled()
    assert len(rig.smtp.messages) == len(refs)
    # One session per email before; now at most one per concurrent sender.
    assert 1 <= rig.smtp.counters["connections"] <= 2


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _settings(sink: SmtpSink, **extra: object) -> NotifierSettings:
    return load_settings(
        NotifierSettings,
        environ={},
        service="notifier",
        smtp_host=sink.host,
        smtp_port=sink.port,
        smtp_timeout_s=5.0,
        **extra,
    )


def _email(n: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "ship@acme.test"
    message["To"] = f"customer{n}@example.com"
    message["Subject"] = f"order {n}"
    message.set_content("shipped")
    return message


async def _send(sessions: SmtpSessions, n: int) -> None:
    async with sessions.session() as smtp:
        await smtp.send_message(_email(n))


async def test_an_idle_session_is_reused_while_fresh_and_replaced_after() -> None:
    clock = Clock()
    async with SmtpSink() as sink:
        sessions = SmtpSessions(_settings(sink), clock=clock)
        await _send(sessions, 1)
        clock.now += smtp_sessions.IDLE_REUSE_S / 2
        await _send(sessions, 2)
        assert sink.counters["connections"] == 1
        clock.now += smtp_sessions.IDLE_REUSE_S + 1
        await _send(sessions, 3)
        assert sink.counters["connections"] == 2
        await sessions.close()
    assert sink.counters["accepted"] == 3


async def test_a_session_carries_a_bounded_number_of_emails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(smtp_sessions, "EMAILS_PER_SESSION", 2)
    async with SmtpSink() as sink:
        sessions = SmtpSessions(_settings(sink))
        for n in range(5):
            await _send(sessions, n)
        await sessions.close()
    assert sink.counters["accepted"] == 5
    assert sink.counters["connections"] == 3


async def test_a_session_the_relay_dropped_is_not_used_again() -> None:
    async with SmtpSink() as sink:
        sessions = SmtpSessions(_settings(sink))
        await _send(sessions, 1)
        await sink.set_mode(SmtpMode.REFUSE)  # the relay goes down: its sessions end
        await sink.set_mode(SmtpMode.UP)
        await _send(sessions, 2)
        await sessions.close()
    assert sink.counters["accepted"] == 2
    assert sink.counters["connections"] == 2


async def test_a_session_that_failed_is_closed_not_kept() -> None:
    async with SmtpSink() as sink:
        sessions = SmtpSessions(_settings(sink))
        with pytest.raises(RuntimeError):
            async with sessions.session() as smtp:
                raise RuntimeError("the transfer broke off")
        assert not smtp.is_connected
        await _send(sessions, 1)
        await sessions.close()
    assert sink.counters["connections"] == 2


async def test_an_unreachable_relay_is_not_delivered_with_its_address() -> None:
    async with SmtpSink() as sink:
        settings = _settings(sink)
    sessions = SmtpSessions(settings)
    with pytest.raises(NotDelivered, match=f"{sink.host}:{sink.port} unreachable"):
        await _send(sessions, 1)
