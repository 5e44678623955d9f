"""The bench's traffic count files each message under what it is for, against a real server."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NatsClient

from tests.bench.traffic import Traffic, label_of
from waybill_runtime.bus.key_index import KeyIndex


def test_each_kind_of_message_gets_the_label_naming_its_purpose() -> None:
    assert label_of("$JS.ACK.EVENTS.notifier.1.2.3.4.5.6") == "ack notifier"
    assert label_of("$JS.API.CONSUMER.MSG.NEXT.EVENTS.auditor") == "pull auditor"
    assert (
        label_of("$KV.idempotency.notifier.step.n-1.email.a0")
        == "kv write idempotency notifier.step"
    )
    assert (
        label_of("$JS.API.DIRECT.GET.KV_tracking.$KV.tracking.notifier.tracking.SHP-1")
        == "kv read tracking notifier.tracking"
    )
    assert label_of("$JS.API.STREAM.MSG.GET.KV_workflow") == "kv read workflow"
    # Ids never make a label of their own: one label per kind of key.
    assert label_of("$KV.idempotency.label_3ashp-5") == "kv write idempotency label"
    assert (
        label_of("$KV.idempotency.notifier_2estep_2en-1_2eemail_2ea0")
        == "kv write idempotency notifier"
    )
    assert label_of("$KV.workflow.order.WH_2fOUT_2f00042") == "kv write workflow order"
    assert label_of("_INBOX.abc.def") == "reply"
    assert label_of("$JS.API.STREAM.INFO.EVENTS") == "js api STREAM.INFO"
    assert label_of("waybill.evt.shipment.booked.v1") == "publish waybill.evt.shipment.booked.v1"
    # A stored message handed to a consumer keeps its subject: its ack reply tells it apart.
    ack = "$JS.ACK.WAYBILL_EVENTS.auditor-events.1.7.7.1700000000000000000.0"
    assert (
        label_of("waybill.evt.shipment.booked.v1", ack) == "deliver waybill.evt.shipment.booked.v1"
    )
    assert label_of("$KV.workflow.open.WH_2fOUT_2f00042", ack) == "kv deliver workflow open"
    assert label_of("$KV.workflow.open.WH_2fOUT_2f7", "_INBOX.abc.1") == "kv write workflow open"


async def test_every_message_through_the_server_is_counted_per_order(nc: NatsClient) -> None:
    traffic = Traffic()
    await traffic.start(nc)
    for _ in range(6):
        await nc.publish("$KV.idempotency.notifier.step.n1", b"x")
    await nc.publish("waybill.evt.order.released.v1", b"x")
    await nc.flush()
    for _ in range(100):
        if sum(traffic.counts.values()) >= 7:
            break
        await asyncio.sleep(0.05)
    await traffic.stop()
    assert traffic.per_order(2) == [
        ("kv write idempotency notifier.step", 3.0),
        ("publish waybill.evt.order.released.v1", 0.5),
    ]


async def test_a_listing_of_keys_is_counted_as_deliveries_not_writes(
    nc: NatsClient, nats_prefix: str
) -> None:
    bucket = f"{nats_prefix}_listing"
    kv = await nc.jetstream().create_key_value(bucket=bucket, history=1)
    index = KeyIndex(kv, "open.")
    for name in ("o1", "o2", "o3"):
        await index.add(name)
    traffic = Traffic()
    await traffic.start(nc)
    assert sorted(await index.members()) == ["o1", "o2", "o3"]
    await index.add("o4")
    delivered, written = f"kv deliver {bucket} open", f"kv write {bucket} open"
    # Counted in arrival order: the write came last.
    for _ in range(100):
        if traffic.counts[written] >= 1:
            break
        await asyncio.sleep(0.05)
    await traffic.stop()
    assert (traffic.counts[delivered], traffic.counts[written]) == (3, 1)
