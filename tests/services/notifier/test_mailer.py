"""Composing customer emails: headers that identify them, and addresses that cannot be used."""

from __future__ import annotations

import asyncio
import email.utils
import logging
from asyncio.selector_events import _SelectorSocketTransport  # type: ignore[attr-defined]
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import msgspec
import pytest
import uvloop
from aiosmtplib import protocol

from tests.services.notifier.harness import shipment_booked
from waybill_notifier import mailer as mailer_module
from waybill_notifier.attempts import NotDelivered, Undeliverable
from waybill_notifier.config import NotifierSettings
from waybill_notifier.mailer import Mailer, message_id_for
from waybill_notifier.notifications import from_shipment_booked
from waybill_notifier.order_book import CustomerContact
from waybill_notifier.rendering import render_email
from waybill_runtime.logs import mask_email
from waybill_runtime.settings import load_settings
from waybill_sandboxes.mail.smtp import SmtpMode, SmtpSink

REF = "WH/OUT/00900"
NOTIFICATION = from_shipment_booked(shipment_booked(REF))
CONTACT = CustomerContact(order_ref=REF, order_label=REF, name="Marie Jansen", email="m@x.test")


def mailer(mail_from: str = "Acme <ship@acme.test>") -> Mailer:
    return Mailer(
        load_settings(NotifierSettings, environ={}, service="notifier", mail_from=mail_from)
    )


def compose(contact: CustomerContact) -> EmailMessage:
    """The email as a mail client reads the bytes that go to the relay."""
    email = mailer().compose(NOTIFICATION, contact, render_email(NOTIFICATION, contact))
    parsed = message_from_bytes(email.data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_an_email_carries_a_message_id_made_from_the_notification_id() -> None:
    first, again = compose(CONTACT), compose(CONTACT)
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"] == f"<{NOTIFICATION.notification_id}@acme.test>"
    assert first["X-Waybill-Notification-Kind"] == "shipped"
    assert first["X-Waybill-Order-Ref"] == REF
    assert first["Auto-Submitted"] == "auto-generated"
    assert [part.get_content_type() for part in first.iter_parts()] == [
        "text/plain",
        "text/html",
    ]


def test_the_message_id_domain_comes_from_the_sender_address() -> None:
    assert message_id_for("msg_1", "Shop <noreply@shop.example>") == "<msg_1@shop.example>"


@pytest.mark.parametrize(
    "address", [None, "not-an-address", "a@b.test, c@d.test", "m@x.test\nBcc: spy@evil.test"]
)
def test_an_unusable_customer_address_is_undeliverable_without_repeating_it(
    address: str | None,
) -> None:
    contact = msgspec.structs.replace(CONTACT, email=address)
    with pytest.raises(Undeliverable) as refused:
        compose(contact)
    assert REF in str(refused.value)
    assert "c@d.test" not in str(refused.value) and "spy@evil.test" not in str(refused.value)


def test_a_name_with_a_line_break_stays_on_one_header_line() -> None:
    contact = msgspec.structs.replace(CONTACT, name="Marie\r\nBcc: spy@evil.test")
    message = compose(contact)
    assert "\n" not in str(message["To"])
    assert message["Bcc"] is None


def test_names_and_subjects_beyond_ascii_arrive_as_written_with_both_bodies() -> None:
    contact = msgspec.structs.replace(CONTACT, name='Zoë Ångström, "Ltd"', locale="nl")
    rendered = render_email(NOTIFICATION, contact)
    email = mailer("Ácme Ship <ship@acme.test>").compose(NOTIFICATION, contact, rendered)
    assert email.data.isascii()  # every header encoded, both bodies in base64
    assert all(len(line) <= 998 for line in email.data.split(b"\r\n"))
    message = message_from_bytes(email.data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["To"].addresses[0].display_name == 'Zoë Ångström, "Ltd"'
    assert message["To"].addresses[0].addr_spec == "m@x.test"
    assert message["From"].addresses[0].display_name == "Ácme Ship"
    assert message["Subject"] == rendered.subject
    assert email.recipient == "m@x.test" and email.message_id == message["Message-ID"]
    text, html = (part.get_content() for part in message.iter_parts())
    assert text == rendered.text and html == rendered.html


def test_a_subject_longer_than_a_header_line_is_folded() -> None:
    contact = msgspec.structs.replace(CONTACT)
    rendered = msgspec.structs.replace(
        render_email(NOTIFICATION, contact), subject="Your order " + "x" * 50 + " y" * 600
    )
    email = mailer().compose(NOTIFICATION, contact, rendered)
    assert all(len(line) <= 998 for line in email.data.split(b"\r\n"))
    message = message_from_bytes(email.data, policy=policy.default)
    assert message["Subject"] == rendered.subject


# -- what composing and sending an email costs (issue #18: the notifier's CPU per order) --


def test_a_plain_customer_address_is_taken_without_the_email_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from email.headerregistry import Address
    from email.utils import parseaddr

    parsed: list[str] = []

    def counted_address(*args: object, **kwargs: object) -> object:
        parsed.append("Address")
        return Address(*args, **kwargs)  # type: ignore[arg-type]

    def counted_parseaddr(*args: object, **kwargs: object) -> object:
        parsed.append("parseaddr")
        return parseaddr(*args, **kwargs)  # type: ignore[arg-type]

    sender = mailer()
    monkeypatch.setattr("waybill_notifier.mailer.Address", counted_address)
    monkeypatch.setattr("waybill_notifier.mailer.parseaddr", counted_parseaddr)
    rendered = render_email(NOTIFICATION, CONTACT)
    emails = [sender.compose(NOTIFICATION, CONTACT, rendered) for _ in range(3)]

    # Three emails, no parse (two each before: the recipient, and the sender's domain
    # for the Message-ID).
    assert parsed == []
    assert {email.recipient for email in emails} == {"m@x.test"}
    quoted = msgspec.structs.replace(CONTACT, email='"marie jansen"@x.test')
    assert sender.compose(NOTIFICATION, quoted, rendered).recipient == '"marie jansen"@x.test'
    assert parsed == ["Address"]  # what is not plain dot-atoms is judged by the parser


async def test_an_email_to_a_relay_without_pipelining_parses_each_address_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []
    read: list[int] = []
    parseaddr, normalize = email.utils.parseaddr, protocol.normalize_message_line_endings

    def counted_parseaddr(address: str, *args: object, **kwargs: object) -> tuple[str, str]:
        parsed.append(address)
        return parseaddr(address, *args, **kwargs)  # type: ignore[arg-type]

    def counted_normalize(message: bytes) -> bytes:
        read.append(len(message))
        return normalize(message)

    sizes: list[list[str]] = []

    async with SinkWithoutPipelining() as sink:
        handle_mail = sink.handle_MAIL

        async def recorded_mail(*args: Any) -> str:
            sizes.append(list(args[-1]))
            return await handle_mail(*args)

        monkeypatch.setattr(sink, "handle_MAIL", recorded_mail)
        sender = Mailer(
            load_settings(
                NotifierSettings,
                environ={},
                service="notifier",
                mail_from="Acme <ship@acme.test>",
                smtp_host=sink.host,
                smtp_port=sink.port,
            )
        )
        rendered = render_email(NOTIFICATION, CONTACT)
        emails = [sender.compose(NOTIFICATION, CONTACT, rendered) for _ in range(3)]
        await sender.send(emails[0])  # opens and greets the session
        monkeypatch.setattr(email.utils, "parseaddr", counted_parseaddr)
        for name in ("aiosmtplib.smtp", "aiosmtplib.protocol"):
            monkeypatch.setattr(f"{name}.normalize_message_line_endings", counted_normalize)
        for outgoing in emails[1:]:
            await sender.send(outgoing)
        await sender.aclose()

    # Two emails: each address parsed once (MAIL, RCPT) and the message read once
    # (DATA); before, aiosmtplib's sendmail parsed both again and read the message
    # once more to count its size (8 parses and 4 reads).
    assert parsed == ["ship@acme.test", "m@x.test"] * 2
    assert read == [len(emails[1].data), len(emails[2].data)]
    assert [mail.rcpt_tos for mail in sink.messages] == [["m@x.test"]] * 3
    # The relay is still told each message's size (RFC 1870), as sendmail did.
    assert sizes == [[f"SIZE={len(outgoing.data)}"] for outgoing in emails]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_an_email_to_the_relay_sets_no_timer_per_reply(
    pipelining: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    timed: list[float] = []
    wait_for = asyncio.wait_for

    async def counted_wait_for(awaitable: Any, *args: Any, **kwargs: Any) -> Any:
        timeout = (args or [kwargs.get("timeout")])[0]
        if timeout is not None:
            timed.append(timeout)
        return await wait_for(awaitable, *args, **kwargs)

    async with SmtpSink() if pipelining else SinkWithoutPipelining() as sink:
        sender = _mailer_for(sink.port)
        email = sender.compose(NOTIFICATION, CONTACT, render_email(NOTIFICATION, CONTACT))
        await sender.send(email)  # opens and greets the session
        monkeypatch.setattr(asyncio, "wait_for", counted_wait_for)
        await sender.send(email)
        await sender.send(email)
        monkeypatch.undo()
        await sender.aclose()
    # Two emails, no asyncio.wait_for with a timeout (aiosmtplib's four per email
    # before: MAIL, RCPT, DATA, the message): one deadline per email, moved along.
    assert timed == []
    assert len(sink.messages) == 3


async def test_a_relay_that_stops_answering_is_given_up_on_within_the_timeout() -> None:
    async def greet_then_say_nothing(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"220 relay ready\r\n")
        await reader.readline()  # EHLO
        writer.write(b"250-relay\r\n250 SIZE 1000000\r\n")
        await reader.read()  # MAIL FROM, never answered

    server = await asyncio.start_server(greet_then_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sender = _mailer_for(port, smtp_timeout_s=0.3)
    email = sender.compose(NOTIFICATION, CONTACT, render_email(NOTIFICATION, CONTACT))
    started = asyncio.get_running_loop().time()
    with pytest.raises(NotDelivered) as broke_off:
        await sender.send(email)
    assert asyncio.get_running_loop().time() - started < 3
    assert "broke off" in str(broke_off.value)
    await sender.aclose()
    server.close()


def _mailer_for(port: int, **settings: Any) -> Mailer:
    return Mailer(
        load_settings(
            NotifierSettings,
            environ={},
            service="notifier",
            mail_from="Acme <ship@acme.test>",
            smtp_host="127.0.0.1",
            smtp_port=port,
            **settings,
        )
    )


class SinkWithoutPipelining(SmtpSink):
    """The sandbox's relay, not offering PIPELINING (as the sandbox did before it did)."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        offered = await super().handle_EHLO(server, session, envelope, hostname, responses)
        return [line for line in offered if "PIPELINING" not in line]


class SinkWithoutChunking(SmtpSink):
    """The sandbox's relay, offering PIPELINING but not CHUNKING (as the sandbox did before)."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        offered = await super().handle_EHLO(server, session, envelope, hostname, responses)
        return [line for line in offered if "CHUNKING" not in line]


@pytest.mark.parametrize("chunking", [True, False])
async def test_a_relay_offering_pipelining_gets_each_email_in_two_writes_and_with_chunking_one(
    chunking: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[bytes] = []
    write = _SelectorSocketTransport.write

    def counted_write(transport: _SelectorSocketTransport, data: Any) -> None:
        if transport.get_extra_info("peername")[1] == relay_port:  # the notifier's side
            written.append(bytes(data))
        write(transport, data)

    async with SmtpSink() if chunking else SinkWithoutChunking() as sink:
        relay_port = sink.port
        sender = _mailer_for(sink.port)
        rendered = render_email(NOTIFICATION, CONTACT)
        dotted = msgspec.structs.replace(rendered, text=".\n..leading dots\n.")
        emails = [
            sender.compose(NOTIFICATION, CONTACT, rendered),
            sender.compose(NOTIFICATION, CONTACT, dotted),
        ]
        await sender.send(emails[0])  # opens and greets the session
        monkeypatch.setattr(_SelectorSocketTransport, "write", counted_write)
        for email in emails:
            await sender.send(email)
        monkeypatch.undo()
        await sender.aclose()

    if chunking:
        # Two emails, one write each (MAIL, RCPT, BDAT and the message's bytes):
        # two each with PIPELINING alone, four each before it.
        assert [chunk.split(b"\r\n")[0][:9] for chunk in written] == [b"MAIL FROM"] * 2
        assert [chunk.split(b"\r\n")[2] for chunk in written] == [
            b"BDAT %d LAST" % len(email.data) for email in emails
        ]
        assert [chunk.split(b"\r\n", 3)[3] for chunk in written] == [e.data for e in emails]
    else:
        # Two emails, two writes each (MAIL, RCPT and DATA together; the message):
        # four each before (a round trip per command).
        assert [chunk.split(b"\r\n")[0][:9] for chunk in written] == [
            b"MAIL FROM",
            b"From: Acm",
        ] * 2
        assert written[0].count(b"\r\n") == 3
    assert [mail.rcpt_tos for mail in sink.messages] == [["m@x.test"]] * 3
    # The bytes arrive as composed: the same headers, the text with its leading dots.
    assert sink.messages[2].text is not None
    assert sink.messages[2].text.replace("\r\n", "\n") == ".\n..leading dots\n."
    assert sink.messages[1].headers == {
        **sink.messages[2].headers,
        "Date": sink.messages[1].headers["Date"],
    }


@pytest.mark.parametrize("chunking", [True, False])
@pytest.mark.parametrize("mode", [SmtpMode.DEFER, SmtpMode.UNAVAILABLE])
async def test_a_pipelined_refusal_is_told_as_before_and_the_session_is_not_reused(
    mode: SmtpMode, chunking: bool
) -> None:
    async with SmtpSink() if chunking else SinkWithoutChunking() as sink:
        sender = _mailer_for(sink.port)
        email = sender.compose(NOTIFICATION, CONTACT, render_email(NOTIFICATION, CONTACT))
        await sender.send(email)
        await sink.set_mode(mode)
        with pytest.raises(NotDelivered) as refused:
            await sender.send(email)
        await sink.set_mode(SmtpMode.UP)
        await sender.send(email)
        await sender.aclose()
    expected = (
        "the relay deferred email:" if mode is SmtpMode.DEFER else "deferred the email: SMTP 421"
    )
    assert expected in str(refused.value)
    assert len(sink.messages) == 2
    assert sink.counters["connections"] == 2  # the refused session was closed, not reused


def test_pipelining_works_on_uvloop_as_the_service_runs() -> None:
    async def scenario() -> list[str]:
        async with SmtpSink() as sink:
            sender = _mailer_for(sink.port)
            email = sender.compose(NOTIFICATION, CONTACT, render_email(NOTIFICATION, CONTACT))
            for _ in range(3):
                await sender.send(email)
            await sender.aclose()
            return [mail.subject for mail in sink.messages]

    subjects = uvloop.run(scenario())
    assert len(subjects) == 3 and len(set(subjects)) == 1


async def test_an_email_accepted_by_the_relay_is_logged_at_debug_only(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    masked: list[str] = []

    def counted_mask(address: str) -> str:
        masked.append(address)
        return mask_email(address)

    monkeypatch.setattr(mailer_module, "mask_email", counted_mask)
    async with SmtpSink() as sink:
        sender = _mailer_for(sink.port)
        email = sender.compose(NOTIFICATION, CONTACT, render_email(NOTIFICATION, CONTACT))
        caplog.set_level(logging.INFO)
        for _ in range(3):
            await sender.send(email)
        # Routine: NotificationSent records each send; no line (nor masking) at INFO.
        # Three lines and six maskings (one for the line, one in case of a refusal) before.
        assert [r for r in caplog.records if r.name.startswith("waybill")] == []
        assert masked == []
        caplog.set_level(logging.DEBUG)
        await sender.send(email)
        await sender.aclose()
    assert len(sink.messages) == 4
    # At DEBUG the line is there, the recipient hashed as the personal-data policy says.
    [line] = [r.getMessage() for r in caplog.records if r.name == "waybill.notifier.mail"]
    assert line.endswith(f"accepted for {mask_email('m@x.test')}") and "x.test" not in line


def test_emails_composed_in_the_same_second_share_one_formatted_date(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    formatted: list[datetime] = []
    format_datetime = email.utils.format_datetime

    def counted(moment: datetime) -> str:
        formatted.append(moment)
        return format_datetime(moment)

    monkeypatch.setattr(mailer_module, "format_datetime", counted)
    now = datetime(2025, 3, 15, 11, 5, 7, 120_000, tzinfo=UTC)
    sender = Mailer(
        load_settings(NotifierSettings, environ={}, service="notifier"), now=lambda: now
    )
    rendered = render_email(NOTIFICATION, CONTACT)
    dates = []
    for step_ms in (0, 300, 500, 100):  # .12, .42, .92, then 1.02: the next second
        now += timedelta(milliseconds=step_ms)
        outgoing = sender.compose(NOTIFICATION, CONTACT, rendered)
        parsed = message_from_bytes(outgoing.data, policy=policy.default)
        dates.append(parsed["Date"])
    # Four emails over two seconds: two formatted (four before, one an email).
    assert len(formatted) == 2
    assert dates == ["Sat, 15 Mar 2025 11:05:07 +0000"] * 3 + ["Sat, 15 Mar 2025 11:05:08 +0000"]
