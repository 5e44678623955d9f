"""The SMTP side: an email per notification, handed to the relay with aiosmtplib.

Sessions to the relay are kept open between emails (:mod:`waybill_notifier.smtp_sessions`).

Each email carries a Message-ID made from the notification id, so the same
notification always has the same id, whichever attempt delivered it. A
refusal (connection refused, 421, 451: later; 550: never) proves nothing was
sent; see :mod:`waybill_notifier.attempts` for exchanges that break off.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.utils import format_datetime, parseaddr

import aiosmtplib
import msgspec

from waybill_notifier.attempts import NotDelivered, Receipt, Undeliverable
from waybill_notifier.config import NotifierSettings
from waybill_notifier.mime import address_header, mime_email, text_header
from waybill_notifier.notifications import Notification
from waybill_notifier.order_book import CustomerContact
from waybill_notifier.rendering import RenderedEmail
from waybill_notifier.smtp_pipelining import pipelined_transfer
from waybill_notifier.smtp_sessions import SmtpSessions, describe
from waybill_runtime.logs import mask_email, mask_text
from waybill_runtime.partner_calls import partner_call

__all__ = ["Mailer", "OutgoingEmail", "message_id_for"]

log = logging.getLogger("waybill.notifier.mail")


def message_id_for(notification_id: str, mail_from: str) -> str:
    """A stable Message-ID: the notification id at the sender's domain."""
    return _message_id(notification_id, _message_id_domain(mail_from))


def _message_id_domain(mail_from: str) -> str:
    return parseaddr(mail_from)[1].rpartition("@")[2] or "waybill.localhost"


def _message_id(notification_id: str, domain: str) -> str:
    return f"<{notification_id}@{domain}>"


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*")
"""An ASCII ``local@domain`` of dot-atoms only (RFC 5322 3.4.1): one mailbox, as is."""


def _mailbox(address: str) -> str:
    """``address`` if it is one mailbox (nothing more: no list, no header break), as written.

    Nearly every customer address is plain dot-atoms, which the pattern accepts
    as they are; anything else is judged by the standard library's parser, as
    every address was before (about a third of composing an email, three emails
    an order).
    """
    if _PLAIN_ADDRESS.fullmatch(address):
        return address
    # Raises ValueError or IndexError (the email package raises both) for what is not.
    return Address(addr_spec=address).addr_spec


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _one_line(text: str) -> str:
    # A header value may not span lines; Odoo data could hold a line break.
    return " ".join(text.split())


class OutgoingEmail(msgspec.Struct, frozen=True, kw_only=True):
    """One email as it goes to the relay."""

    recipient: str
    message_id: str
    data: bytes
    """The whole message (headers and body, CRLF line ends)."""


class Mailer:
    """Builds customer emails and sends them through the configured SMTP relay."""

    def __init__(
        self, settings: NotifierSettings, *, now: Callable[[], datetime] = _utc_now
    ) -> None:
        self._settings = settings
        self._now = now
        # The Date header of the current second: the same for every email composed in it.
        self._date_second: datetime | None = None
        self._date = ""
        name, self._sender = parseaddr(_one_line(settings.mail_from))
        self._from = address_header(name, self._sender) if name else self._sender
        self._message_id_domain = _message_id_domain(settings.mail_from)
        self._sessions = SmtpSessions(settings)

    def compose(
        self, notification: Notification, contact: CustomerContact, email: RenderedEmail
    ) -> OutgoingEmail:
        """The message for ``contact``; :class:`Undeliverable` when their address is unusable."""
        if contact.email is None:
            raise Undeliverable(f"order {contact.order_ref} has no customer email address")
        try:
            recipient = _mailbox(contact.email)
        except (ValueError, IndexError) as error:  # the email package raises both
            raise Undeliverable(
                f"the customer email address of order {contact.order_ref} is not valid "
                f"({mask_text(str(error))})"
            ) from None
        message_id = _message_id(notification.notification_id, self._message_id_domain)
        headers = [
            ("From", self._from),
            ("To", address_header(_one_line(contact.name), recipient)),
            ("Subject", text_header(_one_line(email.subject))),
            ("Date", self._date_header()),
            ("Message-ID", message_id),
            # RFC 3834: an automatic message; well-behaved systems send no auto-replies to it.
            ("Auto-Submitted", "auto-generated"),
            ("Content-Language", text_header(_one_line(email.language))),
            # For the people and tests that sort mail: no personal data in these.
            ("X-Waybill-Notification-Id", text_header(notification.notification_id)),
            ("X-Waybill-Notification-Kind", notification.kind.value),
            ("X-Waybill-Order-Ref", text_header(_one_line(notification.order_ref))),
        ]
        return OutgoingEmail(
            recipient=recipient,
            message_id=message_id,
            data=mime_email(headers, email.text, email.html),
        )

    def _date_header(self) -> str:
        # format_datetime costs about as much as the rest of the headers together, and a
        # Date has whole seconds: one formatting per second, however many emails in it.
        second = self._now().replace(microsecond=0)
        if second != self._date_second:
            self._date_second, self._date = second, format_datetime(second)
        return self._date

    async def send(self, email: OutgoingEmail) -> Receipt:
        """Hand ``email`` to the relay; raises the :mod:`~waybill_notifier.attempts` failures."""
        settings = self._settings
        # One CLIENT span per email: waiting for a session, opening one if need be, the transfer.
        with partner_call(
            "smtp",
            "smtp send",
            server_address=settings.smtp_host,
            server_port=settings.smtp_port,
        ):
            async with self._sessions.session() as smtp:
                await _transfer(smtp, self._sender, email, settings.smtp_timeout_s)
        if log.isEnabledFor(logging.DEBUG):
            # Routine, so DEBUG: each send is in the audit trail already (its
            # NotificationSent), and this line was about 6 % of the notifier's CPU
            # under a burst, three an order. Failures are logged as before.
            log.debug("email %s accepted for %s", email.message_id, mask_email(email.recipient))
        return Receipt(
            recipient=email.recipient,
            provider_message_id=email.message_id,
            sent_at=datetime.now(UTC),
        )

    async def aclose(self) -> None:
        """Close the SMTP sessions kept open (the service is stopping)."""
        await self._sessions.close()


async def _transfer(
    smtp: aiosmtplib.SMTP, sender: str, email: OutgoingEmail, timeout_s: float
) -> None:
    """MAIL, RCPT and DATA for one email on a session.

    Not aiosmtplib's ``sendmail``: for each email it parses the sender and the
    recipient once more than ``mail`` and ``rcpt`` do (both were checked when the
    email was composed, and the session's sender when the mailer was built) and
    reads the whole message once more to count its size; about a sixth of an
    email's cost. The size is known: :func:`~waybill_notifier.mime.mime_email`
    writes CRLF line ends only, so the message is sent as it is counted. After a
    refusal nothing more is said (no ``RSET``): a session that failed is closed,
    never reused, and every session is greeted when opened, so the relay's
    extensions are known here (:mod:`waybill_notifier.smtp_sessions`).

    A relay that offers PIPELINING gets MAIL, RCPT and DATA in one write
    (:mod:`waybill_notifier.smtp_pipelining`): two round trips, not four; one
    that also offers CHUNKING gets the message in that write too (``BDAT``): one.

    Each exchange waits at most ``timeout_s`` (DATA and the message, one
    exchange here, twice that), as aiosmtplib's own timeouts did, but through one
    deadline moved along: aiosmtplib's cost an ``asyncio.wait_for`` (a timer, a
    future and a callback) for each of an email's four replies.
    """
    # SMTPUTF8 only for an address that needs it, as aiosmtplib's send_message decides.
    utf8 = not (sender.isascii() and email.recipient.isascii())
    encoding = "utf-8" if utf8 else "ascii"
    try:
        if utf8 and not smtp.supports_extension("smtputf8"):
            raise aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server")
        options = [f"SIZE={len(email.data)}"] if smtp.supports_extension("size") else []
        if utf8:
            options.append("SMTPUTF8")
        if smtp.supports_extension("pipelining"):
            await pipelined_transfer(
                smtp,
                sender,
                email.recipient,
                email.data,
                options=options,
                encoding=encoding,
                timeout_s=timeout_s,
                chunking=smtp.supports_extension("chunking"),
            )
            return
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(None) as deadline:
            deadline.reschedule(loop.time() + timeout_s)
            await smtp.mail(sender, options=options, encoding=encoding, timeout=None)
            deadline.reschedule(loop.time() + timeout_s)
            await smtp.rcpt(email.recipient, encoding=encoding, timeout=None)
            deadline.reschedule(loop.time() + 2 * timeout_s)
            await smtp.data(email.data, timeout=None)
    except aiosmtplib.SMTPRecipientRefused as error:
        masked = mask_email(email.recipient)  # hashed only when there is something to say
        if error.code >= 500:
            raise Undeliverable(f"the relay refused {masked} for good ({error.code})") from None
        raise NotDelivered(f"the relay deferred {masked} ({error.code})") from None
    except aiosmtplib.SMTPResponseException as error:
        # A reply, even to DATA, means the relay did not take the message.
        text = mask_text(f"SMTP {error.code} {error.message}")
        if error.code >= 500:
            raise Undeliverable(f"the relay refused the email for good: {text}") from None
        raise NotDelivered(f"the relay deferred the email: {text}") from None
    except (aiosmtplib.SMTPException, OSError) as error:  # TimeoutError is an OSError
        # Timed out or cut off mid-transaction: possibly queued already, but an
        # email that may come twice beats one that never comes.
        reason = f"SMTP transfer broke off, the relay may have it: {describe(error)}"
        raise NotDelivered(mask_text(reason)) from None
