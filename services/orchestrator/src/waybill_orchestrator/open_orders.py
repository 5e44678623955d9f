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
order out of the index. The index is the runtime's
:class:`~waybill_runtime.bus.key_index.KeyIndex`.
"""

from __future__ import annotations

from nats.js.kv import KeyValue

from waybill_runtime.bus.key_index import KeyIndex

STATE_PREFIX = "order."
"""Keys of order-to-ship states (other processes may share the bucket later)."""

INDEX_PREFIX = "open."
"""Keys of the open-orders index: ``open.`` + the state key without its prefix."""


def index_key(state_key: str) -> str:
    """The index key of the order whose state is stored under ``state_key``."""
    return INDEX_PREFIX + state_key.removeprefix(STATE_PREFIX)


class OpenOrders:
    """The index of open orders in one workflow bucket.

    Other processes kept in the bucket (returns) index theirs the same way under
    their own prefixes.
    """

    def __init__(
        self, kv: KeyValue, *, state_prefix: str = STATE_PREFIX, index_prefix: str = INDEX_PREFIX
    ) -> None:
        self._index = KeyIndex(kv, index_prefix)
        self._state_prefix = state_prefix

    async def add(self, state_key: str) -> None:
        """Index the order (already indexed: nothing to do)."""
        await self._index.add(state_key.removeprefix(self._state_prefix))

    async def remove(self, state_key: str) -> None:
        """Take the order out of the index (its earlier revisions go too)."""
        await self._index.remove(state_key.removeprefix(self._state_prefix))

    async def state_keys(self) -> list[str]:
        """The state keys of every indexed order (only index keys cross the wire, no values)."""
        return [self._state_prefix + name for name in await self._index.members()]
