"""A round trip through JetStream, to prove a freshly started stack really works."""

from __future__ import annotations

import uuid

import nats


async def jetstream_smoke_check(url: str) -> int:
    """Create a throw-away stream, publish to it, read the message back, delete it.

    Returns 0 on success; prints what failed and returns 1 otherwise.
    """
    name = f"WAYBILL_SMOKE_{uuid.uuid4().hex[:8].upper()}"
    subject = f"waybill-smoke.{name.lower()}"
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        await js.add_stream(name=name, subjects=[subject])
        try:
            ack = await js.publish(subject, b"ping")
            stored = await js.get_msg(name, ack.seq)
            if stored.data != b"ping":
                print(f"demo: JetStream returned {stored.data!r} instead of b'ping'")
                return 1
        finally:
            await js.delete_stream(name)
    finally:
        await nc.close()
    print("demo: JetStream round trip ok", flush=True)
    return 0
