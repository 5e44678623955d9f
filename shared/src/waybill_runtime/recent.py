"""A bounded memory of the most recently used entries, for sparing round trips to a bucket.

Only for values a bucket stays the authority on: an entry here is either final
(a recorded effect never changes) or checked by the next compare-and-set
(a stale revision makes the write fail, and the caller reads again).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["Recent"]

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """At most ``size`` entries; the least recently used is forgotten first."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"size must be 0 or more, not {size}")
        self._size = size
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The entry under ``key`` (now the most recently used), or None."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        """Remember ``value`` under ``key``; returns it."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return value

    def forget(self, key: K) -> None:
        """Drop ``key`` if remembered."""
        self._entries.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
