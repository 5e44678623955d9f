"""Bounding work in flight: a cap per partner, and one operation at a time per key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from types import TracebackType

__all__ = ["ConcurrencyLimit", "KeyedLock"]


class ConcurrencyLimit:
    """At most ``limit`` operations at once (e.g. RPCs in flight to one Odoo)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self._semaphore = asyncio.Semaphore(limit)
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Operations inside the limit right now."""
        return self._in_flight

    async def __aenter__(self) -> ConcurrencyLimit:
        await self._semaphore.acquire()
        self._in_flight += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._in_flight -= 1
        self._semaphore.release()


class _KeyEntry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0  # holders plus waiters


class KeyedLock:
    """Never two concurrent operations on one key (e.g. one Odoo record).

    Entries exist only while someone holds or waits for a key, so a service
    touching millions of records keeps no memory of them.
    """

    def __init__(self) -> None:
        self._entries: dict[Hashable, _KeyEntry] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        """Hold ``key`` for the duration of the ``async with`` block."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _KeyEntry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]

    def locked(self, key: Hashable) -> bool:
        """Whether someone holds ``key`` now."""
        entry = self._entries.get(key)
        return entry is not None and entry.lock.locked()

    def __len__(self) -> int:
        """Keys held or waited for right now."""
        return len(self._entries)
