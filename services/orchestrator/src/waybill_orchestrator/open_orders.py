"""The index of open orders: one empty key per order not yet in a final stage.

The deadline sweep must look at every order that can still be late, and at
nothing else: the workflow bucket keeps finished orders too, and reading them
all on every sweep made its cost grow with the installation's whole history
(per replica). Each open order has a key ``open.<order key>`` beside its
state; the sweep lists only those, with a subject filter the server applies.

The index key is written before the order's first state and removed after
its final one. So a crash can leave an index key with no state, or a
finished order still indexed (both harmless: the sweep reads one state
more, and drops the key of an order it finds finished), but never an open
order out of the index. A removed key leaves a purge marker (one small
message per finished order, which the listing passes over without reading
any state; the services may not purge a stream's subjects themselves).
"""

from __future__ import annotations

import contextlib

from nats.js.api import DeliverPolicy
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

STATE_PREFIX = "order."
"""Keys of order-to-ship states (other processes may share the bucket later)."""

INDEX_PREFIX = "open."
"""Keys of the open-orders index: ``open.`` + the state key without its prefix."""

KV_OPERATION = KV_OP
REMOVED = frozenset({KV_DEL, KV_PURGE})
"""The header and values JetStream KV marks a removed key with."""

LISTING_TIMEOUT_S = 10.0
"""Longest wait for the next index entry the server counted: a bound for a lost
connection, never reached while the server answers."""


def index_key(state_key: str) -> str:
    """The index key of the order whose state is stored under ``state_key``."""
    return INDEX_PREFIX + state_key.removeprefix(STATE_PREFIX)


def state_key(index_key: str) -> str:
    """The state key of the order indexed under ``index_key``."""
    return STATE_PREFIX + index_key.removeprefix(INDEX_PREFIX)


class OpenOrders:
    """The index of open orders in one workflow bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def add(self, state_key: str) -> None:
        """Index the order (already indexed: nothing to do)."""
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self._kv.create(index_key(state_key), b"")

    async def remove(self, state_key: str) -> None:
        """Take the order out of the index (its earlier revisions go too)."""
        await self._kv.purge(index_key(state_key))

    async def state_keys(self) -> list[str]:
        """The state keys of every indexed order (only index keys cross the wire, no values)."""
        status = await self._kv.status()
        bucket_subjects = f"$KV.{status.bucket}."
        js = self._kv._js  # the bucket's own JetStream context (nats-py names it privately)
        # An ordered consumer of the index's subjects, the last message of each, headers
        # only. nats-py's own watch() may end its listing before entries already on the
        # way (it decides from a count taken while they are in flight), so the messages
        # to read are counted here from the server's view: delivered plus pending.
        subscription = await js.subscribe(
            bucket_subjects + INDEX_PREFIX + ">",
            stream=status.stream_info.config.name,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            headers_only=True,
        )
        keys: list[str] = []
        try:
            info = await subscription.consumer_info()
            delivered = info.delivered.consumer_seq if info.delivered is not None else 0
            expected = (info.num_pending or 0) + (delivered or 0)
            for _ in range(expected):
                msg = await subscription.next_msg(timeout=LISTING_TIMEOUT_S)
                if (msg.headers or {}).get(KV_OPERATION) in REMOVED:
                    continue  # an order taken out of the index: its purge marker
                keys.append(state_key(msg.subject.removeprefix(bucket_subjects)))
        finally:
            await subscription.unsubscribe()
        return keys
