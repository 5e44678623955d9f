"""KV writes that expire on their own: a per-message TTL (NATS 2.11+, ``Nats-TTL``).

A bucket-wide TTL would expire live entries too; a state that is finished is
written with a TTL of its own instead, so a bucket holds what is open plus what
finished recently, not everything ever. Buckets made by nats-py 2.16 allow
per-message TTLs (``allow_msg_ttl``).
"""

from __future__ import annotations

from nats.js.kv import KeyValue

__all__ = ["MIN_TTL_S", "write_expiring"]

MIN_TTL_S = 1.0
"""The server counts TTLs in whole seconds; less than one is refused."""


async def write_expiring(
    kv: KeyValue, key: str, value: bytes, *, last: int | None, ttl_s: float
) -> int:
    """Write ``key`` if it is still at revision ``last`` (None: only if new); gone after ``ttl_s``.

    Returns the new revision; raises nats-py's ``KeyWrongLastSequenceError`` like
    ``update``/``create`` when someone else wrote first.
    """
    if ttl_s < MIN_TTL_S:
        raise ValueError(f"a KV entry's TTL must be at least {MIN_TTL_S:.0f} s, not {ttl_s}")
    if last is None:
        return await kv.create(key, value, msg_ttl=ttl_s)
    # nats-py's public update() takes no TTL; its _update() does (the runtime pins
    # nats-py <2.17, and tests/runtime/test_expiring.py checks the entry expires).
    return await kv._update(key, value, last=last, msg_ttl=ttl_s)
