"""The workflow store on a real nats-server: compare-and-set under races, messages sent
only after their state is stored, never twice, never lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import ConnectionClosedError
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tests.services.orchestrator.bus import commands, count_by_type, unreachable_publisher
from tests.services.orchestrator.journey import (
    POLICY,
    REF,
    accepted,
    booked,
    cancelled,
    delivery_recorded,
    happy_path,
    milestone,
    observe,
    packed,
    picked,
    released,
    shipment_recorded,
    voided,
    warehouse_cancelled,
)
from waybill_contracts import Message, SubjectMap
from waybill_contracts.events import Event
from waybill_contracts.model import MilestoneCode
from waybill_orchestrator import outbox
from waybill_orchestrator.changes import NotYet
from waybill_orchestrator.stages import FINAL, Stage
from waybill_orchestrator.state import PendingMessage, encode_state
from waybill_orchestrator.workflow import (
    KEY_PREFIX,
    StateKeptChanging,
    UnreadableState,
    WorkflowStore,
    key_for,
)
from waybill_runtime.bus.provisioning import StreamPolicy, ensure_bucket, ensure_streams
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.outcomes import Outcome, classify
from waybill_runtime.testing.waiting import eventually


@dataclass
class Bus:
    subjects: SubjectMap
    kv: KeyValue
    publisher: Publisher

    def store(self, kv: Any = None, publisher: Any = None, **options: Any) -> WorkflowStore:
        return WorkflowStore(kv or self.kv, publisher or self.publisher, POLICY, **options)


@pytest.fixture
async def bus(nc: NatsClient, nats_prefix: str) -> AsyncIterator[Bus]:
    subjects = SubjectMap(nats_prefix)
    js = nc.jetstream()
    await ensure_streams(js, subjects, StreamPolicy())
    kv = await ensure_bucket(js, subjects.kv_bucket("workflow"))
    yield Bus(subjects, kv, Publisher(nc, subjects, service="orchestrator"))


async def apply_all(store: WorkflowStore, *events: Event) -> None:
    for event in events:
        await store.apply(REF, observe(event))


class RacingKV:
    """Makes the next two readers both read before either may write: a guaranteed race
    (``racing=False``: no race made, lost compare-and-sets counted all the same)."""

    def __init__(self, kv: Any, *, racing: bool = True) -> None:
        self._kv = kv
        self._barrier = asyncio.Barrier(2)
        self._racing = racing
        self.conflicts = 0

    async def get(self, key: str) -> Any:
        entry = await self._kv.get(key)
        if self._racing:
            await self._barrier.wait()
            self._racing = False
        return entry

    async def update(self, key: str, value: bytes, last: int) -> int:
        try:
            written: int = await self._kv.update(key, value, last=last)
        except KeyWrongLastSequenceError:
            self.conflicts += 1
            raise
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)


class AlwaysOvertakenKV:
    """Someone else always wrote the order's state first (the open-orders index is left be)."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self.writes = 0

    async def create(self, key: str, value: bytes) -> int:
        if not key.startswith(KEY_PREFIX):
            return await self._kv.create(key, value)
        self.writes += 1
        raise KeyWrongLastSequenceError()

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        self.writes += 1
        raise KeyWrongLastSequenceError()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)


async def test_apply_stores_the_state_then_sends_its_command(nc: NatsClient, bus: Bus) -> None:
    store = bus.store()
    decision = await store.apply(REF, observe(released()))
    state, revision = await store.read(REF)
    assert state is not None and revision is not None
    assert state.stage == Stage.IN_WAREHOUSE == decision.state.stage  # type: ignore[union-attr]
    [pending] = state.outbox  # sent; taken out by the order's next write (or the sweep)
    [sent] = await commands(nc, bus.subjects)
    assert sent.context.id == pending.message_id
    assert type(sent.message).__name__ == "ReleaseToWarehouse"
    assert sent.context.source == "waybill/orchestrator"
    assert sent.context.correlation_id == REF


async def test_redelivered_event_sends_nothing_again(nc: NatsClient, bus: Bus) -> None:
    store = bus.store()
    happening = observe(released())
    await store.apply(REF, happening)
    await store.apply(REF, happening)
    await store.apply(REF, observe(released()))  # the same fact observed again, new id
    assert count_by_type(await commands(nc, bus.subjects)) == {"ReleaseToWarehouse": 1}


async def test_racing_writers_each_decide_on_the_latest_state(nc: NatsClient, bus: Bus) -> None:
    store = bus.store()
    await apply_all(store, released(), packed(), booked(), cancelled())
    racing = RacingKV(bus.kv)
    first, second = bus.store(kv=racing), bus.store(kv=racing)
    # Each confirmation alone leaves the cancellation half done; only the one
    # decided on top of the other's write may complete it.
    await asyncio.gather(
        first.apply(REF, observe(warehouse_cancelled())), second.apply(REF, observe(voided()))
    )
    assert racing.conflicts >= 1
    state, _ = await store.read(REF)
    assert state is not None and state.stage == Stage.CANCELLED
    assert state.cancellation is not None
    assert not state.cancellation.awaiting_warehouse and not state.cancellation.awaiting_void
    counts = count_by_type(await commands(nc, bus.subjects))
    assert counts["PostNoteInOdoo"] == 1
    assert counts["VoidShipment"] == counts["CancelWarehouseOrder"] == 1


async def test_two_releases_racing_create_the_order_once(nc: NatsClient, bus: Bus) -> None:
    stores = [bus.store() for _ in range(4)]
    await asyncio.gather(*(s.apply(REF, observe(released())) for s in stores))
    assert count_by_type(await commands(nc, bus.subjects)) == {"ReleaseToWarehouse": 1}
    state, _ = await stores[0].read(REF)
    assert state is not None and len(state.timeline) == 1


async def test_a_state_overtaken_on_every_attempt_is_retried_later(bus: Bus) -> None:
    overtaken = AlwaysOvertakenKV(bus.kv)
    with pytest.raises(StateKeptChanging) as raised:
        await bus.store(kv=overtaken, write_attempts=3).apply(REF, observe(released()))
    assert overtaken.writes == 3
    assert classify(raised.value).outcome is Outcome.RETRY


async def test_messages_unsent_when_publishing_failed_are_sent_by_the_next_reader(
    nats_url: str, nc: NatsClient, bus: Bus
) -> None:
    down = await unreachable_publisher(nats_url, bus.subjects)
    with pytest.raises(ConnectionClosedError):
        await bus.store(publisher=down).apply(REF, observe(released()))
    state, _ = await bus.store().read(REF)
    assert state is not None and len(state.outbox) == 1  # decided, stored, not yet sent
    assert await commands(nc, bus.subjects) == []
    # The redelivery finds the event already applied, and sends what is pending.
    redelivered = bus.store()
    await redelivered.apply(REF, observe(released()))
    await redelivered.apply(REF, observe(released()))
    await bus.store().apply(REF, observe(released()))  # another instance: the same id again
    assert count_by_type(await commands(nc, bus.subjects)) == {"ReleaseToWarehouse": 1}
    # Sent, and taken out of the outbox by the order's next write.
    await redelivered.apply(REF, observe(accepted()))
    state, _ = await bus.store().read(REF)
    assert state is not None and state.warehouse_order_id is not None  # accepted applied
    assert [entry.ce_type for entry in state.outbox if "release" in entry.ce_type] == []


async def test_sending_a_pending_message_twice_stores_it_once(
    nc: NatsClient, nats_url: str, bus: Bus
) -> None:
    down = await unreachable_publisher(nats_url, bus.subjects)
    with pytest.raises(ConnectionClosedError):
        await bus.store(publisher=down).apply(REF, observe(released()))
    store = bus.store()
    state, revision = await store.read(REF)
    assert state is not None and revision is not None
    await store.send_pending(key_for(REF), state, revision)
    await store.send_pending(key_for(REF), state, revision)  # e.g. another instance, same state
    assert count_by_type(await commands(nc, bus.subjects)) == {"ReleaseToWarehouse": 1}


async def test_event_for_an_unknown_order_is_not_yet_and_stores_nothing(bus: Bus) -> None:
    store = bus.store()
    with pytest.raises(NotYet):
        await store.apply(REF, observe(packed()))
    assert await store.read(REF) == (None, None)


async def test_corrupt_state_is_reported_not_overwritten(bus: Bus) -> None:
    await bus.kv.put(key_for(REF), b'{"stage": 42')
    with pytest.raises(UnreadableState, match="unreadable") as raised:
        await bus.store().apply(REF, observe(packed()))
    assert classify(raised.value).outcome is Outcome.DEAD_LETTER
    assert (await bus.kv.get(key_for(REF))).value == b'{"stage": 42'


async def test_state_of_another_order_under_the_key_is_refused(bus: Bus) -> None:
    store = bus.store()
    await store.apply("WH/OUT/7", observe(msgspec.structs.replace(released("WH/OUT/7"))))
    other, _ = await store.read("WH/OUT/7")
    assert other is not None
    await bus.kv.put(key_for(REF), encode_state(other))
    with pytest.raises(UnreadableState, match="holds order WH/OUT/7"):
        await store.read(REF)


async def test_keys_list_every_order_and_nothing_when_empty(bus: Bus) -> None:
    store = bus.store()
    assert await store.keys() == []
    await store.apply(REF, observe(released()))
    await store.apply("WH/OUT/7", observe(released("WH/OUT/7")))
    assert sorted(await store.keys()) == sorted([key_for(REF), key_for("WH/OUT/7")])


class CountingReadsKV:
    """The real bucket, counting the reads of order states."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self.reads = 0

    async def get(self, key: str) -> Any:
        if key.startswith(KEY_PREFIX):
            self.reads += 1
        return await self._kv.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)


async def test_the_next_event_is_decided_on_the_state_this_instance_wrote(bus: Bus) -> None:
    counting = CountingReadsKV(bus.kv)
    store = bus.store(kv=counting)
    await store.apply(REF, observe(released()))
    counting.reads = 0
    await apply_all(store, accepted(), picked(), packed())
    assert counting.reads == 0
    state, _ = await bus.store().read(REF)
    assert state is not None and state.stage == Stage.BOOKING


async def test_a_new_orders_release_reads_nothing(bus: Bus) -> None:
    counting = CountingReadsKV(bus.kv)
    store = bus.store(kv=counting)
    await store.apply(REF, observe(released()))
    assert counting.reads == 0  # 1 before: the key, not there yet
    state, _ = await bus.store().read(REF)
    assert state is not None and state.stage == Stage.IN_WAREHOUSE


async def test_a_release_an_instance_does_not_know_is_caught_by_the_create(
    nc: NatsClient, bus: Bus
) -> None:
    await bus.store().apply(REF, observe(released()))
    counting = CountingReadsKV(bus.kv)
    other = bus.store(kv=counting)  # another instance, or this one restarted
    decision = await other.apply(REF, observe(released()))
    # Taken as new, the create finds the order; the release is decided on what is stored.
    assert not decision.changed and counting.reads == 1
    state, _ = await bus.store().read(REF)
    assert state is not None and len(state.timeline) == 1
    assert count_by_type(await commands(nc, bus.subjects)) == {"ReleaseToWarehouse": 1}


async def test_a_state_another_instance_wrote_meanwhile_is_caught_by_the_write(
    nc: NatsClient, bus: Bus
) -> None:
    first, second = bus.store(), bus.store()
    await apply_all(first, released(), packed())  # first remembers "booking"
    await second.apply(REF, observe(cancelled()))  # second moves the order on
    # Decided on first's remembered state, booking the label would be new; the
    # write finds the state changed, and the event is decided on the stored one.
    await first.apply(REF, observe(booked()))
    state, _ = await bus.store().read(REF)
    assert state is not None and state.cancellation is not None
    counts = count_by_type(await commands(nc, bus.subjects))
    assert counts["VoidShipment"] == 1  # the label booked after the cancel is voided


async def test_a_decision_that_changes_nothing_is_taken_on_the_stored_state(bus: Bus) -> None:
    counting = CountingReadsKV(bus.kv)
    store = bus.store(kv=counting)
    await store.apply(REF, observe(released()))
    counting.reads = 0
    await store.apply(REF, observe(released()))  # a repeat: nothing to write, so read
    assert counting.reads == 1


async def test_an_orders_events_read_nothing_its_repeated_scans_neither(bus: Bus) -> None:
    counting = CountingReadsKV(bus.kv)
    store = bus.store(kv=counting)
    await apply_all(store, released(), accepted(), picked(), packed())
    # label_created before its booking (settled), repeated and late scans (known).
    label = milestone(MilestoneCode.LABEL_CREATED, 40)
    in_transit = milestone(MilestoneCode.IN_TRANSIT, 50)
    late = milestone(MilestoneCode.OUT_FOR_DELIVERY, 55)
    delivered = milestone(MilestoneCode.DELIVERED, 58)
    await apply_all(store, label, booked(), shipment_recorded(), in_transit, in_transit)
    await apply_all(store, delivered, late, delivered, delivery_recorded())
    # 0 reads; 4 before (the label, the two repeats and the late scan each read
    # the order; before the label was settled, it read it again on its retry).
    assert counting.reads == 0
    state, _ = await bus.store().read(REF)
    assert state is not None and state.stage in FINAL and state.last_milestone is not None
    assert state.last_milestone.code == MilestoneCode.DELIVERED


async def test_a_scan_already_known_is_so_on_a_state_another_instance_moved_on(
    nc: NatsClient, bus: Bus
) -> None:
    first, second = bus.store(), bus.store()
    await apply_all(first, released(), packed(), booked(), shipment_recorded())
    await first.apply(REF, observe(milestone(MilestoneCode.IN_TRANSIT, 50)))
    # The other instance moves the order on: delivered, recording the delivery.
    await second.apply(REF, observe(milestone(MilestoneCode.DELIVERED, 58)))
    # Known on first's remembered state, the repeated scan is known on the stored one too.
    decision = await first.apply(REF, observe(milestone(MilestoneCode.IN_TRANSIT, 50)))
    assert not decision.changed
    state, _ = await bus.store().read(REF)
    assert state is not None and state.stage == Stage.RECORDING_DELIVERY
    assert state.last_milestone is not None
    assert state.last_milestone.code == MilestoneCode.DELIVERED
    assert count_by_type(await commands(nc, bus.subjects))["RecordDeliveryInOdoo"] == 1


async def test_events_of_one_order_at_once_are_applied_one_after_the_other(bus: Bus) -> None:
    counting = CountingReadsKV(bus.kv)
    racing = RacingKV(counting, racing=False)
    store = bus.store(kv=racing)
    await store.apply(REF, observe(released()))
    # The warehouse's facts arrive together: each is decided on the one before's state.
    await asyncio.gather(*(store.apply(REF, observe(e)) for e in (accepted(), picked(), packed())))
    # 0 lost compare-and-sets and 0 reads (before: 3 and 3, all three decided on "released").
    assert racing.conflicts == 0 and counting.reads == 0
    state, _ = await bus.store().read(REF)
    assert state is not None and state.stage == Stage.BOOKING
    assert [step.to_stage for step in state.timeline][1:] == [
        Stage.ACCEPTED,
        Stage.PICKED,
        Stage.BOOKING,
    ]


class CountingWritesKV:
    """The real bucket, counting the writes of order states."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self.writes = 0

    async def create(self, key: str, value: bytes) -> int:
        self.writes += key.startswith(KEY_PREFIX)
        return await self._kv.create(key, value)

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        self.writes += key.startswith(KEY_PREFIX)
        return await self._kv.update(key, value, last=last)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)


async def test_a_sent_outbox_is_cleared_by_the_orders_next_write_not_a_write_of_its_own(
    nc: NatsClient, bus: Bus
) -> None:
    counting = CountingWritesKV(bus.kv)
    store = bus.store(kv=counting)
    journey = happy_path()
    await apply_all(store, *journey)
    state, _ = await bus.store().read(REF)
    assert state is not None and state.stage in FINAL and state.outbox == ()  # finished: cleared
    # One write per transition: before, each transition that sent messages wrote
    # again to clear them (13 writes for these 9 events).
    assert counting.writes == len(journey)
    counts = count_by_type(await commands(nc, bus.subjects))
    assert all(count == 1 for count in counts.values()), counts


async def test_the_instance_that_decided_a_message_publishes_it_without_decoding_it(
    nc: NatsClient, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    message_of = outbox.message_of

    def counting_message_of(entry: PendingMessage) -> Message:
        decoded.append(entry.ce_type)
        return message_of(entry)

    monkeypatch.setattr(outbox, "message_of", counting_message_of)
    await apply_all(bus.store(), *happy_path())
    # The four commands went out as decided; before, each outbox body the instance had
    # just encoded was decoded again (and its records validated) to be published.
    sent = count_by_type(await commands(nc, bus.subjects))
    assert sum(sent.values()) == 4, sent
    assert decoded == []
    # An outbox read from the bucket (the sweep, another instance) is decoded.
    store = bus.store(outbox_grace_s=0)
    await store.apply("WH/OUT/SWEPT", observe(released("WH/OUT/SWEPT")))
    state, revision = await store.read("WH/OUT/SWEPT")
    assert state is not None and revision is not None
    await bus.store().send_pending(key_for("WH/OUT/SWEPT"), state, revision)
    assert len(decoded) == 1
    assert count_by_type(await commands(nc, bus.subjects), "WH/OUT/SWEPT") == {
        "ReleaseToWarehouse": 1
    }


async def test_an_outbox_left_past_its_grace_is_published_again_and_cleared_by_the_sweep(
    nc: NatsClient, bus: Bus
) -> None:
    store = bus.store(outbox_grace_s=0)
    await store.apply(REF, observe(released()))
    state, revision = await store.read(REF)
    assert state is not None and revision is not None and len(state.outbox) == 1
    assert store.outbox_overdue(state)
    await bus.store(outbox_grace_s=0).send_pending(key_for(REF), state, revision)
    state, _ = await store.read(REF)
    assert state is not None and state.outbox == ()
    # Published twice under one id: JetStream kept one.
    assert count_by_type(await commands(nc, bus.subjects)) == {"ReleaseToWarehouse": 1}
    assert not bus.store().outbox_overdue(state)


async def test_a_finished_order_expires_from_the_bucket_and_an_open_one_stays(bus: Bus) -> None:
    store = bus.store(finished_ttl_s=1)
    await apply_all(store, *happy_path())
    await store.apply("WH/OUT/OPEN", observe(released("WH/OUT/OPEN")))
    finished, _ = await bus.store().read(REF)
    assert finished is not None and finished.stage in FINAL

    async def expired() -> bool:
        return await bus.store().read(REF) == (None, None)

    assert await eventually(expired, what="the finished order expired")
    still_open, _ = await bus.store().read("WH/OUT/OPEN")
    assert still_open is not None
    assert await store.open_keys() == [key_for("WH/OUT/OPEN")]
