"""How one attempt to hand a notification to a provider (SMTP relay, webhook endpoint) ended.

Success is a :class:`Receipt`. Failures say what they prove, because that
decides whether the next attempt may simply be made:

- :class:`NotDelivered`: the provider did not take it (connection refused,
  a 4xx SMTP reply, HTTP 503) or the exchange broke off; try again, after
  ``retry_after_s`` if the provider named a time. An exchange that broke off
  after the whole message was sent (a timeout waiting for the final reply)
  may have reached the provider: retrying it is what SMTP relays themselves
  do, and webhook receivers drop the repeat by its ``webhook-id``.
- :class:`Undeliverable`: no retry can help (mailbox refused for good, HTTP
  400); :class:`EndpointGone` (HTTP 410) also disables the endpoint.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

__all__ = ["EndpointGone", "NotDelivered", "Receipt", "Undeliverable"]


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """A provider accepted a notification."""

    recipient: str
    """Where it went: an email address or an endpoint's label (personal data for email)."""
    provider_message_id: str | None = None
    sent_at: datetime


class NotDelivered(Exception):
    """The provider did not take the notification; a later attempt may succeed."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class Undeliverable(Exception):
    """The provider refused the notification for good."""


class EndpointGone(Undeliverable):
    """A webhook endpoint answered 410 Gone: it wants no more deliveries."""
