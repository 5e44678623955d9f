"""The notifier's settings: the SMTP relay, the sender address, the webhook subscriptions.

Every field is read from ``WAYBILL_<FIELD>``; the defaults fit the local stack
(the mail sandbox's SMTP sink on 127.0.0.1:8025, no webhook subscriptions).
"""

from __future__ import annotations

import contextlib
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated

import msgspec

from waybill_runtime.settings import SECRET, RuntimeSettings

__all__ = ["NotifierSettings"]

_Seconds = Annotated[float, msgspec.Meta(ge=0)]


class NotifierSettings(RuntimeSettings, frozen=True, kw_only=True):
    """Settings of the notifier (on top of every service's :class:`RuntimeSettings`)."""

    smtp_host: Annotated[
        str, msgspec.Meta(min_length=1, description="SMTP relay the customer emails go through")
    ] = "127.0.0.1"
    smtp_port: Annotated[
        int, msgspec.Meta(ge=1, le=65535, description="Port of the SMTP relay")
    ] = 8025
    smtp_username: Annotated[
        str | None, msgspec.Meta(description="SMTP login, if the relay wants one")
    ] = None
    smtp_password: Annotated[
        str | None,
        msgspec.Meta(description="SMTP password (a secret), with smtp_username"),
        SECRET,
    ] = None
    smtp_starttls: Annotated[
        bool, msgspec.Meta(description="Upgrade the SMTP connection with STARTTLS (port 587)")
    ] = False
    smtp_timeout_s: Annotated[
        float, msgspec.Meta(gt=0, le=300, description="Longest wait for one SMTP exchange")
    ] = 15.0
    smtp_max_connections: Annotated[
        int, msgspec.Meta(ge=1, le=1000, description="SMTP connections open at the same time")
    ] = 4
    mail_from: Annotated[
        str,
        msgspec.Meta(
            min_length=3,
            description="From address of customer emails, e.g. 'Acme Shipping <ship@acme.test>'; "
            "its domain also ends every Message-ID",
            extra={"expected": "an email address, optionally with a display name"},
        ),
    ] = "Waybill <notifications@waybill.localhost>"
    webhook_subscriptions: Annotated[
        str,
        msgspec.Meta(
            description="Outbound webhook endpoints as a JSON list of "
            '{"url", "secret", "channels", "partner_ids", "events", "name"}',
            extra={"expected": "a JSON list of subscriptions (see the README)"},
        ),
        # Each subscription carries its signing secret.
        SECRET,
    ] = "[]"
    webhook_subscriptions_file: Annotated[
        str | None,
        msgspec.Meta(
            description="A JSON file with more subscriptions (same shape), e.g. a mounted secret",
            extra={"file": True, "expected": "the path of a JSON file (or empty for none)"},
        ),
    ] = None
    webhook_timeout_s: Annotated[
        float, msgspec.Meta(gt=0, le=300, description="Longest wait for a webhook endpoint")
    ] = 10.0
    tracking_url_templates: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="Public tracking page per carrier code when the carrier gives none, "
            'as JSON: {"carrier-a": "https://track.example/{tracking_number}"}',
            extra={"expected": 'a JSON object such as {"dhl": "https://.../{tracking_number}"}'},
        ),
    ] = msgspec.field(default_factory=dict)
    # A notification waits for its provider: more and longer redeliveries than
    # the runtime's defaults, so an SMTP relay down for hours loses nothing.
    max_deliver: Annotated[
        int, msgspec.Meta(ge=1, description="Deliveries before a message is dead-lettered")
    ] = 40
    retry_backoff_s: Annotated[
        tuple[_Seconds, ...],
        msgspec.Meta(min_length=1, description="Redelivery delays in seconds; the last repeats"),
    ] = (1.0, 5.0, 30.0, 120.0, 300.0, 900.0, 1800.0)

    def secret_values(self) -> list[str]:
        """The settings marked secret, and each subscription's own signing secret."""
        found = super().secret_values()
        texts = [self.webhook_subscriptions]
        if self.webhook_subscriptions_file:
            with contextlib.suppress(OSError):
                texts.append(Path(self.webhook_subscriptions_file).read_text(encoding="utf-8"))
        for text in texts:
            try:
                entries = msgspec.json.decode(text.strip() or "[]")
            except msgspec.DecodeError:
                continue  # reported when the subscriptions are loaded
            if isinstance(entries, list):
                found += [
                    entry["secret"]
                    for entry in entries
                    if isinstance(entry, dict) and isinstance(entry.get("secret"), str)
                ]
        return found

    def __post_init__(self) -> None:
        if "@" not in parseaddr(self.mail_from)[1]:
            raise ValueError(
                f"mail_from {self.mail_from!r} holds no email address: "
                "set WAYBILL_MAIL_FROM to e.g. 'Acme Shipping <ship@acme.test>'"
            )
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("set both WAYBILL_SMTP_USERNAME and WAYBILL_SMTP_PASSWORD, or neither")
        for carrier, template in self.tracking_url_templates.items():
            if "{tracking_number}" not in template:
                raise ValueError(
                    f"the tracking URL template of carrier {carrier!r} lacks {{tracking_number}}: "
                    "fix WAYBILL_TRACKING_URL_TEMPLATES"
                )
