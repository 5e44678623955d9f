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

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

STATE_PREFIX = "order."
"""Keys of order-to-ship states (other processes may share the bucket later)."""

INDEX_PREFIX = "open."
"""Keys of the open-orders index: ``open.`` + the state key without its prefix."""


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
        """The state keys of every indexed order (only index keys cross the wire)."""
        # A watch on the index's subjects only: the server filters, and no value is sent.
        watcher = await self._kv.watch(INDEX_PREFIX + ">", ignore_deletes=True, meta_only=True)
        keys: list[str] = []
        try:
            async for entry in watcher:
                if entry is None:  # the end of what is stored now
                    break
                keys.append(state_key(entry.key))
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it untyped
        return keys
