"""Who gets a webhook for which order: subscriptions per sales channel and per customer.

A subscription names an endpoint (URL and Standard Webhooks secret) and what
it wants. An empty or absent ``channels`` / ``partner_ids`` / ``events``
means "all"; when both channels and partner ids are given an order must
match both. The same endpoint may be listed more than once (e.g. one entry
per channel); it still gets each notification once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import urlsplit

import msgspec

from waybill_contracts import fact_id
from waybill_notifier.config import NotifierSettings
from waybill_notifier.notifications import NotificationKind
from waybill_notifier.signing import decode_secret
from waybill_runtime.settings import SettingsError

__all__ = ["Endpoint", "Subscriptions", "WebhookSubscription", "load_subscriptions"]

EVENT_NAMES: dict[str, NotificationKind] = {kind.event_name: kind for kind in NotificationKind}


class WebhookSubscription(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One entry of ``WAYBILL_WEBHOOK_SUBSCRIPTIONS``."""

    url: Annotated[str, msgspec.Meta(min_length=1)]
    secret: Annotated[str, msgspec.Meta(min_length=1)]
    name: str | None = None
    channels: tuple[str, ...] = ()
    """Sales channels (``Order.channel``: web, marketplace...) whose orders it wants."""
    partner_ids: tuple[int, ...] = ()
    """Odoo res.partner ids of the customers whose orders it wants."""
    events: tuple[str, ...] = ()
    """Event types it wants: shipment.booked, .out_for_delivery, .delivered, .exception."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"webhook url {self.url!r} must be an absolute http(s) URL")
        decode_secret(self.secret)
        unknown = sorted(set(self.events) - set(EVENT_NAMES))
        if unknown:
            raise ValueError(
                f"unknown webhook event(s) {', '.join(unknown)}: use {', '.join(EVENT_NAMES)}"
            )

    def wants(self, kind: NotificationKind, channel: str | None, partner_id: int | None) -> bool:
        """Whether a notification of ``kind`` about such an order goes to this endpoint."""
        if self.events and kind.event_name not in self.events:
            return False
        if self.channels and channel not in self.channels:
            return False
        return not self.partner_ids or partner_id in self.partner_ids


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """A webhook destination as the sender needs it."""

    url: str
    secret: str
    label: str
    """How events and logs name it: the subscription's name, else the URL without its query."""
    key: str = field(init=False)
    """A short stable token for KV keys (the URL may hold any character)."""

    def __post_init__(self) -> None:
        # Worked out once: every webhook names its step and its registry entry by it.
        object.__setattr__(self, "key", "e" + fact_id("webhook-endpoint", self.url)[:20])


class Subscriptions:
    """Every configured subscription, and which endpoints want what."""

    def __init__(self, entries: Iterable[WebhookSubscription]) -> None:
        self.entries = tuple(entries)
        # Each entry's endpoint, built once rather than for every notification.
        self._endpoints = [
            (
                entry,
                Endpoint(
                    url=entry.url, secret=entry.secret, label=entry.name or _public_url(entry.url)
                ),
            )
            for entry in self.entries
        ]

    def endpoints_for(
        self, kind: NotificationKind, channel: str | None, partner_id: int | None
    ) -> list[Endpoint]:
        """The endpoints that want this notification, each once, in configuration order."""
        chosen: dict[str, Endpoint] = {}
        for entry, endpoint in self._endpoints:
            if entry.url not in chosen and entry.wants(kind, channel, partner_id):
                chosen[entry.url] = endpoint
        return list(chosen.values())


def _public_url(url: str) -> str:
    # A query string may carry a token; it is not for events or logs.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


_DECODER = msgspec.json.Decoder(list[WebhookSubscription])


def _parse(text: str, source: str) -> list[WebhookSubscription]:
    try:
        return _DECODER.decode(text.strip() or "[]")
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise SettingsError(
            f"{source} is not valid: {error}; expected a JSON list of "
            '{"url": ..., "secret": "whsec_...", "channels": [...], "events": [...]}'
        ) from None


def load_subscriptions(settings: NotifierSettings) -> Subscriptions:
    """The subscriptions of ``WAYBILL_WEBHOOK_SUBSCRIPTIONS`` and of the file, if any."""
    entries = _parse(settings.webhook_subscriptions, "WAYBILL_WEBHOOK_SUBSCRIPTIONS")
    path = settings.webhook_subscriptions_file
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except OSError as error:
            raise SettingsError(
                f"WAYBILL_WEBHOOK_SUBSCRIPTIONS_FILE={path!r} cannot be read "
                f"({error.strerror}): point it at a readable JSON file or unset it"
            ) from None
        entries += _parse(text, f"WAYBILL_WEBHOOK_SUBSCRIPTIONS_FILE ({os.path.basename(path)})")
    return Subscriptions(entries)
