"""What one audit row costs the SQLite writer (issue #18: the auditor's CPU per order).

Counted, not timed: the statements a group of writes runs, the pages a
message's commit writes to the write-ahead log, the wake-ups of the event
loop a group's results cost. Each count was higher before the cut it proves
(docs/benchmarks.md, "The auditor's and notifier's cost per order").
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.services.auditor.journey import Journey, for_order
from tests.services.auditor.rows import SUBJECTS, record_of, released
from waybill_auditor.database import Linger, SqliteThread, connect
from waybill_auditor.sqlite_store import SqliteAuditStore
from waybill_auditor.stages import Stage
from waybill_contracts.events import NotificationSent, WarehouseOrderPicked
from waybill_runtime.testing.waiting import eventually


async def _queued(thread: SqliteThread) -> int:
    return thread._jobs.qsize()


def _flag(event: threading.Event) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return event.is_set()

    return probe


async def _as_one_group(
    writer: SqliteThread, jobs: list[Callable[[sqlite3.Connection], Any]]
) -> tuple[list[Any], Callable[[], None]]:
    """Run ``jobs`` as one group: queued while a job holds the writer busy.

    Returns their results and a function that releases the writer (called already).
    """
    started, gate = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        started.set()
        gate.wait(30)

    busy = asyncio.create_task(writer.run(hold))
    await eventually(_flag(started), what="the writer busy")
    tasks = [asyncio.create_task(writer.run(job)) for job in jobs]
    await eventually(
        lambda: _queued(writer), until=lambda n: n == len(jobs), what="the jobs queued"
    )
    gate.set()
    await busy
    return await asyncio.gather(*tasks, return_exceptions=True), gate.set


def _insert(x: int) -> Callable[[sqlite3.Connection], int]:
    return lambda conn: int(conn.execute("INSERT INTO t (x) VALUES (?)", (x,)).rowcount)


@contextmanager
def _traced(path: Path, statements: list[str]) -> Iterator[Callable[[], sqlite3.Connection]]:
    def open_traced() -> sqlite3.Connection:
        conn = connect(path)
        conn.set_trace_callback(statements.append)
        return conn

    yield open_traced


async def test_a_group_of_writes_runs_its_own_statements_a_begin_and_a_commit(
    tmp_path: Path,
) -> None:
    statements: list[str] = []
    with _traced(tmp_path / "group.sqlite", statements) as open_traced:
        writer = SqliteThread(open_traced, name="test-writer", writer=True)
    await writer.start()
    try:
        await writer.run(lambda c: c.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
        statements.clear()

        results, _ = await _as_one_group(writer, [_insert(x) for x in (1, 2, 3, 4)])

        assert results == [1, 1, 1, 1]
        group = statements[statements.index("BEGIN IMMEDIATE", 2) :]  # after the holding job's
        # Four inserts, one BEGIN, one COMMIT: no savepoint and release around each
        # job (14 statements before).
        assert group == [
            "BEGIN IMMEDIATE",
            *(f"INSERT INTO t (x) VALUES ({x})" for x in (1, 2, 3, 4)),
            "COMMIT",
        ]
    finally:
        await writer.stop()


async def test_handing_a_job_over_asks_the_thread_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    is_alive = threading.Thread.is_alive

    def counted(thread: threading.Thread) -> bool:
        asked.append(thread.name)
        return is_alive(thread)

    writer = SqliteThread(lambda: connect(tmp_path / "t.sqlite"), name="test-writer", writer=True)
    await writer.start()
    try:
        monkeypatch.setattr(threading.Thread, "is_alive", counted)
        for _ in range(5):
            await writer.run(lambda c: c.execute("SELECT 1").fetchone())
        # The thread says it serves by a flag: no look at its state per job (a lock
        # each, 5 for five jobs before).
        assert asked == []
    finally:
        await writer.stop()
    with pytest.raises(RuntimeError, match="is not running"):
        await writer.run(lambda c: None)


async def test_a_failing_job_is_run_again_alone_and_fails_alone(tmp_path: Path) -> None:
    statements: list[str] = []
    with _traced(tmp_path / "failing.sqlite", statements) as open_traced:
        writer = SqliteThread(open_traced, name="test-writer", writer=True)
    await writer.start()
    try:
        await writer.run(lambda c: c.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)"))

        results, _ = await _as_one_group(writer, [_insert(x) for x in (1, 2, 1, 3)])

        assert results[0] == 1 and results[1] == 1 and results[3] == 1
        assert isinstance(results[2], sqlite3.IntegrityError)
        rows = await writer.run(lambda c: [r[0] for r in c.execute("SELECT x FROM t ORDER BY x")])
        assert rows == [1, 2, 3]
        # The group was rolled back, then each job committed (or rolled back) on its own.
        assert statements.count("ROLLBACK") == 2
    finally:
        await writer.stop()


async def test_a_group_of_results_wakes_the_event_loop_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = SqliteThread(lambda: connect(tmp_path / "wake.sqlite"), name="w", writer=True)
    await writer.start()
    try:
        await writer.run(lambda c: c.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
        loop = asyncio.get_running_loop()
        wakeups: list[str] = []
        threadsafe = loop.call_soon_threadsafe

        def counted(callback: Callable[..., object], *args: Any, **kwargs: Any) -> Any:
            if threading.current_thread().name == "w":
                wakeups.append(getattr(callback, "__name__", repr(callback)))
            return threadsafe(callback, *args, **kwargs)

        monkeypatch.setattr(loop, "call_soon_threadsafe", counted)

        results, _ = await _as_one_group(writer, [_insert(x) for x in (1, 2, 3, 4)])

        assert results == [1, 1, 1, 1]
        # One for the job that held the writer busy, one for the group of four
        # (five before: one per job).
        assert len(wakeups) == 2
    finally:
        await writer.stop()


async def _handed_over(
    writer: SqliteThread, job: Callable[[sqlite3.Connection], Any]
) -> asyncio.Task[Any]:
    """``job`` given to the writer, once the writer has taken it (running it or lingering)."""
    task = asyncio.create_task(writer.run(job))
    await asyncio.sleep(0)  # the task queues its job
    await eventually(lambda: _queued(writer), until=lambda n: n == 0, what="the job taken")
    return task


class _CountedEvent(threading.Event):
    """An event that counts the waits on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


async def _lingering(writer: SqliteThread) -> bool:
    return writer._lingering


async def test_rows_coming_one_by_one_while_the_writer_is_busy_share_one_commit(
    tmp_path: Path,
) -> None:
    statements: list[str] = []
    with _traced(tmp_path / "linger.sqlite", statements) as open_traced:
        # Waits that would hang the test rather than end a group: only its rows end it.
        linger = Linger(wait_s=3600, rows=4, busy_s=3600)
        writer = SqliteThread(open_traced, name="test-writer", writer=True, linger=linger)
    writer._enough = woken = _CountedEvent()
    await writer.start()
    try:
        await writer.run(lambda c: c.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
        statements.clear()

        # Four rows handed over one at a time (as messages arriving a few milliseconds
        # apart are): the first once the writer is idle, each other once it waits.
        tasks = [await _handed_over(writer, _insert(1))]
        for x in (2, 3, 4):
            await eventually(lambda: _lingering(writer), what="the writer lingering")
            tasks.append(asyncio.create_task(writer.run(_insert(x))))
            await asyncio.sleep(0)  # queued
        results = await asyncio.gather(*tasks)

        assert results == [1, 1, 1, 1]
        # One transaction for the four (four before: each row committed alone).
        assert statements.count("BEGIN IMMEDIATE") == 1
        assert statements.count("COMMIT") == 1
        # The writer slept once for the three rows that followed the first: woken when
        # the fourth was queued, not at each.
        assert woken.waits == 1
    finally:
        await writer.stop()


async def test_a_row_after_a_quiet_spell_is_committed_without_waiting_for_others(
    tmp_path: Path,
) -> None:
    linger = Linger(wait_s=3600, rows=4, busy_s=3600)
    writer = SqliteThread(
        lambda: connect(tmp_path / "quiet.sqlite"), name="w", writer=True, linger=linger
    )
    await writer.start()
    try:
        # The writer's first group: nothing came before it, so it does not linger (an
        # hour's wait would end the test by its timeout).
        await asyncio.wait_for(
            writer.run(lambda c: c.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")), 30
        )
    finally:
        await writer.stop()


async def test_stopping_commits_the_group_the_writer_lingers_on(tmp_path: Path) -> None:
    path = tmp_path / "stop.sqlite"
    linger = Linger(wait_s=3600, rows=4, busy_s=3600)
    writer = SqliteThread(lambda: connect(path), name="w", writer=True, linger=linger)
    await writer.start()
    await writer.run(lambda c: c.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
    lingering = await _handed_over(writer, _insert(1))

    await asyncio.wait_for(writer.stop(), 30)

    assert await lingering == 1
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    finally:
        conn.close()


def _wal_frames(path: Path) -> int:
    """Frames in the write-ahead log: pages written by commits since the last checkpoint."""
    wal = path.with_name(path.name + "-wal")
    size = wal.stat().st_size if wal.exists() else 0
    conn = sqlite3.connect(path)
    try:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()
    header, frame_header = 32, 24
    return max(0, size - header) // (page_size + frame_header)


async def test_a_message_that_does_not_move_its_order_writes_no_stage_index_pages(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.sqlite"
    store = SqliteAuditStore(path)
    await store.open()
    try:
        ref = "WH/OUT/00042"
        await store.record(released(ref))
        journey = Journey(ref)
        picked = for_order(WarehouseOrderPicked, ref)
        await store.record(record_of(picked, journey.add(picked, minutes=5)))

        before = _wal_frames(path)
        sent = for_order(NotificationSent, ref)
        recorded = await store.record(record_of(sent, journey.add(sent, minutes=6), sequence=3))
        written = _wal_frames(path) - before

        assert recorded.new and recorded.stage_before is recorded.stage_after is Stage.PICKED
        # The message's row, its id's index and three of its indexes (its correlation
        # is its order: not indexed again; its kind is in the time index), the order's
        # row: the orders' two stage indexes are left alone when the stage and its time
        # do not change (10 pages before, 8 with the stage indexes alone, 7 with the
        # kind's own index).
        assert written <= 6, written
        order = await store.order(ref)
        assert order is not None and order.messages == 3 and order.stage is Stage.PICKED
    finally:
        await store.close()


def test_counting_rows_looks_each_metric_label_up_once() -> None:
    from prometheus_client import Counter, Gauge

    from waybill_auditor.store import Change
    from waybill_auditor.trail import AuditTrail
    from waybill_runtime.metrics import MetricsRegistry

    metrics = MetricsRegistry("auditor")
    trail = AuditTrail(store=None, metrics=metrics)  # type: ignore[arg-type]  # not read here
    looked_up: list[str] = []

    def counted(metric: Counter | Gauge) -> None:
        labels = metric.labels

        def lookup(*values: str) -> object:
            looked_up.append(values[0])
            return labels(*values)

        metric.labels = lookup  # type: ignore[method-assign,assignment]

    counted(trail._rows)
    counted(trail._orders)
    stages = [Stage.RELEASED, Stage.IN_WAREHOUSE, Stage.ACCEPTED]
    for ref in ("A", "B", "C", "D"):
        for before, after in zip([None, *stages], stages, strict=False):
            trail.changed(
                Change(
                    kind="event", type="t", order_ref=ref, stage_before=before, stage_after=after
                )
            )

    # Twelve rows moving four orders through three stages: each label looked up once
    # (event, and the three stages), where every row looked up its kind and its two
    # stages before (32 look-ups).
    assert sorted(looked_up) == sorted(["event", *(stage.value for stage in stages)])
    assert trail._rows.labels("event")._value.get() == 12
    assert [trail._orders.labels(stage.value)._value.get() for stage in stages] == [0, 0, 4]


def test_counting_unconsumed_rows_looks_each_type_label_up_once() -> None:
    from prometheus_client import Counter

    from waybill_auditor.store import Change
    from waybill_auditor.trail import AuditTrail
    from waybill_runtime.metrics import MetricsRegistry

    trail = AuditTrail(store=None, metrics=MetricsRegistry("auditor"))  # type: ignore[arg-type]
    looked_up: list[str] = []
    metric: Counter = trail._unconsumed
    labels = metric.labels

    def lookup(*values: str) -> object:
        looked_up.append(values[0])
        return labels(*values)

    metric.labels = lookup  # type: ignore[method-assign,assignment]
    types = ["io.waybill.notification.sent.v1", "io.waybill.notification.failed.v1"]
    for ref in ("A", "B", "C"):
        for ce_type in types:
            trail.changed(Change(kind="event", type=ce_type, order_ref=ref, unconsumed=True))

    # Six unconsumed rows of two types: each type's label looked up once (six before).
    assert sorted(looked_up) == sorted(types)
    assert [labels(t)._value.get() for t in types] == [3, 3]


async def test_a_correlation_id_is_indexed_only_where_it_is_not_the_orders_ref(
    tmp_path: Path,
) -> None:
    from waybill_contracts import new_context

    path = tmp_path / "audit.sqlite"
    store = SqliteAuditStore(path)
    await store.open()
    try:
        ref = "WH/OUT/00043"
        journey = Journey(ref)
        cause = None
        for message_type in (WarehouseOrderPicked, NotificationSent, NotificationSent):
            message = for_order(message_type, ref)
            cause = journey.add(message, cause=cause)
            await store.record(record_of(message, cause, sequence=len(journey.sent)))
        # One message about the order carried in another business transaction.
        other = for_order(NotificationSent, ref)
        elsewhere = new_context(other, source="notifier", correlation_id="RECON-7")
        await store.record(record_of(other, elsewhere, sequence=9))

        def correlation_index_entries(conn: sqlite3.Connection) -> int:
            return int(
                conn.execute(
                    "SELECT coalesce(sum(ncell), 0) FROM dbstat "
                    "WHERE name LIKE 'messages_by%correlation' AND pagetype = 'leaf'"
                ).fetchone()[0]
            )

        # Four rows, one index entry: the row whose correlation is not its order (four
        # entries before, one per row).
        assert await store._writer.run(correlation_index_entries) == 1
        assert len(await store.messages_of(ref, dead_letters=False)) == 4
        assert [m.id for m in await store.messages_of("RECON-7", dead_letters=False)] == [
            elsewhere.id
        ]
    finally:
        await store.close()


_READ_ORDER = "SELECT order_ref, stage, since, facts FROM orders"


@asynccontextmanager
async def _traced_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[SqliteAuditStore, list[str]]]:
    """An open SQLite store whose writer connection's statements are collected."""
    from waybill_auditor import sqlite_store

    statements: list[str] = []

    def traced(path: Path, **options: Any) -> sqlite3.Connection:
        conn = connect(path, **options)
        if not options.get("read_only"):
            conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite_store, "connect", traced)
    store = SqliteAuditStore(tmp_path / "audit.sqlite")
    await store.open()
    try:
        yield store, statements
    finally:
        await store.close()


def _journey_records(ref: str, *types: type[Any]) -> list[Any]:
    journey = Journey(ref)
    records = []
    for minutes, message_type in enumerate(types):
        message = for_order(message_type, ref)
        context = journey.add(message, minutes=minutes)
        records.append(record_of(message, context, sequence=minutes + 1))
    return records


async def test_an_orders_next_messages_do_not_read_its_row_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from waybill_contracts.events import OrderReleased, WarehouseOrderAccepted

    async with _traced_store(tmp_path, monkeypatch) as (store, statements):
        ref = "WH/OUT/00044"
        types = (OrderReleased, WarehouseOrderAccepted, NotificationSent, WarehouseOrderPicked)
        for record in _journey_records(ref, *types):
            await store.record(record)

        # Four messages, the order's row read once: for the first, which found none
        # (four before: each message read it).
        assert sum(s.startswith(_READ_ORDER) for s in statements) == 1
        order = await store.order(ref)
        assert order is not None and order.messages == 4 and order.stage is Stage.PICKED


async def test_after_a_rollback_an_orders_row_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from waybill_contracts.events import OrderReleased, WarehouseOrderAccepted

    async with _traced_store(tmp_path, monkeypatch) as (store, statements):
        ref = "WH/OUT/00045"
        released, accepted, picked = _journey_records(
            ref, OrderReleased, WarehouseOrderAccepted, WarehouseOrderPicked
        )
        await store.record(released)

        # The accepted message shares a transaction with a job that fails: the group is
        # rolled back and the message written again alone, its order read afresh.
        started, gate = threading.Event(), threading.Event()

        def hold(conn: sqlite3.Connection) -> None:
            started.set()
            gate.wait(30)

        def fail(conn: sqlite3.Connection) -> None:
            raise sqlite3.IntegrityError("refused")

        busy = asyncio.create_task(store._writer.run(hold))
        await eventually(_flag(started), what="the writer busy")
        recording = asyncio.create_task(store.record(accepted))
        failing = asyncio.create_task(store._writer.run(fail))
        await eventually(lambda: _queued(store._writer), until=lambda n: n == 2, what="both queued")
        statements.clear()
        gate.set()
        await busy
        assert (await recording).new
        with pytest.raises(sqlite3.IntegrityError):
            await failing
        # The run in the group used the row kept from the committed message; the run
        # alone, after the rollback, read it again (none kept past a rollback).
        assert sum(s.startswith(_READ_ORDER) for s in statements) == 1
        order = await store.order(ref)
        assert order is not None and order.messages == 2 and order.stage is Stage.ACCEPTED

        # Deleted by another hand: the next message finds no row to update and makes it.
        await store._writer.run(lambda conn: conn.execute("DELETE FROM orders"))
        await store.record(picked)
        order = await store.order(ref)
        assert order is not None and order.messages == 1 and order.stage is Stage.PICKED


async def test_only_dead_letters_have_an_index_entry_by_kind(tmp_path: Path) -> None:
    from tests.services.auditor.rows import SUBJECTS, dead_letter
    from waybill_auditor.records import dead_letter_record

    path = tmp_path / "audit.sqlite"
    store = SqliteAuditStore(path)
    await store.open()
    try:
        ref = "WH/OUT/00046"
        for record in _journey_records(ref, WarehouseOrderPicked, NotificationSent):
            await store.record(record)
        await store.record(dead_letter_record(dead_letter(3, ref=ref), subjects=SUBJECTS))

        def kind_index_entries(conn: sqlite3.Connection) -> int:
            return int(
                conn.execute(
                    "SELECT coalesce(sum(ncell), 0) FROM dbstat "
                    "WHERE name IN ('messages_by_kind', 'messages_dead_letters') "
                    "AND pagetype = 'leaf'"
                ).fetchone()[0]
            )

        # Three rows, one entry: the dead letter's (three before, one per row).
        assert await store._writer.run(kind_index_entries) == 1
        kinds, _ = await store.counts()
        assert kinds == {"event": 2, "command": 0, "dead_letter": 1}
        assert [m.kind for m in await store.dead_letters(order_ref=ref)] == ["dead_letter"]
    finally:
        await store.close()


def test_every_type_the_control_tower_reads_per_subject_is_indexed() -> None:
    from waybill_auditor.database import MIGRATIONS
    from waybill_auditor.returns_view import STEPS
    from waybill_auditor.store import PER_SUBJECT_TYPES
    from waybill_contracts.events import (
        InventoryAdjustmentApplied,
        InventoryAdjustmentHeld,
        InventoryReconciled,
        PartnerCircuitChanged,
        ProductsChanged,
        ProductsSynced,
        ProductSyncCompleted,
    )
    from waybill_contracts.messages import Message

    read_by: tuple[type[Message], ...] = (
        PartnerCircuitChanged,  # breakers
        InventoryAdjustmentHeld,  # held_adjustments
        InventoryAdjustmentApplied,
        InventoryReconciled,  # stock_reports
        ProductSyncCompleted,  # product_syncs
        ProductsSynced,
        ProductsChanged,
        *(event_type for event_type, _ in STEPS),  # returns_view
    )
    read = {SUBJECTS.ce_type_for(t) for t in read_by}
    assert read == PER_SUBJECT_TYPES  # a contract's version bump is a new schema step
    assert all(f"'{t}'" in MIGRATIONS[6][1] for t in PER_SUBJECT_TYPES)


async def test_only_the_types_read_per_subject_have_an_index_entry_by_type(
    tmp_path: Path,
) -> None:
    from waybill_contracts.events import PartnerCircuitChanged, WarehouseOrderAccepted
    from waybill_contracts.examples import example_of

    path = tmp_path / "audit.sqlite"
    store = SqliteAuditStore(path)
    await store.open()
    try:
        ref = "WH/OUT/00047"
        for record in _journey_records(
            ref, WarehouseOrderAccepted, WarehouseOrderPicked, NotificationSent, NotificationSent
        ):
            await store.record(record)
        breaker = example_of(PartnerCircuitChanged)
        breaker_context = Journey("none").add(breaker)
        await store.record(record_of(breaker, breaker_context, sequence=9))

        def type_index_entries(conn: sqlite3.Connection) -> int:
            return int(
                conn.execute(
                    "SELECT coalesce(sum(ncell), 0) FROM dbstat "
                    "WHERE name = 'messages_by_type' AND pagetype = 'leaf'"
                ).fetchone()[0]
            )

        # Five rows, one entry: the breaker's (five before, one per row; an order's rows
        # each dirtied a leaf of their own, 0.85 of a row's 3.37 pages in the log).
        assert await store._writer.run(type_index_entries) == 1
        ce_type = breaker_context.type
        [newest] = await store.latest_per_subject(ce_type)
        assert newest.id == breaker_context.id
        with pytest.raises(ValueError, match="not read per subject"):
            await store.latest_per_subject(SUBJECTS.ce_type_for(NotificationSent))

        def plan(conn: sqlite3.Connection) -> str:
            from waybill_auditor import sqlite_reads

            traced: list[str] = []
            conn.set_trace_callback(traced.append)
            try:
                sqlite_reads.latest_per_subject(conn, ce_type)
            finally:
                conn.set_trace_callback(None)
            [query] = [s for s in traced if s.startswith("SELECT")]
            return " ".join(
                str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + query).fetchall()
            )

        # The read uses the partial index, in the query and in its subquery.
        assert (await store._reader.run(plan)).count("messages_by_type") == 2
    finally:
        await store.close()


class _CountedConnection(sqlite3.Connection):
    """A connection that lists the statements Python hands it (an ``executemany`` once)."""

    calls: list[str]

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        self.calls.append(sql)
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        self.calls.append(sql)
        return super().executemany(sql, parameters)


@asynccontextmanager
async def _counted_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[SqliteAuditStore, list[str]]]:
    """An open SQLite store whose writer's calls into SQLite are listed."""
    import functools

    calls: list[str] = []
    _CountedConnection.calls = calls
    monkeypatch.setattr(
        sqlite3, "connect", functools.partial(sqlite3.connect, factory=_CountedConnection)
    )
    store = SqliteAuditStore(tmp_path / "audit.sqlite")
    await store.open()
    try:
        yield store, calls
    finally:
        await store.close()


async def _recorded_as_one_group(store: SqliteAuditStore, records: list[Any]) -> list[Any]:
    """``records`` recorded in one group of the writer: queued while a job holds it busy."""
    started, gate = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        started.set()
        gate.wait(30)

    busy = asyncio.create_task(store._writer.run(hold))
    await eventually(_flag(started), what="the writer busy")
    tasks = [asyncio.create_task(store.record(record)) for record in records]
    await eventually(
        lambda: _queued(store._writer), until=lambda n: n == len(records), what="rows queued"
    )
    gate.set()
    await busy
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_group_of_rows_is_one_insert_and_one_write_per_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from waybill_contracts.commands import ReleaseToWarehouse
    from waybill_contracts.events import OrderReleased, WarehouseOrderAccepted

    async with _counted_store(tmp_path, monkeypatch) as (store, calls):
        a = _journey_records(
            "WH/OUT/00048",
            OrderReleased,
            ReleaseToWarehouse,
            WarehouseOrderAccepted,
            NotificationSent,
            WarehouseOrderPicked,
        )
        b = _journey_records("WH/OUT/00049", OrderReleased, ReleaseToWarehouse, NotificationSent)
        await store.record(a[0])
        await store.record(b[0])
        calls.clear()

        # An event and the command it causes, a notification...: an order's messages
        # come a few at a time, and the writer commits what was queued meanwhile.
        results = await _recorded_as_one_group(store, [*a[1:], *b[1:]])

        assert [r.stage_after for r in results] == [
            Stage.IN_WAREHOUSE,
            Stage.ACCEPTED,
            Stage.ACCEPTED,
            Stage.PICKED,
            Stage.IN_WAREHOUSE,
            Stage.IN_WAREHOUSE,
        ]
        assert [r.stage_before for r in results[:4]] == [
            Stage.RELEASED,
            Stage.IN_WAREHOUSE,
            Stage.ACCEPTED,
            Stage.ACCEPTED,
        ]
        group = calls[calls.index("BEGIN IMMEDIATE", 1) :]  # after the holding job's
        inserts = [c for c in group if c.startswith("INSERT INTO messages")]
        order_writes = [c for c in group if c.startswith(("UPDATE orders", "INSERT INTO orders"))]
        # Six rows of two orders: one call inserts the six (six before), and each order's
        # row is written once (six writes before, one per message).
        assert len(inserts) == 1
        assert len(order_writes) == 2
        order_a, order_b = await store.order("WH/OUT/00048"), await store.order("WH/OUT/00049")
        assert order_a is not None and order_a.messages == 5 and order_a.stage is Stage.PICKED
        assert order_b is not None and order_b.messages == 3
        assert order_b.stage is Stage.IN_WAREHOUSE


async def test_a_message_twice_in_one_group_is_stored_once(tmp_path: Path) -> None:
    from waybill_contracts.events import OrderReleased

    store = SqliteAuditStore(tmp_path / "audit.sqlite")
    await store.open()
    try:
        released, picked = _journey_records("WH/OUT/00050", OrderReleased, WarehouseOrderPicked)
        await store.record(released)

        # A redelivery of a stored message and two deliveries of a new one, in one group.
        results = await _recorded_as_one_group(store, [released, picked, picked])

        assert [r.new for r in results] == [False, True, False]
        order = await store.order("WH/OUT/00050")
        assert order is not None and order.messages == 2 and order.stage is Stage.PICKED
        assert len(await store.messages_of("WH/OUT/00050", dead_letters=False)) == 2
    finally:
        await store.close()


async def test_a_group_of_new_rows_asks_nothing_before_inserting_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from waybill_contracts.events import OrderReleased, WarehouseOrderAccepted

    async with _counted_store(tmp_path, monkeypatch) as (store, calls):
        a = _journey_records("WH/OUT/00052", OrderReleased, WarehouseOrderAccepted)
        b = _journey_records("WH/OUT/00053", OrderReleased, NotificationSent)
        await store.record(a[0])
        await store.record(b[0])
        calls.clear()

        results = await _recorded_as_one_group(store, [a[1], b[1]])

        assert [r.new for r in results] == [True, True]
        group = calls[calls.index("BEGIN IMMEDIATE", 1) :]  # after the holding job's
        # The insert, each order's row, the commit: no look-up of the group's ids
        # before inserting (one statement a group before: 3 to 4 µs a row).
        assert [c.split(" (")[0].split(" SET")[0] for c in group] == [
            "BEGIN IMMEDIATE",
            "INSERT INTO messages",
            "UPDATE orders",
            "UPDATE orders",
            "COMMIT",
        ]


async def test_stored_messages_anywhere_in_a_group_are_found_by_the_insert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from waybill_contracts.events import (
        OrderReleased,
        WarehouseOrderAccepted,
        WarehouseOrderPacked,
    )

    async with _counted_store(tmp_path, monkeypatch) as (store, calls):
        ref = "WH/OUT/00054"
        released, accepted, sent, picked, packed = _journey_records(
            ref,
            OrderReleased,
            WarehouseOrderAccepted,
            NotificationSent,
            WarehouseOrderPicked,
            WarehouseOrderPacked,
        )
        await store.record(released)
        await store.record(sent)
        await store.record(packed)
        calls.clear()

        # Redeliveries first, in the middle and last, and a new message twice.
        results = await _recorded_as_one_group(
            store, [released, accepted, sent, picked, accepted, packed]
        )

        assert [r.new for r in results] == [False, True, False, True, False, False]
        assert [r.stage_after for r in results if r.new] == [Stage.PACKED, Stage.PACKED]
        inserts = [c for c in calls if c.startswith("INSERT INTO messages")]
        # The insert stops at each stored message and goes on after it: one call, and
        # one more after the first and the middle one (the last one ends the group).
        assert len(inserts) == 3
        order = await store.order(ref)
        assert order is not None and order.messages == 5 and order.stage is Stage.PACKED
        stored = await store.messages_of(ref, dead_letters=False)
        assert sorted(m.id for m in stored) == sorted(
            r.id for r in (released, accepted, sent, picked, packed)
        )


async def test_events_and_commands_bind_no_dead_letter_or_replay_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.services.auditor.rows import dead_letter
    from waybill_auditor.records import dead_letter_record, message_record
    from waybill_contracts.events import OrderReleased, WarehouseOrderAccepted
    from waybill_runtime.bus.replay import ReplayMark

    async with _counted_store(tmp_path, monkeypatch) as (store, calls):
        ref = "WH/OUT/00055"
        released, accepted = _journey_records(ref, OrderReleased, WarehouseOrderAccepted)
        journey = Journey(ref)
        picked = for_order(WarehouseOrderPicked, ref)
        replayed = message_record(
            picked,
            journey.add(picked),
            subjects=SUBJECTS,
            nats_subject=SUBJECTS.subject_for(WarehouseOrderPicked),
            stream_sequence=9,
            replay=ReplayMark(dead_letter=4, operator="ops@example.com"),
        )
        letter = dead_letter_record(dead_letter(5, ref=ref), subjects=SUBJECTS)
        calls.clear()

        results = await _recorded_as_one_group(store, [released, letter, accepted, replayed])

        assert [r.new for r in results] == [True, True, True, True]
        inserts = [c for c in calls if c.startswith("INSERT INTO messages")]
        # The two messages as delivered bind 17 values a row; the dead letter and the
        # replay the 26 of every column (every row bound 26 before).
        assert [c.count("?") for c in inserts] == [17, 26]
        stored = {m.id: m for m in await store.messages_of(ref, dead_letters=False)}
        assert stored[released.id].dl_reason is None and stored[released.id].original_id is None
        assert stored[replayed.id].replayed_from == 4
        assert stored[replayed.id].replayed_by == "ops@example.com"
        [stored_letter] = await store.messages_of(ref, dead_letters=True)
        assert stored_letter.dl_reason == "retries exhausted" and stored_letter.dl_attempts == 8
        for record in (released, accepted, replayed, letter):
            row = stored.get(record.id, stored_letter)
            assert msgspec.structs.asdict(row) == {
                field: getattr(record, field) for field in row.__struct_fields__
            }


async def test_a_row_that_fails_does_not_undo_the_rows_written_with_it(tmp_path: Path) -> None:
    import msgspec

    from waybill_auditor.store import AuditDatabaseBusy
    from waybill_contracts.events import OrderReleased

    store = SqliteAuditStore(tmp_path / "audit.sqlite")
    await store.open()
    try:
        released, picked, packed = _journey_records(
            "WH/OUT/00051", OrderReleased, WarehouseOrderPicked, NotificationSent
        )
        refused = msgspec.structs.replace(picked, kind="gossip")  # the table's CHECK refuses it

        results = await _recorded_as_one_group(store, [released, refused, packed])

        # Written together, the refusal failed the group; each row was then written
        # alone, so it fails alone.
        assert results[0].new and results[2].new
        assert isinstance(results[1], AuditDatabaseBusy)
        order = await store.order("WH/OUT/00051")
        assert order is not None and order.messages == 2
    finally:
        await store.close()
