"""Replays of carrier A's webhooks, whose signature has no timestamp.

Carrier A (EasyPost style) signs the raw body only, so a webhook captured on
the way could be sent again at any later time and still check out. Its body
is an Event with an ``id`` and a ``created_at``, both covered by the
signature, and they stand in for a signed timestamp:

* an Event created longer ago than the replay window (or further in the
  future than the clock tolerance) is refused as a possible replay (401);
* the id of every Event taken in is remembered for the window, in the
  idempotency bucket (shared by every replica), and the same Event arriving
  again is acknowledged without being acted on twice.

Only Events that were taken in are remembered: one answered 503 (a tracking
number not booked yet) is acted on when the carrier sends it again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from waybill_carrier_router.carriers import WebhookIdentity
from waybill_carrier_router.kv_records import kv_token
from waybill_runtime.signatures import SignatureError

__all__ = ["ReplayGuard"]

_PREFIX = "webhook"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ReplayGuard:
    """Refuses stale webhooks and recognises ones taken in before, for one bucket."""

    def __init__(
        self,
        kv: KeyValue,
        *,
        window_s: float,
        tolerance_s: float,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._kv = kv
        self._window_s = window_s
        self._tolerance_s = tolerance_s
        self._clock = clock

    def check_fresh(self, identity: WebhookIdentity) -> None:
        """Raise :class:`SignatureError` for an Event outside the replay window."""
        age_s = (self._clock() - identity.created_at).total_seconds()
        if age_s > self._window_s:
            raise SignatureError(
                f"webhook {identity.id} was created {age_s:.0f} s ago, beyond the replay "
                f"window of {self._window_s:.0f} s"
            )
        if -age_s > self._tolerance_s:
            raise SignatureError(
                f"webhook {identity.id} was created {-age_s:.0f} s in the future "
                f"(allowed {self._tolerance_s:.0f} s)"
            )

    def _key(self, carrier: str, identity: WebhookIdentity) -> str:
        return f"{_PREFIX}.{kv_token(carrier)}.{kv_token(identity.id)}"

    async def taken_before(self, carrier: str, identity: WebhookIdentity) -> bool:
        """Whether this Event was taken in before (within the window)."""
        try:
            entry = await self._kv.get(self._key(carrier, identity))
        except (KeyNotFoundError, KeyDeletedError):
            return False
        return entry.value is not None

    async def remember(self, carrier: str, identity: WebhookIdentity) -> None:
        """Note that this Event was taken in; kept as long as the bucket keeps entries."""
        await self._kv.put(self._key(carrier, identity), identity.created_at.isoformat().encode())
