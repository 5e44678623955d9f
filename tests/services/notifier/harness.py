"""A notifier running in-process against the mail sandbox's SMTP sink and webhook receiver.

Events are published as their real publishers would (gateway, carrier-router);
what the notifier did is read back from the sink, the receiver and the events
stream.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client as NatsClient

from waybill_contracts import Event, Message, SubjectMap, encode, new_context
from waybill_contracts.events import (
    MilestoneReached,
    NotificationFailed,
    NotificationSent,
    OrderReleased,
    ShipmentBooked,
)
from waybill_contracts.examples import example_of
from waybill_contracts.model import Milestone, MilestoneCode, NotificationChannel
from waybill_notifier.app import service
from waybill_runtime.bus.dead_letters import DeadLetter
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters, settled, stored_messages
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.mail import CapturedMail, Delivery, SmtpSink, WebhookReceiver
from waybill_sandboxes.server import serve

E = TypeVar("E", bound=Event)

# Quick redeliveries: what matters is that they happen, not when.
FAST_RETRIES: dict[str, Any] = {"retry_backoff_s": (0.05, 0.1, 0.2), "max_deliver": 100}


def order_released(
    ref: str,
    *,
    email: str | None = "marie@example.com",
    name: str = "Marie Jansen",
    locale: str | None = "en_US",
    channel: str | None = "web",
    partner_id: int | None = 17,
) -> OrderReleased:
    """The example release, for order ``ref`` and the given customer."""
    example = example_of(OrderReleased)
    customer = msgspec.structs.replace(
        example.order.customer, email=email, name=name, locale=locale, odoo_partner_id=partner_id
    )
    order = msgspec.structs.replace(
        example.order, ref=ref, sale_order_ref=None, customer=customer, channel=channel
    )
    return msgspec.structs.replace(example, order=order)


def shipment_id_of(ref: str) -> str:
    return "shp-" + ref.replace("/", "-")


def shipment_booked(ref: str, *, tracking_url: str | None = None) -> ShipmentBooked:
    """The example booking, for order ``ref``."""
    example = example_of(ShipmentBooked)
    shipment = msgspec.structs.replace(
        example.shipment,
        shipment_id=shipment_id_of(ref),
        order_ref=ref,
        tracking_number="TN" + ref.replace("/", ""),
        tracking_url=tracking_url,
    )
    return msgspec.structs.replace(example, shipment=shipment)


def milestone(ref: str, code: MilestoneCode, **details: Any) -> MilestoneReached:
    """A milestone of the shipment of order ``ref``."""
    return MilestoneReached(
        shipment_id=shipment_id_of(ref),
        order_ref=ref,
        carrier="dhl",
        tracking_number="TN" + ref.replace("/", ""),
        milestone=Milestone(
            code=code,
            raw_status=code.value,
            occurred_at=datetime(2025, 3, 15, 11, 5, tzinfo=UTC),
            **details,
        ),
    )


@dataclass
class Rig:
    """The notifier, its SMTP sink and webhook receiver, and a NATS client for both sides."""

    nc: NatsClient
    subjects: SubjectMap
    smtp: SmtpSink
    receiver: WebhookReceiver
    receiver_url: str
    settings: dict[str, Any] = field(default_factory=dict)

    async def publish(self, message: Message, *, source: str = "carrier-router") -> str:
        """Publish an event as its publisher would, with a fresh id; returns the id."""
        context = new_context(message, source=source)
        encoded = encode(message, context, self.subjects)
        await self.nc.jetstream().publish(
            encoded.subject, encoded.body, headers=dict(encoded.headers)
        )
        return context.id

    async def release(self, ref: str, **customer: Any) -> OrderReleased:
        event = order_released(ref, **customer)
        await self.publish(event, source="odoo-gateway")
        return event

    async def events(self, event_type: type[E]) -> list[E]:
        """Stored events of one type, oldest first."""
        return [event for event, _ in await stored_messages(self.nc, self.subjects, event_type)]

    async def sent(self, channel: NotificationChannel | None = None) -> list[NotificationSent]:
        return [
            event
            for event in await self.events(NotificationSent)
            if channel is None or event.channel is channel
        ]

    async def failed(self, *, permanent: bool | None = None) -> list[NotificationFailed]:
        return [
            event
            for event in await self.events(NotificationFailed)
            if permanent is None or event.permanent is permanent
        ]

    async def wait_for_sent(
        self, count: int, channel: NotificationChannel | None = None
    ) -> list[NotificationSent]:
        async def probe() -> list[NotificationSent]:
            return await self.sent(channel)

        return await eventually(
            probe, until=lambda found: len(found) >= count, what=f"{count} NotificationSent"
        )

    async def wait_for_failed(self, count: int, *, permanent: bool) -> list[NotificationFailed]:
        async def probe() -> list[NotificationFailed]:
            return await self.failed(permanent=permanent)

        return await eventually(
            probe,
            until=lambda found: len(found) >= count,
            what=f"{count} NotificationFailed (permanent={permanent})",
        )

    async def wait_for_mail(self, count: int) -> list[CapturedMail]:
        async def probe() -> list[CapturedMail]:
            return list(self.smtp.messages)

        return await eventually(
            probe, until=lambda mail: len(mail) >= count, what=f"{count} email(s)"
        )

    async def wait_for_deliveries(self, count: int, *, path: str | None = None) -> list[Delivery]:
        async def probe() -> list[Delivery]:
            return [d for d in self.receiver.deliveries if path is None or d.path == path]

        return await eventually(
            probe, until=lambda found: len(found) >= count, what=f"{count} webhook deliveries"
        )

    async def settled(self) -> None:
        """Wait until the notifier has acknowledged every event (none pending or unacked)."""
        await settled(self.nc, self.subjects, service.name, "events")

    async def dead_letters(self) -> list[DeadLetter]:
        return await dead_letters(self.nc, self.subjects)


def subscription(
    url: str, secret: str, *, name: str | None = None, **wants: Sequence[Any]
) -> dict[str, Any]:
    """One entry of WAYBILL_WEBHOOK_SUBSCRIPTIONS."""
    entry: dict[str, Any] = {"url": url, "secret": secret, **wants}
    if name is not None:
        entry["name"] = name
    return entry


@contextlib.asynccontextmanager
async def sandbox() -> AsyncIterator[tuple[SmtpSink, WebhookReceiver, str]]:
    """The SMTP sink and the webhook receiver, each on a free port."""
    receiver = WebhookReceiver()
    async with SmtpSink() as smtp, serve(receiver.app()) as running:
        yield smtp, receiver, running.url


@contextlib.asynccontextmanager
async def notifier_running(
    rig: Rig, nats_url: str, nats_prefix: str, **settings: Any
) -> AsyncIterator[None]:
    """(Re)start the notifier for ``rig`` with its settings plus ``settings``."""
    options = {**rig.settings, **settings}
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix, **options):
        yield


@contextlib.asynccontextmanager
async def sinks(
    nc: NatsClient,
    nats_prefix: str,
    *,
    subscriptions: Sequence[dict[str, Any]] | None = None,
    **settings: Any,
) -> AsyncIterator[Rig]:
    """The sinks, and a rig holding the notifier's settings (start it with notifier_running).

    By default one endpoint wants everything. ``subscriptions`` entries may use
    ``{receiver}`` in their URL and ``{secret}`` as their secret, filled in
    with the receiver's.
    """
    async with sandbox() as (smtp, receiver, receiver_url):
        entries = (
            [subscription(f"{receiver_url}/webhooks", receiver.secret)]
            if subscriptions is None
            else [
                {
                    **entry,
                    "url": entry["url"].format(receiver=receiver_url),
                    "secret": entry["secret"].format(secret=receiver.secret),
                }
                for entry in subscriptions
            ]
        )
        options: dict[str, Any] = {
            **FAST_RETRIES,
            "smtp_host": smtp.host,
            "smtp_port": smtp.port,
            "smtp_timeout_s": 5.0,
            "webhook_timeout_s": 2.0,
            "mail_from": "Acme Shipping <ship@acme.test>",
            "webhook_subscriptions": json.dumps(entries),
            **settings,
        }
        yield Rig(
            nc=nc,
            subjects=SubjectMap(nats_prefix),
            smtp=smtp,
            receiver=receiver,
            receiver_url=receiver_url,
            settings=options,
        )


@contextlib.asynccontextmanager
async def notifier_and_sinks(
    nc: NatsClient,
    nats_url: str,
    nats_prefix: str,
    *,
    subscriptions: Sequence[dict[str, Any]] | None = None,
    **settings: Any,
) -> AsyncIterator[Rig]:
    """The sinks and a running notifier wired together (see :func:`sinks`)."""
    async with (
        sinks(nc, nats_prefix, subscriptions=subscriptions, **settings) as rig,
        notifier_running(rig, nats_url, nats_prefix),
    ):
        yield rig
