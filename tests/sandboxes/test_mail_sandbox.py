"""The mail sandbox: SMTP capture and outages, and the Standard Webhooks receiver."""

from __future__ import annotations

import asyncio
import email.policy
import smtplib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import aiohttp
import pytest
from standardwebhooks import Webhook

from waybill_sandboxes.mail import MailSandbox, SmtpMode, SmtpSink, WebhookReceiver, new_secret
from waybill_sandboxes.server import serve


@pytest.fixture
async def mail() -> AsyncIterator[tuple[MailSandbox, str]]:
    sandbox = MailSandbox()
    async with serve(sandbox.app()) as running:
        yield sandbox, running.url


def notification(to: str = "customer@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Waybill <notify@waybill.example>"
    message["To"] = to
    message["Subject"] = "Your order SO-1001 has shipped"
    message["Message-ID"] = "<so-1001-shipped@waybill.example>"
    message.set_content("Tracking: EZ1000000001")
    message.add_alternative("<p>Tracking: <b>EZ1000000001</b></p>", subtype="html")
    return message


async def send(sink: SmtpSink, message: EmailMessage) -> None:
    """Send with the standard library's blocking client, off the event loop."""

    def blocking_send() -> None:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            client.send_message(message)

    await asyncio.to_thread(blocking_send)


async def test_smtp_captures_and_parses_a_message(mail: tuple[MailSandbox, str]) -> None:
    sandbox, _ = mail
    await send(sandbox.smtp, notification())
    (captured,) = await sandbox.smtp.wait_for_messages(1)
    assert captured.mail_from == "notify@waybill.example"
    assert captured.rcpt_tos == ["customer@example.com"]
    assert captured.from_ == "Waybill <notify@waybill.example>"
    assert captured.to == ["customer@example.com"]
    assert captured.subject == "Your order SO-1001 has shipped"
    assert captured.message_id == "<so-1001-shipped@waybill.example>"
    assert (captured.text or "").strip() == "Tracking: EZ1000000001"
    assert "<b>EZ1000000001</b>" in (captured.html or "")
    assert captured.headers["Subject"] == captured.subject
    assert sandbox.smtp.counters["accepted"] == 1


async def test_smtp_in_refuse_mode_refuses_connections_then_recovers(
    mail: tuple[MailSandbox, str],
) -> None:
    sandbox, _ = mail
    await sandbox.smtp.set_mode(SmtpMode.REFUSE)
    with pytest.raises(ConnectionRefusedError):
        await send(sandbox.smtp, notification())
    await sandbox.smtp.set_mode(SmtpMode.UP)
    await send(sandbox.smtp, notification())
    assert len(await sandbox.smtp.wait_for_messages(1)) == 1


async def test_smtp_unavailable_answers_421(mail: tuple[MailSandbox, str]) -> None:
    sandbox, _ = mail
    await sandbox.smtp.set_mode("unavailable")
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await send(sandbox.smtp, notification())
    assert refused.value.smtp_code == 421
    assert sandbox.smtp.messages == []
    assert sandbox.smtp.counters["refused"] == 1


async def test_smtp_defer_answers_451_per_recipient(mail: tuple[MailSandbox, str]) -> None:
    sandbox, _ = mail
    await sandbox.smtp.set_mode(SmtpMode.DEFER)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await send(sandbox.smtp, notification())
    assert refused.value.recipients["customer@example.com"][0] == 451
    assert sandbox.smtp.counters["deferred"] == 1


async def _session(sink: SmtpSink) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A raw session, greeted with EHLO: the reader, the writer and the EHLO reply."""
    reader, writer = await asyncio.open_connection(sink.host, sink.port)
    await reader.readline()
    writer.write(b"EHLO client.example\r\n")
    offered = b""
    while (line := await reader.readline())[3:4] != b" ":
        offered += line
    return reader, writer, offered + line


async def _replies(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    return [(await reader.readline())[:3] for _ in range(count)]


async def test_smtp_takes_a_message_in_bdat_chunks_pipelined_behind_mail_and_rcpt(
    mail: tuple[MailSandbox, str],
) -> None:
    sandbox, _ = mail
    reader, writer, offered = await _session(sandbox.smtp)
    assert b"250-PIPELINING" in offered and b"250-CHUNKING" in offered
    dotted = notification()
    dotted.get_body(("plain",)).set_content(".\nTracking: EZ1000000001")  # type: ignore[union-attr]
    message = dotted.as_bytes(policy=email.policy.SMTP)
    # Counted bytes, not dot-stuffed: a line with a lone dot is content, not the end.
    first, rest = message[:40], message[40:]
    writer.write(
        b"MAIL FROM:<notify@waybill.example>\r\nRCPT TO:<customer@example.com>\r\n"
        + b"BDAT %d\r\n" % len(first)
        + first
        + b"BDAT %d LAST\r\n" % len(rest)
        + rest
    )
    assert await _replies(reader, 4) == [b"250"] * 4
    (captured,) = await sandbox.smtp.wait_for_messages(1)
    assert captured.rcpt_tos == ["customer@example.com"]
    assert captured.subject == "Your order SO-1001 has shipped"
    assert (captured.text or "").replace("\r\n", "\n") == ".\nTracking: EZ1000000001\n"
    # A refused recipient: the chunk that followed is read and refused with its transaction.
    await sandbox.smtp.set_mode(SmtpMode.DEFER)
    writer.write(
        b"MAIL FROM:<notify@waybill.example>\r\nRCPT TO:<customer@example.com>\r\n"
        + b"BDAT %d LAST\r\n" % len(message)
        + message
        + b"NOOP\r\n"
    )
    assert await _replies(reader, 4) == [b"250", b"451", b"503", b"250"]
    # A size that is not one: nothing after it can be read as commands.
    writer.write(b"BDAT many LAST\r\n")
    assert await _replies(reader, 1) == [b"501"]
    assert await reader.read() == b""
    writer.close()
    assert len(sandbox.smtp.messages) == 1


async def test_smtp_answers_commands_pipelined_together_in_one_write(
    mail: tuple[MailSandbox, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Postfix does: replies wait while more commands are in, so one write of MAIL,
    RCPT and BDAT gets one write back (before: one a reply, a wake-up of the sender each)."""
    sandbox, _ = mail
    reader, writer, _ = await _session(sandbox.smtp)
    written: list[bytes] = []
    write = asyncio.StreamWriter.write

    def counted(self: asyncio.StreamWriter, data: bytes | bytearray | memoryview) -> None:
        if self is not writer:  # the sandbox's side of the session
            written.append(bytes(data))
        write(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "write", counted)
    message = notification().as_bytes(policy=email.policy.SMTP)
    transaction = (
        b"MAIL FROM:<notify@waybill.example>\r\nRCPT TO:<customer@example.com>\r\n"
        + b"BDAT %d LAST\r\n" % len(message)
        + message
    )
    writer.write(transaction)
    assert await _replies(reader, 3) == [b"250"] * 3
    assert len(written) == 1 and written[0].count(b"\r\n") == 3, written
    # A refusal is not held: it goes with the replies before it, then each on its own.
    await sandbox.smtp.set_mode(SmtpMode.DEFER)
    written.clear()
    writer.write(transaction + b"NOOP\r\n")
    assert await _replies(reader, 4) == [b"250", b"451", b"503", b"250"]
    assert [w.count(b"\r\n") for w in written] == [2, 1, 1], written
    # QUIT's answer goes at once, even with more behind it: the session closes after it.
    written.clear()
    writer.write(b"QUIT\r\nNOOP\r\n")
    assert await _replies(reader, 1) == [b"221"]
    assert await reader.read() == b""
    writer.close()
    assert len(sandbox.smtp.messages) == 1


async def test_smtp_mode_and_messages_are_driven_over_http(
    mail: tuple[MailSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = mail
    async with http.put(f"{url}/_sandbox/mail/mode", json={"mode": "refuse"}) as resp:
        assert (await resp.json()) == {"mode": "refuse"}
    with pytest.raises(ConnectionRefusedError):
        await send(sandbox.smtp, notification())
    async with http.put(f"{url}/_sandbox/mail/mode", json={"mode": "sleepy"}) as resp:
        assert resp.status == 400
    async with http.put(f"{url}/_sandbox/mail/mode", json={"mode": "up"}) as resp:
        assert resp.status == 200
    await send(sandbox.smtp, notification("ops@example.com"))
    await sandbox.smtp.wait_for_messages(1)
    async with http.get(f"{url}/_sandbox/mail") as resp:
        summary = await resp.json()
    assert [m["to"] for m in summary["messages"]] == [["ops@example.com"]]
    assert summary["port"] == sandbox.smtp.port
    async with http.delete(f"{url}/_sandbox/mail/messages") as resp:
        assert resp.status == 200
    assert sandbox.smtp.messages == []


def signed(secret: str, body: bytes, *, msg_id: str = "msg_1", age_s: int = 0) -> dict[str, str]:
    """Headers as a Standard Webhooks sender makes them, via the reference library."""
    sent_at = datetime.now(UTC) - timedelta(seconds=age_s)
    signature = Webhook(secret).sign(msg_id, sent_at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


BODY = b'{"type":"shipment.delivered","data":{"order_ref":"SO-1001"}}'


async def test_receiver_accepts_a_standard_webhooks_signed_delivery(
    mail: tuple[MailSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = mail
    receiver = sandbox.receiver
    headers = signed(receiver.secret, BODY, msg_id="msg_ok")
    async with http.post(f"{url}/webhooks/orders", data=BODY, headers=headers) as resp:
        assert resp.status == 204
    (delivery,) = receiver.deliveries
    assert (delivery.webhook_id, delivery.verified, delivery.error) == ("msg_ok", True, None)
    assert delivery.timestamp == headers["webhook-timestamp"]
    assert delivery.body == BODY.decode()
    assert delivery.path == "/webhooks/orders"
    assert receiver.verified() == [delivery]


@pytest.mark.parametrize(
    ("make_headers", "body", "reason"),
    [
        (lambda s: signed(s, BODY), BODY.replace(b"SO-1001", b"SO-6666"), "No matching signature"),
        (lambda s: signed(new_secret(), BODY), BODY, "No matching signature"),
        (lambda s: signed(s, BODY, age_s=3600), BODY, "too old"),
        (lambda s: {"webhook-id": "msg_1"}, BODY, "Missing required headers"),
        (
            lambda s: {**signed(s, BODY), "webhook-signature": "garbage"},
            BODY,
            "Error",
        ),
    ],
    ids=["tampered-body", "wrong-secret", "stale", "unsigned", "garbled-signature"],
)
async def test_receiver_rejects_deliveries_that_do_not_verify(
    mail: tuple[MailSandbox, str],
    http: aiohttp.ClientSession,
    make_headers: Callable[[str], dict[str, str]],
    body: bytes,
    reason: str,
) -> None:
    sandbox, url = mail
    headers = make_headers(sandbox.receiver.secret)
    async with http.post(f"{url}/webhooks", data=body, headers=headers) as resp:
        assert resp.status == 401
    (delivery,) = sandbox.receiver.deliveries
    assert not delivery.verified
    assert reason in (delivery.error or "")


async def test_the_published_test_vector_is_refused_only_for_its_age() -> None:
    # The Standard Webhooks test vector dates from 2021: the signature is right, the time is not.
    receiver = WebhookReceiver("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    assert "too old" in (receiver._verify(b'{"test": 2432232314}', headers) or "")
    signature = Webhook(receiver.secret).sign(
        headers["webhook-id"], datetime.fromtimestamp(1614265330, UTC), '{"test": 2432232314}'
    )
    assert signature == headers["webhook-signature"]


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (410, None), (429, 30)])
async def test_receiver_answers_failures_on_demand(
    mail: tuple[MailSandbox, str],
    http: aiohttp.ClientSession,
    status: int,
    retry_after: int | None,
) -> None:
    sandbox, url = mail
    sandbox.receiver.respond_with(status, retry_after_s=retry_after, times=1)
    headers = signed(sandbox.receiver.secret, BODY)
    async with http.post(f"{url}/webhooks", data=BODY, headers=headers) as resp:
        assert resp.status == status
        assert resp.headers.get("Retry-After") == (str(retry_after) if retry_after else None)
    async with http.post(f"{url}/webhooks", data=BODY, headers=headers) as resp:
        assert resp.status == 204
    assert [(d.answered, d.verified) for d in sandbox.receiver.deliveries] == [
        (status, True),
        (204, True),
    ]


async def test_receiver_failures_are_driven_over_http(
    mail: tuple[MailSandbox, str], http: aiohttp.ClientSession
) -> None:
    sandbox, url = mail
    async with http.put(f"{url}/_sandbox/response", json={"status": 99}) as resp:
        assert resp.status == 400
    async with http.put(f"{url}/_sandbox/response", json={"status": 502}) as resp:
        assert resp.status == 200
    headers = signed(sandbox.receiver.secret, BODY)
    for _ in range(2):
        async with http.post(f"{url}/webhooks", data=BODY, headers=headers) as resp:
            assert resp.status == 502
    async with http.delete(f"{url}/_sandbox/response") as resp:
        assert resp.status == 200
    async with http.post(f"{url}/webhooks", data=BODY, headers=headers) as resp:
        assert resp.status == 204
    async with http.get(f"{url}/_sandbox/deliveries") as resp:
        answered = [d["answered"] for d in (await resp.json())["deliveries"]]
    assert answered == [502, 502, 204]
    async with http.delete(f"{url}/_sandbox/deliveries") as resp:
        assert resp.status == 200
    assert sandbox.receiver.deliveries == []
    assert sandbox.receiver.faults.calls() == {"receive_webhook": 3}


def test_a_bad_secret_or_override_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        WebhookReceiver("whsec_!!not-base64!!")
    with pytest.raises(ValueError, match="status"):
        WebhookReceiver().respond_with(700)
    assert WebhookReceiver().secret.startswith("whsec_")
