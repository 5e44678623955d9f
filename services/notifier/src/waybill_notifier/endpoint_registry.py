"""Webhook endpoints that asked to be left alone (HTTP 410), remembered across restarts.

Kept in the workflow bucket under ``notifier.endpoint.<endpoint key>``; an
operator re-enables an endpoint by deleting that key (or by changing its
URL in the subscriptions, which gives it a new key).
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from waybill_notifier.subscriptions import Endpoint

__all__ = ["DisabledEndpoint", "EndpointRegistry"]


class DisabledEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """Why and when an endpoint was disabled."""

    label: str
    reason: str
    disabled_at: datetime


class EndpointRegistry:
    """Which webhook endpoints are disabled."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._decode = msgspec.json.Decoder(DisabledEndpoint).decode
        self._encode = msgspec.json.Encoder().encode

    @staticmethod
    def key(endpoint: Endpoint) -> str:
        return f"notifier.endpoint.{endpoint.key}"

    async def disable(self, endpoint: Endpoint, reason: str) -> None:
        record = DisabledEndpoint(
            label=endpoint.label, reason=reason, disabled_at=datetime.now(UTC)
        )
        await self._kv.put(self.key(endpoint), self._encode(record))

    async def disabled(self, endpoint: Endpoint) -> DisabledEndpoint | None:
        """The record of a disabled endpoint, or None while it is enabled."""
        try:
            entry = await self._kv.get(self.key(endpoint))
        except KeyNotFoundError:
            return None
        return self._decode(entry.value) if entry.value else None
