"""An index of members in a KV bucket, listed without reading values."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from waybill_runtime.bus.key_index import KeyIndex
from waybill_runtime.bus.provisioning import ensure_bucket
from waybill_runtime.testing.waiting import eventually


@pytest.fixture
async def bucket(nc: NatsClient, nats_prefix: str) -> KeyValue:
    return await ensure_bucket(nc.jetstream(), f"{nats_prefix}_tracking")


async def test_members_are_listed_once_each_and_removed_ones_not_at_all(bucket: KeyValue) -> None:
    index = KeyIndex(bucket, "open.")
    assert await index.members() == []
    for name in ("carrier-a.TN1", "carrier-b.TN2", "carrier-a.TN1", "carrier-a.TN3"):
        await index.add(name)
    await index.remove("carrier-b.TN2")
    await index.remove("never-a-member")
    assert sorted(await index.members()) == ["carrier-a.TN1", "carrier-a.TN3"]
    await index.add("carrier-b.TN2")  # back after removal
    assert sorted(await index.members()) == ["carrier-a.TN1", "carrier-a.TN3", "carrier-b.TN2"]


async def test_records_and_other_indexes_in_the_bucket_are_not_members(bucket: KeyValue) -> None:
    await bucket.put("tracking.carrier-a.TN1", b'{"big": "record"}')
    await KeyIndex(bucket, "other.").add("x")
    index = KeyIndex(bucket, "open.")
    await index.add("carrier-a.TN1")
    assert await index.members() == ["carrier-a.TN1"]


async def test_a_removed_members_marker_expires_and_leaves_nothing_in_the_bucket(
    bucket: KeyValue,
) -> None:
    # Every order or shipment ever finished would otherwise leave its marker for good.
    index = KeyIndex(bucket, "open.", marker_ttl_s=1)
    await index.add("carrier-a.TN1")
    await index.add("carrier-a.TN2")
    await index.remove("carrier-a.TN1")

    async def messages_in_the_bucket() -> int:
        return (await bucket.status()).stream_info.state.messages

    assert await messages_in_the_bucket() == 2  # the member left, the marker
    await eventually(messages_in_the_bucket, until=lambda count: count == 1, what="marker gone")
    assert await index.members() == ["carrier-a.TN2"]
    await index.add("carrier-a.TN1")  # a key without any message is added as new
    assert sorted(await index.members()) == ["carrier-a.TN1", "carrier-a.TN2"]


def test_a_marker_ttl_under_a_second_is_refused(bucket: KeyValue) -> None:
    with pytest.raises(ValueError, match="at least 1 s"):
        KeyIndex(bucket, "open.", marker_ttl_s=0.5)


def test_a_prefix_without_its_dot_is_refused(bucket: KeyValue) -> None:
    with pytest.raises(ValueError, match="ends with a dot"):
        KeyIndex(bucket, "open")
