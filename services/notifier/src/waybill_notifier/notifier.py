"""The notifier's work: remember who ordered, and tell them (and subscribers) about shipments.

:class:`Notifier` is built once per running service (see :func:`open_notifier`)
and used by the event handlers through the runtime's resources.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

import msgspec

from waybill_contracts.events import (
    MilestoneReached,
    OrderReleased,
    ReturnCompleted,
    ReturnLabelBooked,
    ReturnParcelOverdue,
    ReturnRequested,
    ShipmentBooked,
)
from waybill_contracts.model import NotificationChannel
from waybill_notifier.attempts import Receipt
from waybill_notifier.config import NotifierSettings
from waybill_notifier.delivery import Deliveries, FirstTry, Step
from waybill_notifier.endpoint_registry import EndpointRegistry
from waybill_notifier.mailer import Mailer
from waybill_notifier.notifications import (
    Notification,
    from_milestone,
    from_return_completed,
    from_return_label,
    from_return_overdue,
    from_shipment_booked,
)
from waybill_notifier.order_book import CustomerContact, OrderBook, contact_of, contact_of_return
from waybill_notifier.rendering import render_email
from waybill_notifier.subscriptions import Endpoint, Subscriptions, load_subscriptions
from waybill_notifier.webhooks import WebhookSender, webhook_body, webhook_session
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.outcomes import RetryLater
from waybill_runtime.service import ResourceKey, Runtime

__all__ = ["NOTIFIER", "Notifier", "open_notifier"]

log = logging.getLogger("waybill.notifier")

NOTIFIER: ResourceKey[Notifier] = ResourceKey("notifier")


class Notifier:
    """Turns shipment events into emails and webhooks, each delivered once."""

    def __init__(
        self,
        *,
        settings: NotifierSettings,
        orders: OrderBook,
        endpoints: EndpointRegistry,
        subscriptions: Subscriptions,
        mailer: Mailer,
        webhooks: WebhookSender,
        deliveries: Deliveries,
    ) -> None:
        self.settings = settings
        self.orders = orders
        self.endpoints = endpoints
        self.subscriptions = subscriptions
        self.mailer = mailer
        self.webhooks = webhooks
        self.deliveries = deliveries

    async def order_released(self, event: OrderReleased) -> None:
        """Keep the customer's contact and the order's channel for the shipment events."""
        await self.orders.remember(contact_of(event.order))

    async def shipment_booked(
        self, event: ShipmentBooked, ctx: HandlerContext[NotifierSettings]
    ) -> None:
        """The "shipped" email and webhooks."""
        notification = from_shipment_booked(event)
        if notification.tracking_url:
            await self.orders.remember_tracking_page(
                notification.shipment_id, notification.tracking_url
            )
        await self._notify(notification, ctx)

    async def milestone_reached(
        self, event: MilestoneReached, ctx: HandlerContext[NotifierSettings]
    ) -> None:
        """Out for delivery, delivered, exception; other milestones are not worth an email."""
        notification = from_milestone(event)
        if notification is None:
            log.debug("milestone %s of %s is not notified", event.milestone.code, event.order_ref)
            return
        await self._notify(notification, ctx)

    async def return_requested(self, event: ReturnRequested) -> None:
        """Keep who asked for the return, if the order's release is no longer remembered."""
        await self.orders.remember_if_unknown(contact_of_return(event))

    async def return_event(
        self,
        event: ReturnLabelBooked | ReturnParcelOverdue | ReturnCompleted,
        ctx: HandlerContext[NotifierSettings],
    ) -> None:
        """The return label, a reminder of it, the credit confirmation: once each."""
        if isinstance(event, ReturnLabelBooked):
            notification: Notification | None = from_return_label(event)
        elif isinstance(event, ReturnParcelOverdue):
            notification = from_return_overdue(event)
        else:
            notification = from_return_completed(event)
        if notification is None:
            log.info("return %s closed without a credit: nothing to tell", event.return_id)
            return
        await self._notify(notification, ctx)

    async def _notify(
        self, notification: Notification, ctx: HandlerContext[NotifierSettings]
    ) -> None:
        contact = await self.orders.contact(notification.order_ref)
        if contact is None:
            # The release and the shipment events travel separately: wait for it.
            raise RetryLater(f"order {notification.order_ref} is not known yet (no release seen)")
        notification = await self._with_tracking_page(notification)
        steps = [self._email_step(notification, contact)]
        for endpoint in self.subscriptions.endpoints_for(
            notification.kind, contact.channel, contact.partner_id
        ):
            disabled = await self.endpoints.disabled(endpoint)
            if disabled is None:
                steps.append(self._webhook_step(notification, contact, endpoint))
            else:
                log.info("webhook endpoint %s is disabled (%s)", endpoint.label, disabled.reason)
        await self.deliveries.deliver(notification, steps, ctx)

    async def _with_tracking_page(self, notification: Notification) -> Notification:
        url = notification.tracking_url or await self.orders.tracking_page(notification.shipment_id)
        template = self.settings.tracking_url_templates.get(notification.carrier)
        if url is None and template is not None:
            url = template.replace(
                "{tracking_number}", quote(notification.tracking_number, safe="")
            )
        return msgspec.structs.replace(notification, tracking_url=url)

    def _email_step(self, notification: Notification, contact: CustomerContact) -> Step:
        async def send() -> Receipt:
            message = self.mailer.compose(
                notification, contact, render_email(notification, contact)
            )
            return await self.mailer.send(message)

        return Step(
            channel=NotificationChannel.EMAIL,
            channel_key="email",
            send=send,
            recipient=contact.email,
        )

    def _webhook_step(
        self, notification: Notification, contact: CustomerContact, endpoint: Endpoint
    ) -> Step:
        body = webhook_body(notification, contact)

        async def send() -> Receipt:
            return await self.webhooks.deliver(endpoint, notification.notification_id, body)

        async def gone(reason: str) -> None:
            await self.endpoints.disable(endpoint, reason)

        return Step(
            channel=NotificationChannel.WEBHOOK,
            channel_key=f"webhook.{endpoint.key}",
            send=send,
            on_gone=gone,
            recipient=endpoint.label,
        )


@contextlib.asynccontextmanager
async def open_notifier(runtime: Runtime[NotifierSettings]) -> AsyncIterator[Notifier]:
    """Build the notifier for a running service (its HTTP session closes on stop)."""
    settings = runtime.settings
    subscriptions = load_subscriptions(settings)
    mailer = Mailer(settings)
    async with (
        webhook_session(
            user_agent=f"Waybill-Notifier/{settings.version}",
            timeout_s=settings.webhook_timeout_s,
        ) as session,
        contextlib.aclosing(mailer),
    ):
        notifier = Notifier(
            settings=settings,
            orders=OrderBook(
                contacts=runtime.buckets["contacts"],
                tracking=runtime.buckets["tracking"],
                legacy=runtime.buckets["workflow"],
            ),
            endpoints=EndpointRegistry(runtime.buckets["workflow"]),
            subscriptions=subscriptions,
            mailer=mailer,
            webhooks=WebhookSender(session),
            deliveries=Deliveries(
                runtime.buckets["idempotency"],
                runtime.once_only(Receipt),
                runtime.once_only(FirstTry),
                failures=runtime.metrics.counter(
                    "waybill_notifications_failed_total",
                    "Notifications not sent: each failed attempt (permanent=false, tried "
                    "again) and each given up (permanent=true), by channel and kind.",
                    ("channel", "kind", "permanent"),
                ),
            ),
        )
        log.info(
            "notifying by email through %s:%d and to %d webhook subscription(s)",
            settings.smtp_host,
            settings.smtp_port,
            len(subscriptions.entries),
        )
        yield notifier
