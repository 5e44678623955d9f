"""Customer contacts and tracking pages live in buckets whose entries expire; the ones a 1.0
notifier left in the workflow bucket are moved over when first needed."""

from __future__ import annotations

import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError

from tests.services.notifier.harness import (
    notifier_and_sinks,
    notifier_running,
    order_released,
    shipment_booked,
    shipment_id_of,
    sinks,
)
from waybill_contracts import KV_TTL_S, SubjectMap
from waybill_contracts.model import NotificationChannel
from waybill_notifier.order_book import CONTACT_FRESH_FOR_S, OrderBook, contact_of, key_token
from waybill_runtime.bus.provisioning import ensure_bucket
from waybill_runtime.testing.counting import CountingKV


def contact_key(ref: str) -> str:
    return f"notifier.customer.{key_token(ref)}"


async def test_contacts_and_tracking_pages_are_kept_in_expiring_buckets_not_in_workflow(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    ref = "WH/OUT/00900"
    subjects = SubjectMap(nats_prefix)
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        await rig.release(ref)
        await rig.publish(shipment_booked(ref, tracking_url="https://track.example/TN9"))
        await rig.wait_for_sent(1, NotificationChannel.EMAIL)
        await rig.settled()
    js = nc.jetstream()
    contacts = await js.key_value(subjects.kv_bucket("contacts"))
    tracking = await js.key_value(subjects.kv_bucket("tracking"))
    workflow = await js.key_value(subjects.kv_bucket("workflow"))
    stored = await contacts.get(contact_key(ref))
    assert stored.value is not None and b"marie@example.com" in stored.value
    page = await tracking.get(f"notifier.tracking.{key_token(shipment_id_of(ref))}")
    assert page.value is not None and b"https://track.example/TN9" in page.value
    with pytest.raises(KeyNotFoundError):
        await workflow.get(contact_key(ref))
    assert (await contacts.status()).ttl == pytest.approx(KV_TTL_S["contacts"])
    assert (await tracking.status()).ttl == pytest.approx(KV_TTL_S["tracking"])


async def test_a_contact_a_1_0_notifier_kept_in_workflow_is_moved_and_used(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    ref = "WH/OUT/00901"
    subjects = SubjectMap(nats_prefix)
    workflow = await ensure_bucket(nc.jetstream(), subjects.kv_bucket("workflow"))
    released_before = order_released(ref, email="early@example.com")
    await workflow.put(contact_key(ref), msgspec.json.encode(contact_of(released_before.order)))
    async with sinks(nc, nats_prefix) as rig, notifier_running(rig, nats_url, nats_prefix):
        # Only the booking comes now: the release was handled before the upgrade.
        await rig.publish(shipment_booked(ref))
        [sent] = await rig.wait_for_sent(1, NotificationChannel.EMAIL)
        await rig.settled()
    assert sent.recipient == "early@example.com"
    with pytest.raises(KeyNotFoundError):
        await workflow.get(contact_key(ref))
    contacts = await nc.jetstream().key_value(subjects.kv_bucket("contacts"))
    assert (await contacts.get(contact_key(ref))).value is not None


async def test_a_tracking_page_is_read_from_the_bucket_only_by_a_replica_that_did_not_write_it(
    nc: NatsClient, nats_prefix: str
) -> None:
    js = nc.jetstream()
    subjects = SubjectMap(nats_prefix)
    tracking = CountingKV(await ensure_bucket(js, subjects.kv_bucket("tracking")))
    contacts = await ensure_bucket(js, subjects.kv_bucket("contacts"))
    booked_here = OrderBook(contacts=contacts, tracking=tracking)  # type: ignore[arg-type]
    await booked_here.remember_tracking_page("SHP-1", "https://track.example/1")
    await booked_here.remember_tracking_page("SHP-1", "https://track.example/1")  # redelivered
    for _ in range(3):  # each milestone email
        assert await booked_here.tracking_page("SHP-1") == "https://track.example/1"
    assert (tracking.reads, tracking.writes) == (0, 1)
    elsewhere = OrderBook(contacts=contacts, tracking=tracking)  # type: ignore[arg-type]
    for _ in range(3):
        assert await elsewhere.tracking_page("SHP-1") == "https://track.example/1"
    assert tracking.reads == 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_orders_notifications_close_together_read_its_contact_once_or_not_at_all(
    nc: NatsClient, nats_prefix: str
) -> None:
    js = nc.jetstream()
    subjects = SubjectMap(nats_prefix)
    contacts = CountingKV(await ensure_bucket(js, subjects.kv_bucket("contacts")))
    tracking = await ensure_bucket(js, subjects.kv_bucket("tracking"))
    clock = Clock()
    released_here = OrderBook(contacts=contacts, tracking=tracking, clock=clock)  # type: ignore[arg-type]
    contact = contact_of(order_released("WH/OUT/00910").order)
    await released_here.remember(contact)
    for _ in range(3):  # the booking's and two milestones' notifications, a second apart
        clock.now += 1.0
        assert await released_here.contact("WH/OUT/00910") == contact
    assert contacts.reads == 0  # 3 before
    elsewhere = OrderBook(contacts=contacts, tracking=tracking, clock=clock)  # type: ignore[arg-type]
    for _ in range(3):
        assert await elsewhere.contact("WH/OUT/00910") == contact
    assert contacts.reads == 1  # 3 before


async def test_a_contact_changed_by_another_replica_is_seen_once_the_one_kept_is_no_longer_fresh(
    nc: NatsClient, nats_prefix: str
) -> None:
    js = nc.jetstream()
    subjects = SubjectMap(nats_prefix)
    contacts = CountingKV(await ensure_bucket(js, subjects.kv_bucket("contacts")))
    tracking = await ensure_bucket(js, subjects.kv_bucket("tracking"))
    clock = Clock()
    here = OrderBook(contacts=contacts, tracking=tracking, clock=clock)  # type: ignore[arg-type]
    there = OrderBook(contacts=contacts, tracking=tracking, clock=clock)  # type: ignore[arg-type]
    # Not released yet: nothing is kept, so the release is used as soon as it is written.
    assert await here.contact("WH/OUT/00911") is None
    first = contact_of(order_released("WH/OUT/00911", email="first@example.com").order)
    await there.remember(first)
    assert await here.contact("WH/OUT/00911") == first
    assert contacts.reads == 2
    # Released again on the other replica: seen here once the contact kept is stale.
    second = contact_of(order_released("WH/OUT/00911", email="second@example.com").order)
    await there.remember(second)
    assert await there.contact("WH/OUT/00911") == second  # its own release: no read
    clock.now += CONTACT_FRESH_FOR_S - 0.5
    assert await here.contact("WH/OUT/00911") == first
    clock.now += 0.5
    assert await here.contact("WH/OUT/00911") == second
    assert contacts.reads == 3
