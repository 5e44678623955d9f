"""A bounded memory of the most recently used entries, for sparing round trips to a bucket.

Only for values a bucket stays the authority on: an entry here is either final
(a recorded effect never changes), checked by the next compare-and-set (a
stale revision makes the write fail, and the caller reads again), or taken as
current for a while only (``max_age_s``: what another replica may change, read
again once that long has passed).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Recent"]

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """At most ``size`` entries; the least recently used is forgotten first.

    With ``max_age_s``, an entry is also forgotten once ``max_age_s`` seconds
    of ``clock`` have passed since it was put (reading it does not make it
    younger; 0 keeps nothing). Every entry that old is dropped at the next
    look-up or put, however many: what is kept for a while only (personal
    data, say) is not kept longer in memory.
    """

    def __init__(
        self,
        size: int,
        *,
        max_age_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if size < 0:
            raise ValueError(f"size must be 0 or more, not {size}")
        if max_age_s is not None and max_age_s < 0:
            raise ValueError(f"max_age_s must be 0 or more, not {max_age_s}")
        self._size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._max_age_s = max_age_s
        self._clock = clock
        # With a maximum age: when each entry was put, the oldest first.
        self._put_at: dict[K, float] = {}

    def get(self, key: K) -> V | None:
        """The entry under ``key`` (now the most recently used), or None."""
        if self._max_age_s is not None:
            self._drop_aged(self._max_age_s)
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        """Remember ``value`` under ``key``; returns it."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        if self._max_age_s is not None:
            self._put_at.pop(key, None)  # put again: the youngest now
            self._put_at[key] = self._clock()
            self._drop_aged(self._max_age_s)
        while len(self._entries) > self._size:
            forgotten, _ = self._entries.popitem(last=False)
            self._put_at.pop(forgotten, None)
        return value

    def forget(self, key: K) -> None:
        """Drop ``key`` if remembered."""
        self._entries.pop(key, None)
        self._put_at.pop(key, None)

    def _drop_aged(self, max_age_s: float) -> None:
        too_old = self._clock() - max_age_s
        put_at = self._put_at
        while put_at:
            oldest = next(iter(put_at))
            if put_at[oldest] > too_old:
                return
            del put_at[oldest]
            self._entries.pop(oldest, None)

    def __contains__(self, key: object) -> bool:
        if self._max_age_s is not None:
            self._drop_aged(self._max_age_s)
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
