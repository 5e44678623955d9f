"""Records of batch runs in the workflow bucket: read with their revision, written only with
compare-and-set, and expiring once finished, like an order's state.

Product sync runs and inventory reconciliation runs keep their progress this
way: pages handled at once by two handlers or two instances never lose each
other's marks, and the loser of a race reads again and retries.
"""

from __future__ import annotations

import asyncio
import random
from typing import TypeVar

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_runtime.bus.expiring import write_expiring

__all__ = ["read_record", "write_record"]

R = TypeVar("R")


async def read_record(kv: KeyValue, key: str, kind: type[R]) -> tuple[R | None, int | None]:
    """The record under ``key`` and its revision; ``(None, None)`` when there is none."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None, None
    return msgspec.json.decode(entry.value or b"", type=kind), entry.revision


async def write_record(
    kv: KeyValue,
    key: str,
    record: msgspec.Struct,
    *,
    revision: int | None,
    attempt: int,
    expire_after_s: float = 0.0,
) -> bool:
    """Write ``record`` if ``key`` is still at ``revision`` (None: only if new), gone after
    ``expire_after_s`` when given; False (after a short random pause, so racers spread out)
    when someone else wrote first."""
    value = msgspec.json.encode(record)
    try:
        if expire_after_s:
            await write_expiring(kv, key, value, last=revision, ttl_s=expire_after_s)
        elif revision is None:
            await kv.create(key, value)
        else:
            await kv.update(key, value, last=revision)
    except KeyWrongLastSequenceError:
        await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        return False
    return True
