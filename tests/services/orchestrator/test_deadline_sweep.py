"""The deadline sweep over the workflow bucket: re-send, escalate, relay unsent messages,
and keep going past an order it cannot read. The clock is the test's."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import ConnectionClosedError

from tests.services.orchestrator.bus import Clock, commands, count_by_type, unreachable_publisher
from tests.services.orchestrator.journey import (
    DEADLINE_S,
    POLICY,
    T0,
    happy_path,
    observe,
    packed,
    released,
)
from waybill_contracts import Lane, SubjectMap, new_context
from waybill_contracts.queries import OrderStatusRequest
from waybill_orchestrator import status
from waybill_orchestrator.changes import Observed
from waybill_orchestrator.deadlines import index_open_orders, sweep
from waybill_orchestrator.open_orders import index_key
from waybill_orchestrator.stages import Stage
from waybill_orchestrator.stuck_orders import OPEN_STAGES, StuckOrderGauges
from waybill_orchestrator.workflow import WorkflowStore, key_for
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.queries import QueryError


def make_store(nc: NatsClient, subjects: SubjectMap, kv: Any, clock: Clock) -> WorkflowStore:
    publisher = Publisher(nc, subjects, service="orchestrator")
    return WorkflowStore(kv, publisher, POLICY, clock=clock)


async def test_sweep_resends_at_the_first_deadline_and_escalates_at_the_second(
    nc: NatsClient, parts: tuple[SubjectMap, Any]
) -> None:
    subjects, kv = parts
    clock = Clock(T0)
    store = make_store(nc, subjects, kv, clock)
    await store.apply("WH/OUT/1", observe(released("WH/OUT/1")))
    await store.apply("WH/OUT/2", observe(released("WH/OUT/2")))
    await store.apply("WH/OUT/2", observe(packed("WH/OUT/2")))

    quiet = await sweep(store)
    assert (quiet.orders, quiet.late, quiet.resent) == (2, 0, 0)

    clock.advance(DEADLINE_S + 1)
    first = await sweep(store)
    assert (first.late, first.resent, first.escalated) == (2, 2, 0)
    counts = count_by_type(await commands(nc, subjects))
    assert (counts["ReleaseToWarehouse"], counts["BookShipment"]) == (3, 2)

    again = await sweep(store)  # same moment: the deadlines moved on
    assert again.late == 0

    clock.advance(DEADLINE_S + 1)
    second = await sweep(store)
    assert (second.late, second.escalated) == (2, 2)
    for ref in ("WH/OUT/1", "WH/OUT/2"):
        state, _ = await store.read(ref)
        assert state is not None and state.stage == Stage.HELD
    assert count_by_type(await commands(nc, subjects))["PostExceptionInOdoo"] == 2

    clock.advance(10 * DEADLINE_S)
    assert (await sweep(store)).late == 0  # held orders wait for a person, not a clock


async def test_sweep_sends_what_a_crashed_instance_left_in_an_outbox(
    nc: NatsClient, nats_url: str, parts: tuple[SubjectMap, Any]
) -> None:
    subjects, kv = parts
    clock = Clock(T0)
    down = await unreachable_publisher(nats_url, subjects)
    broken = WorkflowStore(kv, down, POLICY, clock=clock)
    with pytest.raises(ConnectionClosedError):
        await broken.apply("WH/OUT/1", observe(released("WH/OUT/1")))
    store = make_store(nc, subjects, kv, clock)
    # Within its grace the outbox is left for the order's next write (a handler
    # may be publishing it this very moment).
    assert (await sweep(store)).flushed == 0
    clock.advance(store.outbox_grace_s)
    report = await sweep(store)
    assert report.flushed == 1
    assert count_by_type(await commands(nc, subjects)) == {"ReleaseToWarehouse": 1}
    state, _ = await store.read("WH/OUT/1")
    assert state is not None and state.outbox == ()


async def test_sweep_goes_on_past_an_order_it_cannot_read(
    nc: NatsClient, parts: tuple[SubjectMap, Any]
) -> None:
    subjects, kv = parts
    clock = Clock(T0)
    store = make_store(nc, subjects, kv, clock)
    await store.apply("WH/OUT/0", observe(released("WH/OUT/0")))
    await kv.put(key_for("WH/OUT/0"), b"garbage")  # an open order's state, broken
    await store.apply("WH/OUT/1", observe(released("WH/OUT/1")))
    clock.advance(DEADLINE_S + 1)
    report = await sweep(store)
    assert (report.orders, report.failed, report.resent) == (2, 1, 1)


class CountingReads:
    """The workflow bucket, counting which keys' values are read (``get``)."""

    def __init__(self, kv: Any) -> None:
        self._kv = kv
        self.reads: list[str] = []

    async def get(self, key: str) -> Any:
        self.reads.append(key)
        return await self._kv.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)


async def test_the_sweep_reads_only_the_open_orders_states(
    nc: NatsClient, parts: tuple[SubjectMap, Any]
) -> None:
    subjects, kv = parts
    clock = Clock(T0)
    counted = CountingReads(kv)
    store = make_store(nc, subjects, counted, clock)
    finished = [f"WH/OUT/{n}" for n in range(1, 6)]
    for ref in finished:
        for event in happy_path(ref):
            await store.apply(ref, observe(event))
    await store.apply("WH/OUT/9", observe(released("WH/OUT/9")))
    assert {(await store.read(ref))[0].stage for ref in finished} == {Stage.DELIVERED}  # type: ignore[union-attr]

    counted.reads.clear()
    # Swept by an instance that wrote none of them (this one reads none it wrote lately).
    report = await sweep(make_store(nc, subjects, counted, clock))

    assert report.orders == 1
    assert counted.reads == [key_for("WH/OUT/9")]
    assert len(await store.keys()) == 6  # the finished orders are still stored


async def test_the_sweep_reads_no_order_this_instance_wrote_lately_unless_it_is_due(
    nc: NatsClient, parts: tuple[SubjectMap, Any]
) -> None:
    subjects, kv = parts
    clock = Clock(T0)
    counted: Any = CountingReads(kv)
    publisher = Publisher(nc, subjects, service="orchestrator")
    # A grace longer than the deadline, so a remembered order can be due.
    store = WorkflowStore(counted, publisher, POLICY, clock=clock, outbox_grace_s=4 * DEADLINE_S)
    refs = [f"WH/OUT/{n}" for n in range(3)]
    for ref in refs:
        await store.apply(ref, observe(released(ref)))
    counted.reads.clear()
    report = await sweep(store)
    assert report.orders == 3 and report.census.open == {"in_warehouse": 3}
    assert counted.reads == []  # 3 before: each open order's state
    clock.advance(DEADLINE_S + 1)
    assert (await sweep(store)).resent == 3  # due: read and re-sent as ever
    assert sorted(counted.reads) == sorted(key_for(ref) for ref in refs)
    # Another instance, which wrote none of them, reads them all.
    counted.reads.clear()
    other = WorkflowStore(counted, publisher, POLICY, clock=clock)
    assert (await sweep(other)).orders == 3 and len(counted.reads) == 3


async def test_orders_stored_before_the_index_are_indexed_once_then_swept(
    nc: NatsClient, parts: tuple[SubjectMap, Any]
) -> None:
    subjects, kv = parts
    clock = Clock(T0)
    store = make_store(nc, subjects, kv, clock)
    await store.apply("WH/OUT/1", observe(released("WH/OUT/1")))
    for event in happy_path("WH/OUT/2"):
        await store.apply("WH/OUT/2", observe(event))
    # As an orchestrator before the index left them: states, no index keys.
    await kv.purge(index_key(key_for("WH/OUT/1")))
    assert (await sweep(store)).orders == 0

    assert await index_open_orders(store) == 1  # the open one; the delivered one is not
    assert await index_open_orders(store) == 0
    clock.advance(DEADLINE_S + 1)
    report = await sweep(store)
    assert (report.orders, report.resent) == (1, 1)


async def test_a_finished_order_left_in_the_index_by_a_crash_is_dropped_from_it(
    nc: NatsClient, parts: tuple[SubjectMap, Any]
) -> None:
    subjects, kv = parts
    store = make_store(nc, subjects, kv, Clock(T0))
    for event in happy_path("WH/OUT/3"):
        await store.apply("WH/OUT/3", observe(event))
    await store.open_orders.add(key_for("WH/OUT/3"))  # the removal that a crash skipped

    assert (await sweep(store)).orders == 1
    assert (await sweep(store)).orders == 0


async def test_status_of_an_unreadable_order_is_an_error_reply_naming_it(
    nc: NatsClient, parts: tuple[SubjectMap, Any]
) -> None:
    subjects, kv = parts
    await kv.put(key_for("WH/OUT/0"), b"garbage")
    with pytest.raises(QueryError) as refused:
        await status.order_status(
            make_store(nc, subjects, kv, Clock(T0)), OrderStatusRequest(order_ref="WH/OUT/0")
        )
    assert refused.value.code == 500 and "unreadable" in refused.value.description


async def test_the_sweep_counts_open_and_stuck_orders_by_stage_for_the_gauges(
    nc: NatsClient, parts: tuple[SubjectMap, Any]
) -> None:
    subjects, kv = parts
    clock = Clock(T0)
    store = make_store(nc, subjects, kv, clock)
    metrics = MetricsRegistry("orchestrator")
    gauges = StuckOrderGauges(metrics)
    # A series for every open stage from the start, before any order is seen.
    assert _gauge(metrics, "waybill_orders_stuck") == {str(s): 0 for s in OPEN_STAGES}
    await store.apply("WH/OUT/1", observe(released("WH/OUT/1")))
    await store.apply("WH/OUT/2", observe(released("WH/OUT/2")))
    await store.apply("WH/OUT/2", observe(packed("WH/OUT/2")))

    gauges.publish((await sweep(store)).census)
    assert _gauge(metrics, "waybill_orders_open")[Stage.IN_WAREHOUSE] == 1
    assert _gauge(metrics, "waybill_orders_open")[Stage.BOOKING] == 1
    assert sum(_gauge(metrics, "waybill_orders_stuck").values()) == 0

    clock.advance(DEADLINE_S + 1)
    gauges.publish((await sweep(store)).census)
    stuck = _gauge(metrics, "waybill_orders_stuck")
    assert (stuck[Stage.IN_WAREHOUSE], stuck[Stage.BOOKING]) == (1, 1)
    oldest = _gauge(metrics, "waybill_orders_oldest_in_stage_seconds")
    assert oldest[Stage.IN_WAREHOUSE] >= DEADLINE_S

    clock.advance(DEADLINE_S + 1)
    await sweep(store)  # escalates both: held for a person
    gauges.publish((await sweep(store)).census)
    assert _gauge(metrics, "waybill_orders_stuck")[Stage.HELD] == 2


def _gauge(metrics: MetricsRegistry, name: str) -> dict[str, float]:
    return {
        sample.labels["stage"]: sample.value
        for family in metrics.collector_registry.collect()
        for sample in family.samples
        if sample.name == name
    }


async def test_an_express_order_stays_express_in_what_its_deadlines_send(
    nc: NatsClient, parts: tuple[SubjectMap, Any]
) -> None:
    # A deadline's resend and its escalation have no express cause: the state keeps the lane.
    subjects, kv = parts
    clock = Clock(T0)
    store = make_store(nc, subjects, kv, clock)
    rush = released("WH/OUT/RUSH")
    express = new_context(rush, source="odoo-gateway", lane=Lane.EXPRESS)
    await store.apply("WH/OUT/RUSH", Observed(event=rush, context=express, at=T0))
    await store.apply("WH/OUT/SLOW", observe(released("WH/OUT/SLOW")))
    for _ in range(2):  # the resend, then the escalation
        clock.advance(DEADLINE_S + 1)
        await sweep(store)
    lanes = {
        (type(d.message).__name__, d.context.correlation_id, d.context.lane)
        for d in await commands(nc, subjects)
    }
    assert lanes == {
        ("ReleaseToWarehouse", "WH/OUT/RUSH", Lane.EXPRESS),
        ("PostExceptionInOdoo", "WH/OUT/RUSH", Lane.EXPRESS),
        ("ReleaseToWarehouse", "WH/OUT/SLOW", Lane.STANDARD),
        ("PostExceptionInOdoo", "WH/OUT/SLOW", Lane.STANDARD),
    }
