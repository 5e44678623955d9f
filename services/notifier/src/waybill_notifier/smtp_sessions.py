"""SMTP sessions kept open between emails, as relays expect from a busy sender.

Opening a session costs a TCP handshake, the greeting, EHLO (and STARTTLS and
AUTH when configured) and QUIT: several round trips and, in aiosmtplib, a
hostname lookup in a worker thread, for every email. Under a burst that was
most of the notifier's work per order. Sessions are therefore reused:

* at most ``smtp_max_connections`` are in use at once (the relay's limit);
* an idle session is reused only while younger than :data:`IDLE_REUSE_S`
  (relays drop idle clients after a minute or more: RFC 5321 §4.5.3.2 asks
  servers to wait at least 5 minutes) and for at most
  :data:`EMAILS_PER_SESSION` emails (relays cap messages per connection);
* a session that failed in any way is closed, never reused, so a failure on a
  reused session proves nothing more or less than on a new one.

The local hostname given in EHLO is looked up once, not once per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiosmtplib

from waybill_notifier.attempts import NotDelivered
from waybill_notifier.config import NotifierSettings
from waybill_runtime.logs import mask_text
from waybill_runtime.resilience import ConcurrencyLimit

__all__ = ["EMAILS_PER_SESSION", "IDLE_REUSE_S", "SmtpSessions"]

IDLE_REUSE_S = 10.0
"""An idle session older than this is closed rather than reused."""

log = logging.getLogger("waybill.notifier.mail")

EMAILS_PER_SESSION = 100
"""Emails sent over one session before it is closed and a new one opened."""


@dataclass
class _Idle:
    smtp: aiosmtplib.SMTP
    since: float
    sent: int


class SmtpSessions:
    """Open sessions to the configured relay, lent out one email at a time."""

    def __init__(
        self, settings: NotifierSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._limit = ConcurrencyLimit(settings.smtp_max_connections)
        self._idle: list[_Idle] = []
        self._clock = clock
        self._local_hostname: str | None = None

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[aiosmtplib.SMTP]:
        """A connected session for one email; kept for the next one if all went well."""
        async with self._limit:
            reused = self._take_idle()
            smtp, sent = reused if reused is not None else (await self._open(), 0)
            try:
                yield smtp
            except BaseException:
                smtp.close()
                raise
            if sent + 1 >= EMAILS_PER_SESSION:
                await _quit(smtp)
            else:
                self._idle.append(_Idle(smtp, self._clock(), sent + 1))

    async def close(self) -> None:
        """Say goodbye on every idle session (the service is stopping)."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(entry.smtp) for entry in idle))

    def _take_idle(self) -> tuple[aiosmtplib.SMTP, int] | None:
        now = self._clock()
        while self._idle:
            entry = self._idle.pop()  # the most recently used: the least likely to be dropped
            if entry.smtp.is_connected and now - entry.since < IDLE_REUSE_S:
                return entry.smtp, entry.sent
            entry.smtp.close()
        return None

    async def _open(self) -> aiosmtplib.SMTP:
        settings = self._settings
        if self._local_hostname is None:
            # What aiosmtplib would look up for every session, in a thread.
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        smtp = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            timeout=settings.smtp_timeout_s,
            start_tls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            local_hostname=self._local_hostname,
        )
        # Nothing is sent before MAIL FROM: every failure here proves the email is not out.
        where = f"{settings.smtp_host}:{settings.smtp_port}"
        try:
            await smtp.connect()
            await _greet(smtp)
        except aiosmtplib.SMTPAuthenticationError as error:
            smtp.close()
            # Wrong credentials are an operator's fix: the emails wait for it.
            log.error(
                "the SMTP relay %s refused our login (%s): check the credentials", where, error
            )
            raise NotDelivered(f"SMTP relay {where} refused the login ({error.code})") from None
        except (aiosmtplib.SMTPException, OSError) as error:
            smtp.close()
            raise NotDelivered(
                f"SMTP relay {where} unreachable: {mask_text(describe(error))}"
            ) from None
        return smtp


async def _greet(smtp: aiosmtplib.SMTP) -> None:
    """EHLO (HELO for a relay without it) unless connecting did already (STARTTLS, AUTH).

    Each email's transaction then knows the relay's extensions (SIZE, SMTPUTF8)
    without asking (see :func:`waybill_notifier.mailer._transfer`).
    """
    if not smtp.is_ehlo_or_helo_needed:
        return
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError:
        if not smtp.is_connected:
            raise
        await smtp.helo()


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    if not smtp.is_connected:
        return
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()


def describe(error: BaseException) -> str:
    """An exception as ``Type: message`` (or the type alone when it has no message)."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
