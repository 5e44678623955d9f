"""Counting what code does, for tests that hold a ceiling on it: the round trips made
through a real KV bucket, the function calls made on this thread."""

from __future__ import annotations

import sys
from types import FrameType, TracebackType
from typing import Any

from nats.js.kv import KeyValue

__all__ = ["CallCount", "CountingKV"]


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


class CallCount:
    """Counts every function call (Python and built-in) made on this thread while on.

    ``start`` and ``stop`` it (from inside the code counted, say), or use it as a
    context manager around the code. Counts are exact for a given path: tests hold a
    ceiling on them, never a time.
    """

    def __init__(self) -> None:
        self.calls = 0

    def _count(self, _frame: FrameType, event: str, _arg: object) -> None:
        if event == "call" or event == "c_call":
            self.calls += 1

    def start(self) -> None:
        sys.setprofile(self._count)

    def stop(self) -> None:
        sys.setprofile(None)

    def __enter__(self) -> CallCount:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()
