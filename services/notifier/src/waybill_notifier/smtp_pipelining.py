"""One email's MAIL, RCPT and DATA in one write, for a relay that offers PIPELINING (RFC 2920).

Without it an email costs four round trips to the relay (MAIL, RCPT, DATA, the
message), each a write, a wake-up and a reply read by aiosmtplib: most of the
notifier's cost per email. With it, MAIL, RCPT and DATA go out together and
their three replies are read in order, then the message: two round trips. A
relay that also offers CHUNKING (RFC 3030, as Postfix, Exchange and Gmail do)
takes the message itself in the same write, as ``BDAT <size> LAST`` followed
by its bytes (counted, so not dot-stuffed): one round trip.

aiosmtplib does not pipeline (its protocol takes one reply per command and
drops what comes before it asks), so for the transaction the session's
connection is read by :class:`_Replies`, which takes any number of replies
from one packet, and handed back to aiosmtplib after the final reply. The
session was opened, greeted and (when configured) secured and logged in by
aiosmtplib as before; a transaction that fails in any way leaves the session
to be closed (:mod:`waybill_notifier.smtp_sessions` never reuses one that
failed), so a refusal is raised at once, without reading the replies after it.
"""

from __future__ import annotations

import asyncio
import collections
import re
from typing import cast

import aiosmtplib
from aiosmtplib.response import SMTPResponse

__all__ = ["pipelined_transfer"]

_LONGEST_REPLY = 64 * 1024
_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")


class _Replies(asyncio.Protocol):
    """Reads SMTP replies off a connection: complete ones queued in order, however they arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buffer = bytearray()
        self._replies: collections.deque[SMTPResponse] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._broken: aiosmtplib.SMTPException | None = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            while (reply := self._next_reply()) is not None:
                self._replies.append(reply)
        except aiosmtplib.SMTPResponseException as unreadable:
            self._break(unreadable)
        if len(self._buffer) > _LONGEST_REPLY:
            self._break(aiosmtplib.SMTPResponseException(-1, "Response too long"))
        self._wake()

    def eof_received(self) -> bool:
        self._break(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._break(aiosmtplib.SMTPServerDisconnected("Connection lost"))

    def _break(self, error: aiosmtplib.SMTPException) -> None:
        if self._broken is None:
            self._broken = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _next_reply(self) -> SMTPResponse | None:
        """The first complete reply in the buffer (its lines removed), if there is one."""
        lines: list[bytes] = []
        offset = 0
        while (end := self._buffer.find(b"\n", offset)) != -1:
            line = bytes(self._buffer[offset : end + 1])
            offset = end + 1
            lines.append(line)
            if line[3:4] != b"-":  # the last line of a reply: "250 OK", not "250-SIZE"
                del self._buffer[:offset]
                try:
                    code = int(line[:3])
                except ValueError:
                    raise aiosmtplib.SMTPResponseException(
                        -1, "Malformed SMTP response line"
                    ) from None
                text = b"\n".join(part[4:].strip(b" \t\r\n") for part in lines)
                return SMTPResponse(code, text.decode("utf-8", "surrogateescape"))
        return None

    async def reply(self) -> SMTPResponse:
        """The next reply, in the order the commands were sent."""
        while not self._replies:
            if self._broken is not None:
                raise self._broken
            self._waiter = self._loop.create_future()
            await self._waiter
        return self._replies.popleft()


async def pipelined_transfer(
    smtp: aiosmtplib.SMTP,
    sender: str,
    recipient: str,
    message: bytes,
    *,
    options: list[str],
    encoding: str,
    timeout_s: float,
    chunking: bool = False,
) -> None:
    """MAIL, RCPT and DATA in one write, then ``message`` (CRLF line ends); raises as aiosmtplib.

    With ``chunking`` (the relay offers CHUNKING) the message goes in the same write,
    as ``BDAT <size> LAST``, instead of DATA and a second write.

    :class:`aiosmtplib.SMTPSenderRefused`, :class:`aiosmtplib.SMTPRecipientRefused`,
    :class:`aiosmtplib.SMTPDataError` for refusals,
    :class:`aiosmtplib.SMTPServerDisconnected` when the connection ends, and
    :class:`TimeoutError` when a reply takes longer than ``timeout_s`` (each reply,
    as aiosmtplib waits for each).
    """
    session = smtp.protocol
    # asyncio's or uvloop's (which does not derive from asyncio's classes).
    transport = cast(asyncio.Transport | None, session.transport if session else None)
    if session is None or transport is None or transport.is_closing():
        raise aiosmtplib.SMTPServerDisconnected("Server not connected")
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    commands = [
        b" ".join([b"MAIL FROM:<" + sender.encode(encoding) + b">", *map(str.encode, options)]),
        b"RCPT TO:<" + recipient.encode(encoding) + b">",
        b"BDAT %d LAST" % len(message) if chunking else b"DATA",
    ]
    for command in commands:
        if b"\r" in command or b"\n" in command:
            raise ValueError("an SMTP command may not contain a line break")
    loop = asyncio.get_running_loop()
    replies = _Replies(loop)
    transport.set_protocol(replies)
    try:
        async with asyncio.timeout(None) as deadline:

            async def next_reply() -> SMTPResponse:
                deadline.reschedule(loop.time() + timeout_s)
                return await replies.reply()

            head = b"\r\n".join(commands) + b"\r\n"
            transport.write(head + message if chunking else head)
            mail = await next_reply()
            if mail.code != 250:
                raise aiosmtplib.SMTPSenderRefused(mail.code, mail.message, sender)
            rcpt = await next_reply()
            if rcpt.code not in (250, 251):
                raise aiosmtplib.SMTPRecipientRefused(rcpt.code, rcpt.message, recipient)
            if chunking:
                taken = await next_reply()
                if taken.code != 250:
                    raise aiosmtplib.SMTPDataError(taken.code, taken.message)
                return
            data = await next_reply()
            if data.code != 354:
                raise aiosmtplib.SMTPDataError(data.code, data.message)
            # RFC 5321 4.5.2: a line starting with a dot gets another one.
            transport.write(_DOT_AT_LINE_START.sub(b"..", message) + b".\r\n")
            sent = await next_reply()
            if sent.code != 250:
                raise aiosmtplib.SMTPDataError(sent.code, sent.message)
    finally:
        # Back to aiosmtplib (QUIT, the next email); after a failure the session is closed.
        if not transport.is_closing():
            transport.set_protocol(session)
