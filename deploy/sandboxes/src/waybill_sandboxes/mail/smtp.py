"""A real SMTP server (aiosmtpd) that keeps every message for inspection.

It runs in the caller's event loop, so tests need no threads. It can be
taken down on demand: refuse connections outright, answer 421 (service not
available) or 451 (try again later) — the failures a mail relay really has.

Like production relays (Postfix, Exchange, Gmail) it offers PIPELINING
(RFC 2920) and CHUNKING (RFC 3030: ``BDAT <size> [LAST]``, the message's
bytes counted rather than ended by a dot, so a sender can put MAIL, RCPT and
the whole message in one write). aiosmtpd has no BDAT; :class:`_RelaySession`
adds it. As Postfix does, the replies to commands a client pipelined go back
together: a reply waits while more of the client's input is already in, so
MAIL, RCPT and BDAT sent in one write are answered in one write (aiosmtpd
writes each reply on its own, a wake-up of the sender per reply).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import enum
import weakref
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from types import TracebackType
from typing import Any, AnyStr

import msgspec
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session

__all__ = ["CapturedMail", "SmtpMode", "SmtpSink"]


class SmtpMode(enum.StrEnum):
    """How the sink answers."""

    UP = "up"
    """Accept every message."""
    REFUSE = "refuse"
    """Nothing listens: connections are refused."""
    UNAVAILABLE = "unavailable"
    """421 at MAIL FROM: the service is shutting down (the client must retry later)."""
    DEFER = "defer"
    """451 at RCPT TO: a temporary local error (the client must retry later)."""


class CapturedMail(msgspec.Struct, kw_only=True, frozen=True):
    """One accepted message, parsed."""

    mail_from: str
    """Envelope sender (MAIL FROM)."""
    rcpt_tos: list[str]
    """Envelope recipients (RCPT TO)."""
    from_: str = msgspec.field(name="from")
    to: list[str]
    subject: str
    message_id: str | None
    text: str | None
    html: str | None
    headers: dict[str, str]
    received_at: datetime


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    content: str = part.get_content()
    return content


_BDAT_SYNTAX = "501 5.5.4 Syntax: BDAT <size> [LAST]"


class _RelaySession(SMTP):
    """aiosmtpd's session with RFC 3030 BDAT: chunks gathered, the LAST one handled as DATA."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._chunks: list[bytes] = []
        self._chunks_of: Envelope | None = None
        self._held: list[bytes] = []

    async def push(self, status: AnyStr) -> None:
        """Send a reply, or hold it while the client's next commands are already in.

        Postfix's smtpd flushes its replies only when its input is drained (RFC 2920
        lets a server group them): the last command of a pipelined group sends all.
        Only positive replies wait. Every reply after which aiosmtpd closes the
        connection (a refusal, ``221`` to QUIT) goes at once, with those held.
        """
        line = (
            status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
            if isinstance(status, str)
            else status
        )
        self._held.append(line + b"\r\n")
        if line[:1] in (b"2", b"3") and not line.startswith(b"221") and self._more_to_read():
            return
        held, self._held = b"".join(self._held), []
        assert self._writer is not None
        self._writer.write(held)
        await self._writer.drain()

    def _more_to_read(self) -> bool:
        """Whether the client sent more than the session has read (more commands to answer)."""
        buffered = getattr(self._reader, "_buffer", None)  # asyncio.StreamReader's own
        return bool(buffered)

    async def smtp_BDAT(self, arg: str) -> None:
        words = arg.split()
        last = len(words) == 2 and words[1].upper() == "LAST"
        if not words[0:1] or not words[0].isdigit() or len(words) > 1 + last:
            # The chunk's end cannot be found: nothing after it can be read as commands.
            await self.push(_BDAT_SYNTAX)
            if self.transport is not None:
                self.transport.close()
            return
        # The chunk is read whatever the answer: the client sent it behind the command.
        chunk = await self._reader.readexactly(int(words[0]))
        if await self.check_helo_needed("EHLO"):
            return
        envelope = self.envelope
        assert envelope is not None
        if not envelope.rcpt_tos:
            # MAIL or RCPT refused (or never sent): the transaction is off (RFC 3030 §2).
            self._chunks, self._chunks_of = [], None
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if self._chunks_of is not envelope:  # a new transaction (RSET or the last one done)
            self._chunks, self._chunks_of = [], envelope
        self._chunks.append(chunk)
        if not last:
            await self.push(f"250 2.0.0 {len(chunk)} octets received")
            return
        content = b"".join(self._chunks)
        self._chunks, self._chunks_of = [], None
        if self.data_size_limit and len(content) > self.data_size_limit:
            self.envelope = self._create_envelope()
            await self.push("552 5.3.4 Error: too much mail data")
            return
        envelope.original_content = content
        envelope.content = content
        status = await self._call_handler_hook("DATA")
        self.envelope = self._create_envelope()  # what aiosmtpd does after DATA
        await self.push("250 OK" if status is MISSING else status)


def parse_message(envelope: Envelope) -> CapturedMail:
    """Turn what the SMTP session received into a :class:`CapturedMail`."""
    raw = envelope.original_content or b""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)  # the "default" policy builds EmailMessage
    return CapturedMail(
        mail_from=envelope.mail_from or "",
        rcpt_tos=list(envelope.rcpt_tos),
        from_=str(message.get("From", "")),
        to=[str(value) for value in message.get_all("To", [])],
        subject=str(message.get("Subject", "")),
        message_id=str(message["Message-ID"]) if message["Message-ID"] else None,
        text=_body(message, "plain"),
        html=_body(message, "html"),
        headers={name: str(value) for name, value in message.items()},
        received_at=datetime.now(UTC),
    )


class SmtpSink:
    """An SMTP server on ``host:port`` (port 0 picks a free one) capturing messages.

    Use ``async with SmtpSink() as sink:``; ``sink.messages`` fills as mail
    arrives, ``sink.counters`` counts accepted and refused attempts and the
    connections (sessions) opened.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.messages: list[CapturedMail] = []
        self.counters: Counter[str] = Counter()
        self.mode = SmtpMode.UP
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self._arrived = asyncio.Event()

    # -- aiosmtpd handler hooks -----------------------------------------------

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Offer PIPELINING (RFC 2920; aiosmtpd takes it, unsaid) and CHUNKING (RFC 3030)."""
        session.host_name = hostname  # what aiosmtpd does itself when no hook is given
        return [*responses[:-1], "250-PIPELINING", "250-CHUNKING", responses[-1]]

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.mode is SmtpMode.UNAVAILABLE:
            self.counters["refused"] += 1
            return "421 4.3.2 Service not available, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.mode is SmtpMode.DEFER:
            self.counters["deferred"] += 1
            return "451 4.3.0 Temporary local problem, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(parse_message(envelope))
        self.counters["accepted"] += 1
        self._arrived.set()
        return "250 Message accepted for delivery"

    # -- running ------------------------------------------------------------------

    async def start(self) -> SmtpSink:
        """Start listening (again, on the same port after a restart)."""
        if self._server is None:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(self._new_session, self.host, self.port)
            self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def _new_session(self) -> SMTP:
        session = _RelaySession(self, hostname="waybill-sandbox")
        self.counters["connections"] += 1
        self._sessions.add(session)
        return session

    async def stop(self) -> None:
        """Stop listening and drop the sessions open, as a relay going down does."""
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def set_mode(self, mode: SmtpMode | str) -> None:
        """Switch how the sink answers; ``refuse`` closes the port, the others reopen it."""
        self.mode = SmtpMode(mode)
        if self.mode is SmtpMode.REFUSE:
            await self.stop()
        else:
            await self.start()

    async def wait_for_messages(self, count: int, timeout_s: float = 10.0) -> list[CapturedMail]:
        """Wait until at least ``count`` messages arrived."""
        async with asyncio.timeout(timeout_s):
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages

    async def __aenter__(self) -> SmtpSink:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def summary(self) -> dict[str, Any]:
        """State for the admin route."""
        return {
            "host": self.host,
            "port": self.port,
            "mode": self.mode,
            "counters": dict(self.counters),
            "messages": self.messages,
        }
