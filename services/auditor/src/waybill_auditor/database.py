"""SQLite from asyncio: one thread per connection, jobs in order, writes committed in groups.

sqlite3 blocks, and a connection belongs to the thread that opened it. Each
:class:`SqliteThread` owns one connection in one thread and runs the jobs
given to it one after the other, so the auditor's read-modify-write of an
order never races another. The writer takes every job queued while it was
busy into one transaction: one commit per group instead of one per message,
which is what lets a single writer keep up with a busy bus; while jobs keep
coming, a :class:`Linger` lets a group wait a few milliseconds for more (a
steady flow of rows a few milliseconds apart otherwise commits each alone).
A job that fails must not undo the others written with it: the group is then rolled back and
each of its jobs run again in a transaction of its own (jobs are SQL only, so
running one again after a rollback is running it once). Jobs nearly never
fail, so a group costs no statements but its jobs' own, its ``BEGIN`` and its
``COMMIT`` (a savepoint and its release around each job cost 12 to 17 µs of a
row's 200 to 300 µs in the writer, docs/benchmarks.md). Jobs of one kind
queued side by side (:class:`Together`, the audit rows) are written by one
call: their statements shared (one ``executemany``), one row per order.

The schema is created and migrated when the writer opens the database; its
version is kept in ``schema_version``. A database written by a newer auditor
is refused rather than misread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from waybill_auditor.store import PER_SUBJECT_TYPES, AuditDatabaseError

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AuditDatabaseError",
    "Linger",
    "SqliteThread",
    "Together",
    "connect",
    "migrate",
]

log = logging.getLogger("waybill.auditor")

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]

BUSY_TIMEOUT_S = 10.0
# How many queued jobs one transaction takes at most: bounds the work lost to
# (and redone after) one failed commit.
MAX_GROUP = 512

PER_SUBJECT = "ce_type IN ({})".format(", ".join(f"'{t}'" for t in sorted(PER_SUBJECT_TYPES)))
"""The condition of the index by type and subject (schema 7). SQLite uses a partial index
only for a query that states its condition: the reads by type and subject state this one."""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the audit trail, orders' stages, the readiness heartbeat.
    (
        """
        CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('event', 'command', 'dead_letter')),
            ce_type TEXT NOT NULL,
            subject TEXT NOT NULL,
            order_ref TEXT,
            correlation_id TEXT,
            causation_id TEXT,
            source TEXT NOT NULL,
            time TEXT NOT NULL,
            time_s REAL NOT NULL,
            stream TEXT NOT NULL,
            stream_sequence INTEGER NOT NULL,
            nats_subject TEXT NOT NULL,
            body BLOB NOT NULL,
            original_id TEXT,
            dl_service TEXT,
            dl_consumer TEXT,
            dl_reason TEXT,
            dl_error_type TEXT,
            dl_error_message TEXT,
            dl_attempts INTEGER,
            recorded_at_s REAL NOT NULL
        )
        """,
        "CREATE INDEX messages_by_order ON messages (order_ref) WHERE order_ref IS NOT NULL",
        "CREATE INDEX messages_by_correlation ON messages (correlation_id)",
        "CREATE INDEX messages_by_kind ON messages (kind, stream_sequence)",
        """
        CREATE TABLE orders (
            order_ref TEXT PRIMARY KEY,
            stage TEXT NOT NULL,
            since TEXT NOT NULL,
            since_s REAL NOT NULL,
            facts BLOB NOT NULL,
            messages INTEGER NOT NULL DEFAULT 0,
            dead_letters INTEGER NOT NULL DEFAULT 0,
            last_seen_s REAL NOT NULL
        )
        """,
        "CREATE INDEX orders_by_since ON orders (since_s, order_ref)",
        "CREATE INDEX orders_by_stage ON orders (stage, since_s, order_ref)",
        "CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at_s REAL NOT NULL)",
    ),
    # 2: replays (which dead letter, by whom) and messages no installed service consumes.
    (
        "ALTER TABLE messages ADD COLUMN replayed_from INTEGER",
        "ALTER TABLE messages ADD COLUMN replayed_by TEXT",
        "ALTER TABLE messages ADD COLUMN unconsumed INTEGER NOT NULL DEFAULT 0",
    ),
    # 3: the trace each message belongs to (the control tower links to it), and reads by time
    # (the control tower's throughput and partner figures over the last hour).
    (
        "ALTER TABLE messages ADD COLUMN trace_id TEXT",
        "CREATE INDEX messages_by_time ON messages (time_s)",
    ),
    # 4: the latest message of a type per ce-subject (the control tower's circuit breakers).
    ("CREATE INDEX messages_by_type ON messages (ce_type, subject, stream_sequence)",),
    # 5: a message's correlation id is indexed only where it is not its order's ref. An
    # order's messages nearly all carry the order's ref as both, and the order index
    # finds those already (docs/benchmarks.md: one index entry and page fewer per row).
    # Reads ask "order_ref = ? OR (correlation_id = ? AND correlation_id IS NOT order_ref)"
    # (sqlite_store.BY_ORDER), the same rows as "order_ref = ? OR correlation_id = ?".
    (
        "DROP INDEX messages_by_correlation",
        "CREATE INDEX messages_by_other_correlation ON messages (correlation_id) "
        "WHERE correlation_id IS NOT order_ref",
    ),
    # 6: one index fewer per row. The kind index (kind, stream_sequence) took an entry for
    # every event and command, where only dead letters are read by kind in stream order
    # (the dead-letter pages): they have a partial index of their own, and the kind
    # joins the time index, which still answers the count per kind at start (a scan of
    # an index, not of the rows) and the control tower's figures by time and kind.
    (
        "DROP INDEX messages_by_kind",
        "CREATE INDEX messages_dead_letters ON messages (stream_sequence) "
        "WHERE kind = 'dead_letter'",
        "DROP INDEX messages_by_time",
        "CREATE INDEX messages_by_time ON messages (time_s, kind)",
    ),
    # 7: the index by type and subject holds only the types read per subject (breakers,
    # stock, product syncs, returns: sqlite_reads.latest_per_subject). It took an entry
    # for every row, most in a leaf page of their own (the subject is an order's or a
    # shipment's): 3.37 pages written to the log a row, 2.52 without it
    # (docs/benchmarks.md).
    (
        "DROP INDEX messages_by_type",
        "CREATE INDEX messages_by_type ON messages (ce_type, subject, stream_sequence) "
        f"WHERE {PER_SUBJECT}",
    ),
)
"""Schema steps; step ``n`` (1-based) takes a database from version ``n - 1`` to ``n``."""

SCHEMA_VERSION = len(MIGRATIONS)


def _schema_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: sqlite3.Connection, migrations: Sequence[Sequence[str]] = MIGRATIONS) -> int:
    """Bring the schema to the newest version, one transaction per step; returns the version."""
    current = _schema_version(conn)
    if current > len(migrations):
        raise AuditDatabaseError(
            f"the audit database has schema version {current}, newer than this auditor's "
            f"{len(migrations)}: run a newer auditor or point WAYBILL_AUDIT_DB at another file"
        )
    for version in range(current + 1, len(migrations) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Two auditors opening one file read the same version above; the write lock
            # taken here is what orders them, so the step is decided again under it.
            if _schema_version(conn) >= version:
                conn.execute("ROLLBACK")
                continue
            for statement in migrations[version - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("audit database migrated to schema version %d", version)
    return len(migrations)


def connect(
    path: Path, *, read_only: bool = False, sync_always: bool = False
) -> sqlite3.Connection:
    """A connection to the audit database at ``path`` in WAL mode, transactions by hand.

    ``sync_always``: every commit waits for the disk (``synchronous = FULL``).
    Without it (``NORMAL``) a commit is in the write-ahead log, handed to the
    operating system, before it returns: it survives the auditor's crash or
    kill, and only the disk syncs at checkpoints keep the file whole. What a
    power loss or a kernel crash of the host may take is the last commits, the
    same as nats-server's own default (it syncs its streams every two minutes,
    not every write; ``waybill up --sync-always`` is its ``FULL``). The
    per-commit sync was about a fifth of the auditor's CPU (docs/benchmarks.md).
    """
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        if read_only:
            conn.execute("PRAGMA query_only = ON")
        else:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise AuditDatabaseError(
                    f"the audit database {path} cannot use write-ahead logging (mode {mode}): "
                    "put it on a local file system"
                )
        # An audit row is acknowledged on the bus once committed: in WAL mode NORMAL keeps it
        # through a crash of the process, FULL through a power loss too (see above).
        conn.execute(f"PRAGMA synchronous = {'FULL' if sync_always else 'NORMAL'}")
    except BaseException:
        conn.close()
        raise
    return conn


@dataclass(frozen=True, slots=True)
class Together:
    """A job written with the jobs of the same ``write`` queued beside it, in one call.

    ``write`` takes the connection and those jobs' items, in the order queued, and
    returns one result per item. Audit rows come in groups (a commit takes every row
    queued meanwhile): one call shares their statements, where a job per row paid
    a statement lookup and a cursor for each and wrote its order's row once per row.
    A ``write`` that raises fails the group like any job: each is written again alone,
    a call with its item only.
    """

    write: Callable[[sqlite3.Connection, list[Any]], list[Any]]
    item: Any


Queued = Job | Together


class _Waiting:
    """A queued job and the future its caller awaits, in the caller's loop."""

    __slots__ = ("done", "job", "loop")

    def __init__(self, job: Queued, loop: asyncio.AbstractEventLoop) -> None:
        self.job = job
        self.loop = loop
        self.done: asyncio.Future[Any] = loop.create_future()


@dataclass(frozen=True)
class Linger:
    """How a writer waits for more jobs before committing a group, while jobs keep coming.

    A commit's cost is mostly its own, not its rows' (writing each touched page
    to the write-ahead log: 150 µs for one audit row against 47 µs a row in a
    group of sixteen, docs/benchmarks.md), and at the stack's pace rows come a
    few milliseconds apart: each was a commit of its own. While the writer is busy (its last
    group ended less than ``busy_s`` ago) a new group waits up to ``wait_s`` for
    ``rows`` jobs; a job arriving after a quiet spell is committed at once.
    """

    wait_s: float
    rows: int
    busy_s: float


Outcome = tuple[asyncio.Future[Any], bool, Any]
"""A job's future, whether the job succeeded, and its result or error."""


def _settle(outcomes: list[Outcome]) -> None:
    """In the caller's loop: hand each job's result or error to its caller."""
    for done, ok, value in outcomes:
        if done.done():  # the caller gave up waiting (cancelled)
            continue
        if ok:
            done.set_result(value)
        else:
            done.set_exception(value)


class SqliteThread:
    """One connection in one thread; ``run`` hands it a job and awaits the result.

    The results of a group go back to the event loop in one call: one wake-up
    of the loop per transaction, not one per job (a job's own future, chained
    to an asyncio one, cost the loop a wake-up and two futures per message).
    """

    def __init__(
        self,
        open_connection: Callable[[], sqlite3.Connection],
        *,
        name: str,
        writer: bool,
        linger: Linger | None = None,
    ) -> None:
        self._open = open_connection
        self._name = name
        self._writer = writer
        self._linger = linger
        self._last_group_at = float("-inf")
        self._jobs: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self.rollbacks = 0
        """Transactions rolled back so far (read in the thread: what a job kept may be gone)."""
        # While the writer lingers: how many more jobs it waits for, and its wake-up.
        self._lingering = False
        self._wanted = 0
        self._enough = threading.Event()
        self._thread: threading.Thread | None = None
        # Set by the thread while it serves: asking a thread whether it is alive takes
        # its lock, once a job (0.2 µs of a message).
        self._serving = False

    async def start(self) -> None:
        """Open the connection in the thread; raises what opening raised."""
        opened: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._serve, args=(opened,), name=self._name, daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(opened)

    async def run(self, job: Callable[[sqlite3.Connection], T] | Together) -> T:
        """Run ``job`` with the connection, inside a transaction, and return its result."""
        if not self._serving:
            raise RuntimeError(f"{self._name} is not running")
        waiting = _Waiting(job, asyncio.get_running_loop())
        self._jobs.put(waiting)
        if self._lingering and self._jobs.qsize() >= self._wanted:
            self._enough.set()
        result: T = await waiting.done
        return result

    async def stop(self) -> None:
        """Finish the queued jobs, close the connection, end the thread."""
        if self._thread is None:
            return
        self._jobs.put(None)
        self._enough.set()  # a lingering group is committed now
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    # -- in the thread ---------------------------------------------------------

    def _serve(self, opened: Future[None]) -> None:
        try:
            conn = self._open()
        except BaseException as error:
            opened.set_exception(error)
            return
        self._serving = True
        opened.set_result(None)
        try:
            stopping = False
            while not stopping:
                first = self._jobs.get()
                if first is None:
                    break
                group = [first]
                stopping = self._gather(group)
                self._answer(self._run_group(conn, group))
                self._last_group_at = time.monotonic()
        finally:
            self._serving = False
            conn.close()

    def _gather(self, group: list[_Waiting]) -> bool:
        """Add the jobs queued behind ``group``'s first; True when told to stop.

        With a :class:`Linger`, a group begun while jobs keep coming (the last group
        ended moments ago) waits up to ``linger.wait_s`` for ``linger.rows`` jobs. The
        thread sleeps through the wait: :meth:`run` wakes it once the rows are queued
        (a wake-up per job, to count them, was a tenth of a row's cost).
        """
        stopping = self._drain(group)
        linger = self._linger
        if stopping or linger is None or len(group) >= min(linger.rows, MAX_GROUP):
            return stopping
        if time.monotonic() - self._last_group_at >= linger.busy_s:
            return False
        self._wanted = linger.rows - len(group)
        self._enough.clear()
        self._lingering = True
        try:
            # A job queued before the flag was up was not told: counted here.
            if self._jobs.qsize() < self._wanted:
                self._enough.wait(linger.wait_s)
        finally:
            self._lingering = False
        return self._drain(group)

    def _drain(self, group: list[_Waiting]) -> bool:
        """Add the jobs queued now to ``group``; True when told to stop."""
        while len(group) < MAX_GROUP:
            try:
                more = self._jobs.get_nowait()
            except queue.Empty:
                return False
            if more is None:
                return True
            group.append(more)
        return False

    @staticmethod
    def _answer(outcomes: list[tuple[_Waiting, bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
        for waiting, ok, value in outcomes:
            by_loop.setdefault(waiting.loop, []).append((waiting.done, ok, value))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, settled)

    def _run_group(
        self, conn: sqlite3.Connection, group: list[_Waiting]
    ) -> list[tuple[_Waiting, bool, Any]]:
        # A caller that gave up waiting before its job started: the job is not run.
        # (Read from this thread, the flag may be a moment late: the job then runs,
        # as it would have had the caller given up a moment later.)
        live = [waiting for waiting in group if not waiting.done.cancelled()]
        if not live:
            return []
        try:
            values = self._transaction(conn, [waiting.job for waiting in live])
        except _JobFailed:
            # One job failed: none of the group is stored. Each runs again alone,
            # so the failure is its own and the others are written.
            return [self._run_alone(conn, waiting) for waiting in live]
        except Exception as error:
            # Nothing of this group is stored (the commit failed): every job fails with it.
            return [(waiting, False, error) for waiting in live]
        return [(waiting, True, value) for waiting, value in zip(live, values, strict=True)]

    def _run_alone(self, conn: sqlite3.Connection, waiting: _Waiting) -> tuple[_Waiting, bool, Any]:
        try:
            [value] = self._transaction(conn, [waiting.job])
        except _JobFailed as failed:
            return waiting, False, failed.error
        except Exception as error:
            return waiting, False, error
        return waiting, True, value

    def _transaction(self, conn: sqlite3.Connection, jobs: list[Queued]) -> list[Any]:
        """Run ``jobs`` in one transaction and commit it; rolled back if anything fails.

        :class:`_JobFailed` when a job raised (with its error), else what failed.
        """
        conn.execute("BEGIN IMMEDIATE" if self._writer else "BEGIN")
        try:
            outcomes: list[Any] = []
            start = 0
            while start < len(jobs):
                job = jobs[start]
                end = start + 1
                try:
                    if isinstance(job, Together):
                        while (
                            end < len(jobs)
                            and isinstance(after := jobs[end], Together)
                            and after.write == job.write
                        ):
                            end += 1
                        items = [cast(Together, queued).item for queued in jobs[start:end]]
                        results = job.write(conn, items)
                        if len(results) != len(items):
                            raise RuntimeError(f"{len(results)} results for {len(items)} jobs")
                        outcomes.extend(results)
                    else:
                        outcomes.append(job(conn))
                except Exception as error:
                    raise _JobFailed(error) from error
                start = end
            conn.execute("COMMIT")
        except Exception:
            self.rollbacks += 1
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return outcomes


class _JobFailed(Exception):
    """A job of a transaction raised ``error`` (the transaction is rolled back)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error
