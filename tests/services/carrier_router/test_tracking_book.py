"""The tracking book on a real key-value bucket: registration, compare-and-set, re-announcing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from waybill_carrier_router.carriers import TrackingReport
from waybill_carrier_router.kv_records import KvRecords, kv_token
from waybill_carrier_router.reconciliation import MISSING_FOR_S, TrackingReconciler
from waybill_carrier_router.tracking_book import RECALL_S, TrackedShipment, TrackingBook
from waybill_contracts.model import Milestone, MilestoneCode
from waybill_runtime.testing.counting import CountingKV

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
LABEL = TrackedShipment(
    shipment_id="shp-1", order_ref="WH/OUT/1", carrier="carrier-b", tracking_number="TN1"
)


def report(*scans: tuple[MilestoneCode, int]) -> TrackingReport:
    return TrackingReport(
        tracking_number="TN1",
        events=tuple(
            Milestone(code=code, raw_status=code.value, occurred_at=T0 + timedelta(minutes=m))
            for code, m in scans
        ),
    )


class Announcer:
    """Records announcements; fails the next ``failures`` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.announced: list[MilestoneCode] = []

    async def __call__(self, tracked: TrackedShipment, milestone: Milestone) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("NATS is away")
        self.announced.append(milestone.code)


@pytest.fixture
async def kv(nc: NatsClient, nats_prefix: str) -> AsyncIterator[KeyValue]:
    js = nc.jetstream()
    bucket = await js.create_key_value(bucket=f"{nats_prefix}_tracking")
    yield bucket
    await js.delete_key_value(f"{nats_prefix}_tracking")


@pytest.fixture
async def legacy(nc: NatsClient, nats_prefix: str) -> AsyncIterator[KeyValue]:
    """The bucket 1.0 kept tracking progress in."""
    js = nc.jetstream()
    bucket = await js.create_key_value(bucket=f"{nats_prefix}_watermarks")
    yield bucket
    await js.delete_key_value(f"{nats_prefix}_watermarks")


async def test_a_label_registered_before_the_upgrade_is_moved_and_tracked_on(
    kv: KeyValue, legacy: KeyValue
) -> None:
    await TrackingBook(legacy).register(LABEL)  # as the 1.0 router left it
    book = TrackingBook(kv, legacy=legacy)
    announce = Announcer()
    outcome = await book.record("carrier-b", report((MilestoneCode.IN_TRANSIT, 1)), announce)
    assert outcome.known and announce.announced == [MilestoneCode.IN_TRANSIT]
    assert await TrackingBook(legacy).find("carrier-b", "TN1") is None  # moved, not copied
    moved = await TrackingBook(kv).find("carrier-b", "TN1")
    assert moved is not None and moved.shipment_id == LABEL.shipment_id
    assert moved.progress is not None
    # Open, so in the open index the tracking reconciliation visits (1.0 kept none).
    assert len(await book.open_keys()) == 1


async def test_second_registration_keeps_the_first(kv: KeyValue) -> None:
    book = TrackingBook(kv)
    await book.register(LABEL)
    await book.register(msgspec.structs.replace(LABEL, order_ref="WH/OUT/other"))
    assert await book.find("carrier-b", "TN1") == LABEL
    assert await book.find("carrier-a", "TN1") is None  # tracking numbers are per carrier


async def test_report_for_an_unregistered_label_is_unknown(kv: KeyValue) -> None:
    announce = Announcer()
    outcome = await TrackingBook(kv).record(
        "carrier-b", report((MilestoneCode.IN_TRANSIT, 1)), announce
    )
    assert (outcome.known, outcome.announced, announce.announced) == (False, (), [])


async def test_milestone_whose_announcement_failed_is_announced_with_the_next_report(
    kv: KeyValue,
) -> None:
    book = TrackingBook(kv)
    await book.register(LABEL)
    failing = Announcer(failures=1)
    with pytest.raises(ConnectionError):
        await book.record("carrier-b", report((MilestoneCode.IN_TRANSIT, 1)), failing)
    stored = await book.find("carrier-b", "TN1")
    assert stored == LABEL  # announced first, stored after: the record did not move
    announce = Announcer()
    # The carrier retries the same webhook: the milestone goes out now, and is stored.
    outcome = await book.record("carrier-b", report((MilestoneCode.IN_TRANSIT, 1)), announce)
    assert [m.code for m in outcome.announced] == [MilestoneCode.IN_TRANSIT]
    assert announce.announced == [MilestoneCode.IN_TRANSIT]
    stored = await book.find("carrier-b", "TN1")
    assert stored is not None and stored.progress is not None and stored.announced is True


async def test_a_milestone_stored_unannounced_by_an_older_router_is_announced_with_the_next_report(
    kv: KeyValue,
) -> None:
    book = TrackingBook(kv)
    await book.register(LABEL)
    await book.record("carrier-b", report((MilestoneCode.IN_TRANSIT, 1)), Announcer())
    await _as_an_older_router_left_it(kv)
    announce = Announcer()
    outcome = await book.record("carrier-b", report((MilestoneCode.IN_TRANSIT, 1)), announce)
    assert outcome.announced == ()
    assert announce.announced == [MilestoneCode.IN_TRANSIT]
    stored = await book.find("carrier-b", "TN1")
    assert stored is not None and stored.announced is True


async def _as_an_older_router_left_it(kv: KeyValue) -> None:
    """The record's milestone stored, its announcement lost (routers before 2026-12-07)."""
    records = KvRecords(kv, TrackedShipment, prefix="tracking")
    key = records.key("carrier-b", "TN1")
    found = await records.get(key)
    assert found is not None
    await records.put(key, msgspec.structs.replace(found[0], announced=False), revision=found[1])


async def test_report_scans_are_applied_oldest_first(kv: KeyValue) -> None:
    book = TrackingBook(kv)
    await book.register(LABEL)
    announce = Announcer()
    outcome = await book.record(
        "carrier-b",
        report(
            (MilestoneCode.DELIVERED, 9),
            (MilestoneCode.LABEL_CREATED, 1),
            (MilestoneCode.IN_TRANSIT, 5),
        ),
        announce,
    )
    walk = [MilestoneCode.LABEL_CREATED, MilestoneCode.IN_TRANSIT, MilestoneCode.DELIVERED]
    assert [m.code for m in outcome.announced] == walk
    assert announce.announced == walk


async def test_concurrent_writers_of_one_record_both_count(kv: KeyValue) -> None:
    records = KvRecords(kv, int, prefix="counter")
    key = records.key("WH/OUT/0042")

    async def bump() -> None:
        await records.change(key, lambda n: (n or 0) + 1)

    await asyncio.gather(*(bump() for _ in range(5)))
    found = await records.get(key)
    assert found is not None and found[0] == 5


def test_keys_stay_readable_when_they_can() -> None:
    assert kv_token("EZ1000000001") == "EZ1000000001"
    assert kv_token("WH/OUT/0042").startswith("h")
    assert kv_token("WH/OUT/0042") == kv_token("WH/OUT/0042")
    assert kv_token("a.b") != kv_token("a_b")


async def test_a_report_repeating_earlier_scans_costs_one_read(kv: KeyValue) -> None:
    await TrackingBook(kv).register(LABEL)
    counting = CountingKV(kv)
    book = TrackingBook(counting, recall_s=0)  # type: ignore[arg-type]  # as another replica
    announce = Announcer()
    scans = [(MilestoneCode.LABEL_CREATED, 1), (MilestoneCode.IN_TRANSIT, 2)]
    await book.record("carrier-b", report(*scans), announce)
    counting.reads = counting.writes = 0
    # The carrier's next report holds every scan so far and one new one.
    scans.append((MilestoneCode.OUT_FOR_DELIVERY, 3))
    await book.record("carrier-b", report(*scans), announce)
    assert counting.reads == 1
    assert counting.writes == 1  # the new milestone, announced (two before: then "announced")
    assert announce.announced == [
        MilestoneCode.LABEL_CREATED,
        MilestoneCode.IN_TRANSIT,
        MilestoneCode.OUT_FOR_DELIVERY,
    ]


async def test_a_label_s_reports_moments_apart_read_nothing_on_the_replica_that_booked_it(
    kv: KeyValue,
) -> None:
    counting = CountingKV(kv)
    book = TrackingBook(counting)  # type: ignore[arg-type]
    await book.register(LABEL)
    counting.reads = counting.writes = 0
    announce = Announcer()
    walk = [
        (MilestoneCode.LABEL_CREATED, 1),
        (MilestoneCode.IN_TRANSIT, 2),
        (MilestoneCode.OUT_FOR_DELIVERY, 3),
        (MilestoneCode.DELIVERED, 4),
    ]
    for seen in range(1, len(walk) + 1):  # each report repeats the scans before it
        await book.record("carrier-b", report(*walk[:seen]), announce)
    assert announce.announced == [code for code, _ in walk]
    # Four reports: 0 reads (4 before: each read what the report before it wrote) and a
    # write per milestone.
    assert (counting.reads, counting.writes) == (0, 4)
    stored = await TrackingBook(kv).find("carrier-b", "TN1")
    assert stored is not None and stored.finished and stored.announced


async def test_a_recalled_record_is_read_again_once_it_is_older_than_the_recall(
    kv: KeyValue,
) -> None:
    now = [0.0]
    counting = CountingKV(kv)
    book = TrackingBook(counting, monotonic=lambda: now[0])  # type: ignore[arg-type]
    await book.register(LABEL)
    now[0] = RECALL_S + 1
    counting.reads = 0
    await book.record("carrier-b", report((MilestoneCode.IN_TRANSIT, 1)), Announcer())
    assert counting.reads == 1


async def test_a_report_that_moves_nothing_on_the_recalled_record_is_decided_on_a_fresh_read(
    kv: KeyValue,
) -> None:
    book = TrackingBook(kv)
    other = TrackingBook(kv)  # another replica
    await book.register(LABEL)
    await book.record("carrier-b", report((MilestoneCode.IN_TRANSIT, 1)), Announcer())
    # Meanwhile the other replica takes an exception scan in.
    await other.record(
        "carrier-b",
        report((MilestoneCode.IN_TRANSIT, 1), (MilestoneCode.EXCEPTION, 2)),
        Announcer(),
    )
    # In transit again: nothing new on the record this replica recalls (in transit at 1),
    # a move on the stored one (exception at 2).
    announce = Announcer()
    outcome = await book.record("carrier-b", report((MilestoneCode.IN_TRANSIT, 3)), announce)
    assert announce.announced == [MilestoneCode.IN_TRANSIT]
    assert [m.code for m in outcome.announced] == [MilestoneCode.IN_TRANSIT]
    stored = await TrackingBook(kv).find("carrier-b", "TN1")
    assert stored is not None and stored.progress is not None
    assert stored.progress.milestone.occurred_at == T0 + timedelta(minutes=3)


async def test_a_move_decided_on_a_record_another_replica_moved_on_is_decided_again(
    kv: KeyValue,
) -> None:
    book = TrackingBook(kv)
    other = TrackingBook(kv)
    await book.register(LABEL)
    await book.record("carrier-b", report((MilestoneCode.LABEL_CREATED, 1)), Announcer())
    await other.record(
        "carrier-b",
        report((MilestoneCode.LABEL_CREATED, 1), (MilestoneCode.IN_TRANSIT, 2)),
        Announcer(),
    )
    announce = Announcer()
    walk = [
        (MilestoneCode.LABEL_CREATED, 1),
        (MilestoneCode.IN_TRANSIT, 2),
        (MilestoneCode.OUT_FOR_DELIVERY, 3),
    ]
    outcome = await book.record("carrier-b", report(*walk), announce)
    # In transit is published again on the recalled record (the other replica's, under
    # the same message id moments ago: the stream drops it), then its write fails and
    # the rest is decided on the stored record.
    assert announce.announced == [MilestoneCode.IN_TRANSIT, MilestoneCode.OUT_FOR_DELIVERY]
    assert [m.code for m in outcome.announced] == [MilestoneCode.OUT_FOR_DELIVERY]
    stored = await TrackingBook(kv).find("carrier-b", "TN1")
    assert stored is not None and stored.progress is not None
    assert stored.progress.milestone.code is MilestoneCode.OUT_FOR_DELIVERY


async def test_a_report_for_a_label_being_booked_here_waits_for_its_registration(
    kv: KeyValue,
) -> None:
    counting = CountingKV(kv)
    book = TrackingBook(counting)  # type: ignore[arg-type]
    announce = Announcer()
    with book.expecting():
        early = asyncio.create_task(
            book.record("carrier-b", report((MilestoneCode.LABEL_CREATED, 1)), announce)
        )
        await asyncio.sleep(0.05)  # the webhook came before the purchase was stored
        assert not early.done()
        await book.register(LABEL)
        outcome = await early
    assert outcome.known and announce.announced == [MilestoneCode.LABEL_CREATED]
    # One read (and none of the legacy bucket) before the registration, none after it,
    # and no second webhook: answered "unknown", the carrier sent it again (2 reads more).
    assert counting.reads == 1


async def test_a_report_for_a_label_bought_here_reads_nothing_before_its_registration(
    kv: KeyValue, legacy: KeyValue
) -> None:
    counting, counting_legacy = CountingKV(kv), CountingKV(legacy)
    book = TrackingBook(counting, legacy=counting_legacy)  # type: ignore[arg-type]
    announce = Announcer()
    with book.expecting() as expecting:
        expecting.bought("carrier-b", "TN1")  # the carrier answered the purchase
        early = asyncio.create_task(
            book.record("carrier-b", report((MilestoneCode.LABEL_CREATED, 1)), announce)
        )
        await asyncio.sleep(0.05)  # its webhook came while the purchase is being stored
        assert not early.done()
        await book.register(LABEL)
        outcome = await early
    assert outcome.known and announce.announced == [MilestoneCode.LABEL_CREATED]
    # Decided on what the registration stored: 0 reads (before: 1 of the bucket and 1 of
    # the legacy bucket, both finding nothing).
    assert (counting.reads, counting_legacy.reads) == (0, 0)


async def test_a_report_that_beat_the_purchase_leaves_the_legacy_bucket_for_after_the_wait(
    kv: KeyValue, legacy: KeyValue
) -> None:
    counting, counting_legacy = CountingKV(kv), CountingKV(legacy)
    book = TrackingBook(counting, legacy=counting_legacy)  # type: ignore[arg-type]
    with book.expecting():
        early = asyncio.create_task(
            book.record("carrier-b", report((MilestoneCode.LABEL_CREATED, 1)), Announcer())
        )
        await asyncio.sleep(0.05)
        await book.register(LABEL)
        assert (await early).known
    # One read of the bucket, none of the legacy bucket (1 before).
    assert (counting.reads, counting_legacy.reads) == (1, 0)


async def test_a_label_bought_and_never_registered_is_read_once_its_booking_ends(
    kv: KeyValue, legacy: KeyValue
) -> None:
    await TrackingBook(legacy).register(LABEL)  # as the 1.0 router left it
    book = TrackingBook(kv, legacy=legacy, registration_wait_s=3600)
    with book.expecting() as expecting:
        expecting.bought("carrier-b", "TN1")
        early = asyncio.create_task(
            book.record("carrier-b", report((MilestoneCode.LABEL_CREATED, 1)), Announcer())
        )
        await asyncio.sleep(0.05)
        assert not early.done()
    # The booking failed after the purchase: no registration, and no hour-long wait.
    outcome = await asyncio.wait_for(early, 5)
    assert outcome.known  # found where it is, the legacy bucket included


async def test_a_label_unknown_while_booking_is_looked_up_in_the_legacy_bucket_after_the_wait(
    kv: KeyValue, legacy: KeyValue
) -> None:
    await TrackingBook(legacy).register(LABEL)  # as the 1.0 router left it
    book = TrackingBook(kv, legacy=legacy, registration_wait_s=0.05)
    with book.expecting():
        outcome = await book.record("carrier-b", report((MilestoneCode.IN_TRANSIT, 1)), Announcer())
    assert outcome.known
    assert await TrackingBook(legacy).find("carrier-b", "TN1") is None  # moved, not copied


async def test_a_report_for_a_label_nobody_registers_is_unknown_after_the_wait(
    kv: KeyValue,
) -> None:
    book = TrackingBook(kv, registration_wait_s=0.05)
    with book.expecting():
        outcome = await book.record("carrier-b", report((MilestoneCode.IN_TRANSIT, 1)), Announcer())
    assert outcome.known is False
    # Nothing booked here: unknown at once, no wait.
    outcome = await TrackingBook(kv, registration_wait_s=3600).record(
        "carrier-b", report((MilestoneCode.IN_TRANSIT, 1)), Announcer()
    )
    assert outcome.known is False


async def test_a_record_moved_on_by_another_replica_meanwhile_is_read_again(
    kv: KeyValue,
) -> None:
    await TrackingBook(kv).register(LABEL)
    book = TrackingBook(kv)
    other = TrackingBook(kv)

    async def meanwhile(tracked: TrackedShipment, milestone: Milestone) -> None:
        # While this replica announces, another one records a later scan.
        if milestone.code is MilestoneCode.LABEL_CREATED:
            await other.record("carrier-b", report((MilestoneCode.IN_TRANSIT, 2)), Announcer())

    await book.record(
        "carrier-b",
        report((MilestoneCode.LABEL_CREATED, 1), (MilestoneCode.IN_TRANSIT, 2)),
        meanwhile,
    )
    stored = await TrackingBook(kv).find("carrier-b", "TN1")
    assert stored is not None and stored.progress is not None
    assert stored.progress.milestone.code is MilestoneCode.IN_TRANSIT and stored.announced


class NoCarrier:
    """The fleet of a reconciliation that must not need to ask any carrier."""

    async def track(self, carrier: str, tracking_number: str, provider: str | None) -> None:
        raise AssertionError(f"asked {carrier} about {tracking_number}")


async def test_a_final_milestone_stored_but_never_announced_is_announced_before_closing(
    kv: KeyValue,
) -> None:
    book = TrackingBook(kv)
    await book.register(LABEL)
    walk = ((MilestoneCode.IN_TRANSIT, 1), (MilestoneCode.DELIVERED, 9))
    await book.record("carrier-b", report(walk[0]), Announcer())
    await book.record("carrier-b", report(*walk), Announcer())
    await book.register(LABEL)  # back in the index, as the older router would have left it
    # An older router stored the final milestone, then lost its publish.
    await _as_an_older_router_left_it(kv)
    stored = await book.find("carrier-b", "TN1")
    assert stored is not None and stored.finished and stored.announced is False
    assert len(await book.open_keys()) == 1
    announce = Announcer()
    reconciler = TrackingReconciler(
        book=book,
        fleet=NoCarrier(),  # type: ignore[arg-type]
        announce=announce,
        quiet_after_s=3600.0,
        batch=10,
    )
    done = await reconciler.run_once()
    assert announce.announced == [MilestoneCode.DELIVERED]
    assert (done.announced, done.closed) == (1, 1)
    assert await book.open_keys() == []
    # Announced once: a later round has nothing left to say.
    assert (await reconciler.run_once()).announced == 0
    assert announce.announced == [MilestoneCode.DELIVERED]


async def test_a_report_for_a_label_bought_here_waits_for_its_registration_once(
    kv: KeyValue,
) -> None:
    """A registration slower than the wait (its booking's ledger write slow, say): the
    report is answered after one wait, within the carrier's webhook timeout, not two."""
    book = TrackingBook(kv, registration_wait_s=0.05)
    waits: list[bool] = []
    registration = book._registration

    async def counted(key: str) -> bool:
        waits.append(await registration(key))
        return waits[-1]

    book._registration = counted  # type: ignore[method-assign]
    with book.expecting() as expecting:
        expecting.bought("carrier-b", "TN1")
        outcome = await book.record(
            "carrier-b", report((MilestoneCode.LABEL_CREATED, 1)), Announcer()
        )
    assert outcome.known is False  # sent again by the carrier, the label registered by then
    # Before: the wait for the label bought here, then, finding nothing, a second one as
    # for a label not known to be bought (twice REGISTRATION_WAIT_S, past the sandboxes'
    # two-second webhook timeout).
    assert waits == [False]


def quiet_reconciler(book: TrackingBook, now: list[float]) -> TrackingReconciler:
    """A reconciliation that asks no carrier (nothing is quiet for an hour), on ``now``."""
    return TrackingReconciler(
        book=book,
        fleet=NoCarrier(),  # type: ignore[arg-type]
        announce=Announcer(),
        quiet_after_s=3600.0,
        batch=10,
        monotonic=lambda: now[0],
    )


async def test_a_shipment_listed_while_its_record_is_being_written_stays_in_the_index(
    kv: KeyValue,
) -> None:
    """Registration writes the index entry, then the record: a round that lists and reads
    in between finds no record, and must not drop a shipment just registered."""
    book = TrackingBook(kv)
    await book.register(LABEL)
    [key] = await book.open_keys()
    await kv.delete(key)  # as between the index entry's write and the record's
    now = [1000.0]
    reconciler = quiet_reconciler(book, now)
    assert (await reconciler.run_once()).closed == 0
    await book.register(LABEL)  # the record's write lands
    now[0] += MISSING_FOR_S
    assert (await reconciler.run_once()).closed == 0
    assert await book.open_keys() == [key]


async def test_an_open_shipment_whose_record_stays_missing_leaves_the_index(
    kv: KeyValue,
) -> None:
    book = TrackingBook(kv)
    await book.register(LABEL)
    [key] = await book.open_keys()
    await kv.delete(key)  # expired, or never written after a crash
    now = [1000.0]
    reconciler = quiet_reconciler(book, now)
    assert (await reconciler.run_once()).closed == 0
    now[0] += MISSING_FOR_S - 1
    assert (await reconciler.run_once()).closed == 0
    now[0] += 1
    assert (await reconciler.run_once()).closed == 1
    assert await book.open_keys() == []


async def test_a_return_label_is_known_announces_nothing_and_is_not_reconciled(
    kv: KeyValue,
) -> None:
    book = TrackingBook(kv)
    await book.register(msgspec.structs.replace(LABEL, returning=True))
    assert await book.open_keys() == []
    announce = Announcer()
    outcome = await book.record("carrier-b", report((MilestoneCode.IN_TRANSIT, 1)), announce)
    assert outcome.known and outcome.returning and outcome.announced == ()
    # Decided on the bucket's copy too (another replica registered it).
    outcome = await TrackingBook(kv).record(
        "carrier-b", report((MilestoneCode.DELIVERED, 2)), announce
    )
    assert outcome.known and outcome.returning
    assert announce.announced == []
    stored = await book.find("carrier-b", "TN1")
    assert stored is not None and stored.progress is None  # nothing written for its scans
