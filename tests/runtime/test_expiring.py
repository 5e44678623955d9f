"""KV entries written with a TTL of their own expire; the others stay."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_runtime.bus.expiring import write_expiring
from waybill_runtime.bus.provisioning import ensure_bucket
from waybill_runtime.testing.waiting import eventually


@pytest.fixture
async def bucket(nc: NatsClient, nats_prefix: str) -> KeyValue:
    return await ensure_bucket(nc.jetstream(), f"{nats_prefix}_workflow")


async def _gone(bucket: KeyValue, key: str) -> bool:
    try:
        await bucket.get(key)
    except KeyNotFoundError:
        return True
    return False


async def test_an_entry_written_with_a_ttl_expires_and_the_others_stay(bucket: KeyValue) -> None:
    kept = await bucket.create("order.open", b"open")
    revision = await bucket.create("order.done", b"shipping")
    await write_expiring(bucket, "order.done", b"done", last=revision, ttl_s=1)
    await write_expiring(bucket, "order.new-and-done", b"done", last=None, ttl_s=1)
    assert (await bucket.get("order.done")).value == b"done"
    assert await eventually(lambda: _gone(bucket, "order.done"), what="the entry expired")
    assert await eventually(lambda: _gone(bucket, "order.new-and-done"), what="the entry expired")
    entry = await bucket.get("order.open")
    assert entry.value == b"open" and entry.revision == kept


async def test_a_stale_revision_is_refused_as_with_update(bucket: KeyValue) -> None:
    revision = await bucket.create("order.x", b"1")
    await bucket.update("order.x", b"2", last=revision)
    with pytest.raises(KeyWrongLastSequenceError):
        await write_expiring(bucket, "order.x", b"3", last=revision, ttl_s=60)
    with pytest.raises(KeyWrongLastSequenceError):
        await write_expiring(bucket, "order.x", b"3", last=None, ttl_s=60)


async def test_a_ttl_under_a_second_is_refused(bucket: KeyValue) -> None:
    with pytest.raises(ValueError, match="at least 1 s"):
        await write_expiring(bucket, "order.y", b"1", last=None, ttl_s=0.5)
