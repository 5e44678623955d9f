"""The outbound webhook side: a signed POST per notification and endpoint (Standard Webhooks).

Every attempt of one notification carries the same ``webhook-id`` (the
notification id), so a receiver that saw it already can drop the repeat; the
timestamp and signature are made afresh per attempt. Redirects are not
followed (a moved endpoint must be reconfigured, not guessed). The answer
decides what comes next: 2xx delivered; 410 disables the endpoint; 408, 425,
429 and 5xx are retried later, honouring ``Retry-After``; any other answer
is final. A timeout is retried too: the receiver drops the repeat by its id.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import aiohttp
import msgspec
from aiohttp import hdrs

from waybill_notifier.attempts import EndpointGone, NotDelivered, Receipt, Undeliverable
from waybill_notifier.notifications import MilestoneFacts, Notification
from waybill_notifier.order_book import CustomerContact
from waybill_notifier.signing import decode_secret, sign_with_key
from waybill_notifier.subscriptions import Endpoint
from waybill_runtime.outcomes import parse_retry_after
from waybill_runtime.partner_calls import partner_session

__all__ = ["WebhookSender", "webhook_body", "webhook_session"]

_RETRYABLE = frozenset({408, 425, 429})
# A Retry-After of days would park the message for days; six hours is plenty.
_LONGEST_RETRY_AFTER_S = 6 * 3600.0


class ShipmentData(msgspec.Struct, frozen=True, kw_only=True):
    """``data`` of a shipment webhook: no personal data, only what identifies the order."""

    order_ref: str
    sale_order_ref: str | None
    customer_reference: str | None
    channel: str | None
    shipment_id: str
    carrier: str
    tracking_number: str
    tracking_url: str | None
    milestone: MilestoneFacts | None


class WebhookPayload(msgspec.Struct, frozen=True, kw_only=True):
    """The body, in the usual Standard Webhooks shape: type, timestamp, data."""

    type: str
    timestamp: datetime
    data: ShipmentData


_ENCODE = msgspec.json.Encoder().encode


def webhook_body(notification: Notification, contact: CustomerContact) -> bytes:
    """The JSON body of ``notification``; the same bytes on every attempt."""
    label = contact.order_label
    return _ENCODE(
        WebhookPayload(
            type=notification.kind.event_name,
            timestamp=notification.occurred_at,
            data=ShipmentData(
                order_ref=notification.order_ref,
                sale_order_ref=label if label != notification.order_ref else None,
                customer_reference=contact.customer_reference,
                channel=contact.channel,
                shipment_id=notification.shipment_id,
                carrier=notification.carrier,
                tracking_number=notification.tracking_number,
                tracking_url=notification.tracking_url,
                milestone=notification.milestone,
            ),
        )
    )


def webhook_session(*, user_agent: str, timeout_s: float) -> aiohttp.ClientSession:
    """The HTTP session of :class:`WebhookSender`: what every webhook has in common.

    The content type, the user agent and the timeout are the session's, so each
    POST builds and merges only its own three headers (aiohttp copies and
    checks every header it is given, per request).
    """
    return partner_session(
        "webhook",
        operation="POST webhook",
        headers={hdrs.USER_AGENT: user_agent, hdrs.CONTENT_TYPE: "application/json"},
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    )


class WebhookSender:
    """POSTs signed webhooks with one shared HTTP session (:func:`webhook_session`)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        # Each endpoint's HMAC key by secret, decoded (and checked) once.
        self._keys: dict[str, bytes] = {}

    async def deliver(self, endpoint: Endpoint, webhook_id: str, body: bytes) -> Receipt:
        """One attempt; raises the :mod:`~waybill_notifier.attempts` failures."""
        timestamp = int(time.time())
        key = self._keys.get(endpoint.secret)
        if key is None:
            key = self._keys[endpoint.secret] = decode_secret(endpoint.secret)
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign_with_key(key, webhook_id, timestamp, body),
        }
        try:
            async with self._session.post(
                endpoint.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry_after = parse_retry_after(response.headers.get(hdrs.RETRY_AFTER))
        except TimeoutError:
            raise NotDelivered(f"{endpoint.label} did not answer in time") from None
        except (aiohttp.ClientError, OSError) as error:
            raise NotDelivered(f"{endpoint.label} unreachable: {type(error).__name__}") from None
        return _outcome(endpoint, status, retry_after)


def _outcome(endpoint: Endpoint, status: int, retry_after: float | None) -> Receipt:
    answer = f"{endpoint.label} answered HTTP {status}"
    if 200 <= status < 300:
        return Receipt(recipient=endpoint.label, sent_at=datetime.now(UTC))
    if status == 410:
        raise EndpointGone(f"{answer} (Gone): endpoint disabled")
    if status >= 500 or status in _RETRYABLE:
        delay = None if retry_after is None else min(retry_after, _LONGEST_RETRY_AFTER_S)
        raise NotDelivered(answer, retry_after_s=delay)
    if 300 <= status < 400:
        raise Undeliverable(f"{answer}: redirects are not followed, update the subscription URL")
    raise Undeliverable(answer)
