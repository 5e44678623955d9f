"""Webhook endpoints that asked to be left alone (HTTP 410), remembered across restarts.

Kept in the workflow bucket under ``notifier.endpoint.<endpoint key>``; an
operator re-enables an endpoint by deleting that key (or by changing its
URL in the subscriptions, which gives it a new key).

Every webhook of every notification asks whether its endpoint is disabled;
the answer is kept for :data:`FRESH_FOR_S` seconds instead of asking the
bucket each time. An endpoint disabled by another replica, or re-enabled by
an operator, is seen within that time: at worst one more webhook to an
endpoint that answers 410 again, or one a few seconds later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from waybill_notifier.subscriptions import Endpoint
from waybill_runtime.recent import Recent

__all__ = ["FRESH_FOR_S", "DisabledEndpoint", "EndpointRegistry"]

FRESH_FOR_S = 5.0
"""How long an endpoint's state read from the bucket is taken as current."""

REMEMBERED_ENDPOINTS = 1024
"""How many endpoints' states are kept in memory (subscriptions name a handful)."""


class DisabledEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """Why and when an endpoint was disabled."""

    label: str
    reason: str
    disabled_at: datetime


class EndpointRegistry:
    """Which webhook endpoints are disabled."""

    def __init__(self, kv: KeyValue, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._kv = kv
        self._decode = msgspec.json.Decoder(DisabledEndpoint).decode
        self._encode = msgspec.json.Encoder().encode
        # By key, the state read or written here, current for a while: a one-tuple,
        # its record None while the endpoint is enabled (known enabled is not unknown).
        self._known: Recent[str, tuple[DisabledEndpoint | None]] = Recent(
            REMEMBERED_ENDPOINTS, max_age_s=FRESH_FOR_S, clock=clock
        )

    @staticmethod
    def key(endpoint: Endpoint) -> str:
        return f"notifier.endpoint.{endpoint.key}"

    async def disable(self, endpoint: Endpoint, reason: str) -> None:
        record = DisabledEndpoint(
            label=endpoint.label, reason=reason, disabled_at=datetime.now(UTC)
        )
        await self._kv.put(self.key(endpoint), self._encode(record))
        self._known.put(self.key(endpoint), (record,))

    async def disabled(self, endpoint: Endpoint) -> DisabledEndpoint | None:
        """The record of a disabled endpoint, or None while it is enabled."""
        key = self.key(endpoint)
        known = self._known.get(key)
        if known is not None:
            return known[0]
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            record = None
        else:
            record = self._decode(entry.value) if entry.value else None
        self._known.put(key, (record,))
        return record
