"""Typed records in a JetStream key-value bucket, written with compare-and-set.

Two replicas of the router may touch one record at the same time; every write
names the revision it read, so the second writer fails with
``KeyWrongLastSequenceError``, reads again and decides again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_contracts import fact_id
from waybill_runtime.outcomes import TransientError

__all__ = ["KvRecords", "kv_token"]

T = TypeVar("T")

_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_=-]{1,64}")
_CAS_ATTEMPTS = 10


def kv_token(text: str) -> str:
    """``text`` as one key token: itself when plain (readable), else a digest of it."""
    return text if _SAFE_TOKEN.fullmatch(text) else "h" + fact_id(text)


class KvRecords(Generic[T]):
    """Records of type ``T`` under ``<prefix>.<token>...`` keys of one bucket."""

    def __init__(self, kv: KeyValue, record_type: type[T], *, prefix: str) -> None:
        self._kv = kv
        self._prefix = prefix
        self._decode = msgspec.json.Decoder(record_type).decode
        self._encode = msgspec.json.Encoder().encode

    def key(self, *parts: str) -> str:
        """The key of the record named by ``parts`` (each turned into one safe token)."""
        return ".".join((self._prefix, *(kv_token(part) for part in parts)))

    async def get(self, key: str) -> tuple[T, int] | None:
        """The record and its revision, or None when there is none."""
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return self._decode(entry.value), entry.revision

    async def put(self, key: str, record: T, *, revision: int | None) -> int:
        """Write ``record`` if the key is still at ``revision`` (None: if it does not exist yet).

        Raises ``KeyWrongLastSequenceError`` when someone else wrote first.
        """
        value = self._encode(record)
        if revision is None:
            return await self._kv.create(key, value)
        return await self._kv.update(key, value, last=revision)

    async def delete(self, key: str) -> None:
        """Delete the record (a no-op when there is none)."""
        await self._kv.delete(key)

    async def change(
        self,
        key: str,
        decide: Callable[[T | None], T | None],
        *,
        known: tuple[T, int] | tuple[None, None] | None = None,
    ) -> tuple[T, int] | None:
        """Read, let ``decide`` return the new record (None: leave it as it is), write it with
        compare-and-set, and start over when someone else wrote first.

        ``known`` is the record and revision the caller just read or wrote (``(None,
        None)``: it just found none): the first attempt decides on it without reading.
        A write made on it is checked by the compare-and-set; a decision to leave it
        alone is as good as one made on a read that another writer overtook a moment
        later (which no read can rule out).

        Returns what was written and its revision, or None when ``decide`` left it alone.
        """
        for _ in range(_CAS_ATTEMPTS):
            found: tuple[T, int] | tuple[None, None] | None = (
                known if known is not None else await self.get(key)
            )
            known = None
            current, revision = found if found is not None else (None, None)
            updated = decide(current)
            if updated is None:
                return None
            try:
                written = await self.put(key, updated, revision=revision)
            except KeyWrongLastSequenceError:
                continue
            return updated, written
        raise TransientError(f"{key} kept changing under concurrent writers; try again later")
