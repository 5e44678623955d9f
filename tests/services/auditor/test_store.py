"""The audit database: stored once, orders' stages, reopening, migrations, the API's reads."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.services.auditor.databases import opened, store_of
from tests.services.auditor.journey import T0, Journey, for_order
from tests.services.auditor.rows import SUBJECTS, dead_letter, record_of, released
from waybill_auditor.database import (
    SCHEMA_VERSION,
    AuditDatabaseError,
    SqliteThread,
    connect,
    migrate,
)
from waybill_auditor.records import dead_letter_record
from waybill_auditor.sqlite_store import SqliteAuditStore
from waybill_auditor.stages import Stage
from waybill_auditor.store import RESYNC, AuditStore, OrdersFilter
from waybill_auditor.trail import AuditTrail, DatabaseWritable
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.events import (
    OrderReleased,
    ProductsChanged,
    WarehouseOrderAccepted,
)
from waybill_runtime.bus.dead_letters import DeadLetter, StoredDeadLetter
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.testing.waiting import eventually


@pytest.fixture
async def store(backend: str, audit_url: str | None, tmp_path: Path) -> AsyncIterator[AuditStore]:
    """The store under test: SQLite and PostgreSQL, each test on both."""
    async with opened(store_of(backend, folder=tmp_path, url=audit_url)) as ready:
        yield ready


async def test_a_message_recorded_twice_is_stored_once(store: AuditStore) -> None:
    record = released("WH/OUT/1")

    first = await store.record(record)
    second = await store.record(record)

    assert (first.new, second.new) == (True, False)
    assert [m.id for m in await store.messages_of("WH/OUT/1", dead_letters=False)] == [record.id]
    order = await store.order("WH/OUT/1")
    assert order is not None and order.messages == 1


async def test_recorded_messages_move_their_order_on(store: AuditStore) -> None:
    ref = "WH/OUT/2"
    journey = Journey(ref)
    release = for_order(OrderReleased, ref)
    cause = journey.add(release)
    accepted = for_order(WarehouseOrderAccepted, ref)
    command = for_order(ReleaseToWarehouse, ref)

    # The accepted event arrives before the command that caused it.
    command_context = journey.add(command, cause=cause, minutes=1)
    outcomes = [
        await store.record(record_of(release, cause)),
        await store.record(
            record_of(accepted, journey.add(accepted, cause=command_context, minutes=2))
        ),
        await store.record(record_of(command, command_context)),
    ]

    assert [(o.stage_before, o.stage_after) for o in outcomes] == [
        (None, Stage.RELEASED),
        (Stage.RELEASED, Stage.ACCEPTED),
        (Stage.ACCEPTED, Stage.ACCEPTED),
    ]
    order = await store.order(ref)
    assert order is not None
    assert (order.stage, order.since, order.messages) == (
        Stage.ACCEPTED,
        T0 + timedelta(minutes=2),
        3,
    )


async def test_a_message_about_no_order_is_stored_without_an_order(store: AuditStore) -> None:
    batch = for_order(ProductsChanged, "unused")
    record = record_of(batch, Journey("prd").add(batch))

    assert (await store.record(record)).new
    kinds, stages = await store.counts()
    assert kinds == {"event": 1, "command": 0, "dead_letter": 0}
    assert stages == {}


async def test_a_dead_letter_is_stored_with_its_reason_and_counted_on_its_order(
    store: AuditStore,
) -> None:
    record = dead_letter_record(dead_letter(3), subjects=SUBJECTS)

    assert (await store.record(record)).new
    assert not (await store.record(record)).new

    [stored] = await store.messages_of("WH/OUT/7", dead_letters=True)
    assert (stored.kind, stored.dl_reason, stored.dl_error_type, stored.dl_attempts) == (
        "dead_letter",
        "retries exhausted",
        "TimeoutError",
        8,
    )
    assert stored.ce_type == "io.waybill.warehouse_order.picked.v1"
    order = await store.order("WH/OUT/7")
    assert order is not None and (order.dead_letters, order.messages) == (1, 0)
    assert await store.messages_of("WH/OUT/7", dead_letters=False) == []


async def test_a_dead_letter_of_an_unreadable_message_belongs_to_its_correlation_id(
    store: AuditStore,
) -> None:
    letter = dead_letter(4).letter
    broken = StoredDeadLetter(
        sequence=4,
        letter=DeadLetter(
            **{
                **{f: getattr(letter, f) for f in letter.__struct_fields__},
                "original_body": b"{not json",
                "reason": "invalid message",
            }
        ),
    )

    await store.record(dead_letter_record(broken, subjects=SUBJECTS))

    [stored] = await store.messages_of("WH/OUT/7", dead_letters=True)
    assert (stored.order_ref, stored.body, stored.dl_reason) == (
        "WH/OUT/7",
        b"{not json",
        "invalid message",
    )


async def test_reopening_the_database_keeps_the_trail(
    backend: str, audit_url: str | None, tmp_path: Path
) -> None:
    record = released("WH/OUT/3")
    first = store_of(backend, folder=tmp_path, url=audit_url)
    await first.open()
    await first.record(record)
    await first.close()

    again = store_of(backend, folder=tmp_path, url=audit_url)
    await again.open()
    try:
        assert not (await again.record(record)).new
        order = await again.order("WH/OUT/3")
        assert order is not None and order.stage is Stage.RELEASED
    finally:
        await again.close()


def test_the_schema_version_is_recorded_and_each_step_runs_once(tmp_path: Path) -> None:
    conn = connect(tmp_path / "audit.sqlite")
    try:
        assert migrate(conn) == SCHEMA_VERSION
        conn.execute("INSERT INTO heartbeat (id, at_s) VALUES (1, 0)")
        steps = [list(step) for step in _current_migrations()]
        steps.append(["CREATE TABLE later (x INTEGER)"])

        assert migrate(conn, steps) == SCHEMA_VERSION + 1
        assert migrate(conn, steps) == SCHEMA_VERSION + 1  # nothing left to do

        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
        assert versions == list(range(1, SCHEMA_VERSION + 2))
        assert conn.execute("SELECT count(*) FROM heartbeat").fetchone()[0] == 1
    finally:
        conn.close()


def _current_migrations() -> tuple[tuple[str, ...], ...]:
    from waybill_auditor.database import MIGRATIONS

    return MIGRATIONS


def test_a_failing_migration_step_leaves_the_version_where_it_was(tmp_path: Path) -> None:
    conn = connect(tmp_path / "audit.sqlite")
    try:
        migrate(conn)
        steps = [*(_current_migrations()), ("CREATE TABLE ok (x INTEGER)", "NOT SQL AT ALL")]

        with pytest.raises(sqlite3.OperationalError):
            migrate(conn, steps)

        assert (
            conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        )
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "ok" not in tables
    finally:
        conn.close()


def test_two_auditors_migrating_one_file_at_once_apply_each_step_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from waybill_auditor import database

    path = tmp_path / "audit.sqlite"
    first, second = connect(path), connect(path)
    try:
        read_version = database._schema_version
        stale = [0]

        def read_before_the_other_migrated(conn: sqlite3.Connection) -> int:
            # The second auditor's first read came before the first one migrated.
            return stale.pop() if stale else read_version(conn)

        migrate(first)
        monkeypatch.setattr(database, "_schema_version", read_before_the_other_migrated)
        assert migrate(second) == SCHEMA_VERSION  # no "duplicate column" or "table exists"
        versions = [row[0] for row in second.execute("SELECT version FROM schema_version")]
        assert versions == list(range(1, SCHEMA_VERSION + 1))
    finally:
        first.close()
        second.close()


async def test_a_database_from_a_newer_auditor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (99)")
    conn.commit()
    conn.close()

    with pytest.raises(AuditDatabaseError, match="schema version 99, newer than this auditor"):
        await SqliteAuditStore(path).open()


async def test_a_place_that_cannot_hold_a_database_is_named_in_the_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")

    with pytest.raises(AuditDatabaseError, match=r"cannot be opened .*WAYBILL_AUDIT_DB"):
        await SqliteAuditStore(blocker / "audit.sqlite").open()


async def test_a_failing_job_does_not_undo_the_others_written_with_it(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    writer = SqliteThread(lambda: connect(path), name="test-writer", writer=True)
    await writer.start()
    try:
        await writer.run(lambda c: c.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)"))

        def insert(x: int) -> Callable[[sqlite3.Connection], int]:
            return lambda c: c.execute("INSERT INTO t (x) VALUES (?)", (x,)).rowcount

        # Hold the writer busy while four jobs queue up: it then takes them as one group.
        started, gate = threading.Event(), threading.Event()

        def hold(conn: sqlite3.Connection) -> None:
            started.set()
            gate.wait(30)

        busy = asyncio.create_task(writer.run(hold))
        await eventually(_flag(started), what="the writer busy")
        jobs = [
            asyncio.create_task(writer.run(insert(x)))
            for x in (1, 2, 1, 3)  # the second 1 breaks the primary key
        ]
        await eventually(
            lambda: _queued(writer), until=lambda n: n == len(jobs), what="four queued jobs"
        )
        gate.set()
        await busy
        results = await asyncio.gather(*jobs, return_exceptions=True)

        assert results[0] == 1 and results[1] == 1 and results[3] == 1
        assert isinstance(results[2], sqlite3.IntegrityError)
        rows = await writer.run(lambda c: [r[0] for r in c.execute("SELECT x FROM t ORDER BY x")])
        assert rows == [1, 2, 3]
    finally:
        await writer.stop()


def _flag(event: threading.Event) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return event.is_set()

    return probe


async def _queued(thread: SqliteThread) -> int:
    return thread._jobs.qsize()


async def test_a_stopped_database_thread_refuses_work(tmp_path: Path) -> None:
    thread = SqliteThread(lambda: connect(tmp_path / "x.sqlite"), name="t", writer=True)
    await thread.start()
    await thread.stop()

    with pytest.raises(RuntimeError, match="is not running"):
        await thread.run(lambda c: None)


async def test_readiness_reports_a_database_that_takes_writes_and_one_that_does_not(
    backend: str, audit_url: str | None, tmp_path: Path
) -> None:
    store = store_of(backend, folder=tmp_path, url=audit_url)
    await store.open()
    check = DatabaseWritable(store)
    assert (await check.check()).ok
    await store.close()

    result = await check.check()

    assert not result.ok
    assert "takes no writes" in result.detail


async def test_orders_are_listed_longest_in_their_stage_first_by_stage_and_by_page(
    store: AuditStore,
) -> None:
    for n in range(5):
        await store.record(released(f"WH/OUT/1{n}", minutes=10 - n))  # WH/OUT/14 is oldest
    now = T0 + timedelta(hours=1)
    deadlines = {Stage.RELEASED: 60.0}

    everything = await store.orders(OrdersFilter(limit=10), deadlines=deadlines, now=now)
    first = await store.orders(OrdersFilter(limit=2), deadlines=deadlines, now=now)
    after = (first[1].since, first[1].order_ref)
    second = await store.orders(OrdersFilter(limit=2, after=after), deadlines=deadlines, now=now)
    elsewhere = await store.orders(
        OrdersFilter(stages=(Stage.ACCEPTED,)), deadlines=deadlines, now=now
    )

    assert [o.order_ref for o in everything] == [f"WH/OUT/1{n}" for n in (4, 3, 2, 1, 0)]
    assert [o.order_ref for o in first] == ["WH/OUT/14", "WH/OUT/13", "WH/OUT/12"]  # limit + 1
    assert [o.order_ref for o in second] == ["WH/OUT/12", "WH/OUT/11", "WH/OUT/10"]
    assert elsewhere == []


async def test_only_orders_past_their_stage_deadline_are_stuck(store: AuditStore) -> None:
    await store.record(released("WH/OUT/old", minutes=0))
    await store.record(released("WH/OUT/new", minutes=9))
    now = T0 + timedelta(minutes=10)

    async def refs(deadlines: dict[Stage, float], *stages: Stage) -> list[str]:
        rows = await store.orders(
            OrdersFilter(stuck_only=True, stages=stages), deadlines=deadlines, now=now
        )
        return [row.order_ref for row in rows]

    assert await refs({Stage.RELEASED: 300.0}) == ["WH/OUT/old"]
    assert await refs({Stage.RELEASED: 30.0}) == ["WH/OUT/old", "WH/OUT/new"]
    assert await refs({Stage.RELEASED: 3600.0}) == []
    assert await refs({Stage.ACCEPTED: 1.0}) == []  # no deadline for the stage they are in
    assert await refs({Stage.RELEASED: 30.0}, Stage.ACCEPTED) == []


async def test_dead_letters_are_listed_newest_first_by_service_and_by_page(
    store: AuditStore,
) -> None:
    for sequence, service in ((1, "orchestrator"), (2, "wms-bridge"), (3, "orchestrator")):
        await store.record(
            dead_letter_record(dead_letter(sequence, service=service), subjects=SUBJECTS)
        )

    newest = await store.dead_letters(limit=1)
    older = await store.dead_letters(limit=5, before_sequence=newest[0].stream_sequence)
    orchestrator = await store.dead_letters(service="orchestrator")
    of_order = await store.dead_letters(order_ref="WH/OUT/7")
    of_other = await store.dead_letters(order_ref="WH/OUT/8")

    assert [d.stream_sequence for d in newest] == [3, 2]  # limit + 1: more exist
    assert [d.stream_sequence for d in older] == [2, 1]
    assert [d.stream_sequence for d in orchestrator] == [3, 1]
    assert len(of_order) == 3 and of_other == []


async def test_times_are_kept_in_utc_to_the_microsecond(store: AuditStore) -> None:
    ref = "WH/OUT/time"
    message = for_order(OrderReleased, ref)
    moment = datetime(2025, 3, 14, 11, 30, 1, 123456, tzinfo=UTC)
    context = Journey(ref).add(message, start=moment)

    await store.record(record_of(message, context))

    [stored] = await store.messages_of(ref, dead_letters=False)
    order = await store.order(ref)
    assert stored.time == moment
    assert order is not None and order.since == moment


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


async def test_the_database_and_its_wal_are_readable_by_their_owner_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "auditor" / "audit.sqlite"
    store = SqliteAuditStore(path)
    await store.open()
    try:
        await store.record(released("WH/OUT/1"))
        made = sorted(p.name for p in path.parent.iterdir())
        modes = {p.name: _mode(p) for p in path.parent.iterdir()}
    finally:
        await store.close()
    assert "audit.sqlite-wal" in made
    assert set(modes.values()) == {0o600}
    assert _mode(path.parent) == _mode(tmp_path / "state") == 0o700


def _left_open(folder: Path) -> tuple[Path, Path]:
    """A database and WAL an older version left readable by everyone, in a folder of 0755."""
    folder.chmod(0o755)  # a folder someone named: left as it is
    path, wal = folder / "audit.sqlite", folder / "audit.sqlite-wal"
    for file in (path, wal):
        file.touch()
        file.chmod(0o644)
    return path, wal


async def test_a_database_left_open_to_others_is_tightened_on_start(tmp_path: Path) -> None:
    path, wal = _left_open(tmp_path)
    store = SqliteAuditStore(path)
    await store.open()
    try:
        modes = (_mode(path), _mode(wal))
    finally:
        await store.close()
    assert modes == (0o600, 0o600)
    assert _mode(tmp_path) == 0o755


async def test_a_file_at_the_previous_schema_version_is_migrated_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.sqlite"
    record = released("WH/OUT/older")
    conn = connect(path)
    try:
        assert migrate(conn, _current_migrations()[:-1]) == SCHEMA_VERSION - 1
        conn.execute(
            "INSERT INTO messages (id, kind, ce_type, subject, order_ref, source, time, time_s, "
            "stream, stream_sequence, nats_subject, body, recorded_at_s) "
            "VALUES (?, 'event', ?, ?, ?, ?, ?, ?, 'S', 1, 'x', ?, 0)",
            (
                record.id,
                record.ce_type,
                record.subject,
                record.order_ref,
                record.source,
                record.time.isoformat(),
                record.time.timestamp(),
                record.body,
            ),
        )
    finally:
        conn.close()

    async with opened(SqliteAuditStore(path)) as store:
        [kept] = await store.messages_of("WH/OUT/older", dead_letters=False)
        assert not (await store.record(record)).new

    assert (kept.id, kept.trace_id, kept.body) == (record.id, None, record.body)
    conn = connect(path)
    try:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == (
            SCHEMA_VERSION
        )
    finally:
        conn.close()


async def test_a_dead_letter_whose_text_holds_nul_characters_is_stored(store: AuditStore) -> None:
    letter = dead_letter(5).letter
    poisoned = StoredDeadLetter(
        sequence=5,
        letter=DeadLetter(
            **{
                **{f: getattr(letter, f) for f in letter.__struct_fields__},
                "error_message": "bad byte \x00 in field",
                "original_body": b"\x00\xff",
            }
        ),
    )
    record = dead_letter_record(poisoned, subjects=SUBJECTS)

    assert (await store.record(record)).new
    assert not (await store.record(record)).new

    [stored] = await store.dead_letters()
    assert stored.dl_error_message is not None
    assert stored.dl_error_message.startswith("bad byte ")
    assert stored.dl_error_message.endswith(" in field")
    assert stored.body == b"\x00\xff"


async def test_a_resync_counts_the_trail_again_and_tells_open_pages_to_reload(
    store: AuditStore,
) -> None:
    registry = MetricsRegistry("auditor")
    trail = AuditTrail(store, registry)
    await store.record(released("WH/OUT/unheard"))  # stored, never told to this trail

    with trail.feed.listen() as page:
        trail.changed(RESYNC)

        async def rows() -> str:
            return registry.render()[0].decode()

        await eventually(
            rows,
            until=lambda text: 'waybill_audit_rows{kind="event"} 1.0' in text,
            what="the trail counted again",
        )
        assert (await page.get()).kind == "resync"
