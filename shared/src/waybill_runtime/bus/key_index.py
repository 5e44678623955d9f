"""An index in a KV bucket: one empty key per member, listed without reading any value.

Work that must visit "everything still open" (orders that can be late,
shipments whose tracking may have gone quiet) must not read everything ever
stored. Each member gets an empty key ``<prefix><name>`` beside its record;
listing asks the server for the last message of each index key, headers only,
so only the names cross the wire. A removed member leaves a purge marker (one
small message, passed over by the listing; services may not purge a stream's
subjects themselves) that expires on its own after :data:`MARKER_TTL_S`
(a per-message TTL, which the runtime's buckets allow): without it every
member ever removed would leave its marker in the bucket for good.
"""

from __future__ import annotations

import contextlib

from nats.js.api import DeliverPolicy
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from waybill_runtime.bus.expiring import MIN_TTL_S

__all__ = ["LISTING_TIMEOUT_S", "MARKER_TTL_S", "KeyIndex"]

REMOVED = frozenset({KV_DEL, KV_PURGE})
"""The values of the header JetStream KV marks a removed key with."""

MARKER_TTL_S = 3600.0
"""How long a removed member's purge marker stays. Once it is gone the key has no
message left, which the listing and a later ``add`` treat as never a member, the
same as the marker: the hour only keeps the removal visible to people reading the
bucket meanwhile."""

LISTING_TIMEOUT_S = 10.0
"""Longest wait for the next index entry the server counted: a bound for a lost
connection, never reached while the server answers."""


class KeyIndex:
    """The members of one index (keys ``<prefix><name>``) in one bucket."""

    def __init__(self, kv: KeyValue, prefix: str, *, marker_ttl_s: float = MARKER_TTL_S) -> None:
        if not prefix.endswith("."):
            raise ValueError(f"an index prefix ends with a dot, not {prefix!r}")
        if marker_ttl_s < MIN_TTL_S:
            raise ValueError(f"a purge marker's TTL must be at least {MIN_TTL_S:.0f} s")
        self._kv = kv
        self.prefix = prefix
        self._marker_ttl_s = marker_ttl_s

    async def add(self, name: str) -> None:
        """Make ``name`` a member (already one: nothing to do)."""
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self._kv.create(self.prefix + name, b"")

    async def remove(self, name: str) -> None:
        """Take ``name`` out (its earlier revisions go too; the marker, later)."""
        await self._kv.purge(self.prefix + name, msg_ttl=self._marker_ttl_s)

    async def members(self) -> list[str]:
        """The names of every member, in the order the server keeps them."""
        status = await self._kv.status()
        bucket_subjects = f"$KV.{status.bucket}."
        js = self._kv._js  # the bucket's own JetStream context (nats-py names it privately)
        # An ordered consumer of the index's subjects, the last message of each, headers
        # only. nats-py's own watch() may end its listing before entries already on the
        # way (it decides from a count taken while they are in flight), so the messages
        # to read are counted here from the server's view: delivered plus pending.
        subscription = await js.subscribe(
            bucket_subjects + self.prefix + ">",
            stream=status.stream_info.config.name,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            headers_only=True,
        )
        names: list[str] = []
        try:
            info = await subscription.consumer_info()
            delivered = info.delivered.consumer_seq if info.delivered is not None else 0
            expected = (info.num_pending or 0) + (delivered or 0)
            for _ in range(expected):
                msg = await subscription.next_msg(timeout=LISTING_TIMEOUT_S)
                if (msg.headers or {}).get(KV_OP) in REMOVED:
                    continue  # a member taken out: its purge marker
                names.append(msg.subject.removeprefix(bucket_subjects + self.prefix))
        finally:
            await subscription.unsubscribe()
        return names
