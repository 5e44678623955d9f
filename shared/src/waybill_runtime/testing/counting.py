"""A real KV bucket that counts the round trips made through it, for tests that count them."""

from __future__ import annotations

from typing import Any

from nats.js.kv import KeyValue

__all__ = ["CountingKV"]


class CountingKV:
    """Passes everything to ``kv``; counts reads (``get``) and writes (``update``, ``put``...).

    Pass it where a :class:`~nats.js.kv.KeyValue` is expected (``# type: ignore[arg-type]``).
    """

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self.reads = 0
        self.writes = 0

    async def get(self, key: str) -> KeyValue.Entry:
        self.reads += 1
        return await self._kv.get(key)

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        self.writes += 1
        return await self._kv.update(key, value, last=last)

    async def create(self, key: str, value: bytes) -> int:
        self.writes += 1
        return await self._kv.create(key, value)

    async def put(self, key: str, value: bytes) -> int:
        self.writes += 1
        return await self._kv.put(key, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)
