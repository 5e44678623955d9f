"""The audit trail in SQLite (the embedded default): recording messages once, orders' stages,
and the reads the API and the control tower make.

Recording is idempotent by message id: a redelivered or replayed message is
recognised and changes nothing. A new message about an order updates the
order's facts and stage in the same transaction as its row, so the two never
disagree after a crash. One file has one writer: one auditor replica.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from waybill_auditor import sqlite_reads as reads
from waybill_auditor.database import (
    AuditDatabaseError,
    Linger,
    SqliteThread,
    Together,
    connect,
    migrate,
)
from waybill_auditor.progress import OrderFacts, merge, settle
from waybill_auditor.records import DEAD_LETTER, KINDS, AuditRecord, StoredMessage
from waybill_auditor.stages import Stage
from waybill_auditor.store import (
    AuditDatabaseBusy,
    OnChange,
    OrderRow,
    OrdersFilter,
    PartnerFigures,
    Purged,
    Recorded,
    StageCount,
    Timeline,
    change_of,
    overdue,
)
from waybill_contracts.envelope import format_time
from waybill_runtime.private_files import private_folder, touch_private

_encode_facts = msgspec.json.Encoder().encode
_decode_facts = msgspec.json.Decoder(OrderFacts).decode


def time_s(moment: datetime) -> float:
    return moment.timestamp()


BY_ORDER = "(order_ref = ? OR (correlation_id = ? AND correlation_id IS NOT order_ref))"
"""A message about an order, by its order or its correlation (both parameters the order's ref).

The second term repeats the correlation index's condition (database.MIGRATIONS, 5) so
SQLite can use that partial index; a row whose correlation id is its order's ref is
found by the first term."""


def _order_of(conn: sqlite3.Connection, order_ref: str) -> OrderRow | None:
    row = conn.execute(
        f"SELECT {reads.ORDER_COLUMNS} FROM orders WHERE order_ref = ?", (order_ref,)
    ).fetchone()
    return reads.order_from_row(row) if row is not None else None


def _messages_of(
    conn: sqlite3.Connection, order_ref: str, dead_letters: bool
) -> list[StoredMessage]:
    kinds = (DEAD_LETTER,) if dead_letters else tuple(k for k in KINDS if k != DEAD_LETTER)
    marks = ", ".join("?" * len(kinds))
    # "+kind" keeps SQLite off the kind index (which would scan every event):
    # the order and correlation indexes find an order's few rows.
    rows = conn.execute(
        f"SELECT {reads.MESSAGE_COLUMNS} FROM messages WHERE +kind IN ({marks}) "
        f"AND {BY_ORDER} ORDER BY time_s, stream_sequence",
        (*kinds, order_ref, order_ref),
    ).fetchall()
    return [reads.message_from_row(row) for row in rows]


class KnownOrder(NamedTuple):
    """An order's stage row as the writer last wrote it (its stage, ``since`` as stored, facts)."""

    stage: Stage
    since: str
    since_at: datetime
    facts: OrderFacts


KNOWN_ORDERS = 4096
"""Orders whose stage row the writer keeps (an order's messages come over minutes, a few
hundred orders at a time in a burst); the oldest kept is forgotten past this."""


Entry = tuple[AuditRecord, datetime]
"""A record to store and when it is recorded (its ``recorded_at_s``)."""

_INSERT = (
    f"INSERT INTO messages ({reads.MESSAGE_COLUMNS}, recorded_at_s) "
    "VALUES (" + ", ".join("?" * 26) + ")"
)
_LETTER_COLUMNS = (
    "original_id",
    "dl_service",
    "dl_consumer",
    "dl_reason",
    "dl_error_type",
    "dl_error_message",
    "dl_attempts",
    "replayed_from",
    "replayed_by",
)
"""The columns only dead letters and replays fill (an :class:`AuditRecord`'s fields of the
same names)."""
_letter_of = operator.attrgetter(*_LETTER_COLUMNS)
_NO_LETTER = (None,) * len(_LETTER_COLUMNS)
_PLAIN_COLUMNS = [c for c in reads.MESSAGE_COLUMNS.split(", ") if c not in _LETTER_COLUMNS]
_INSERT_PLAIN = (
    f"INSERT INTO messages ({', '.join(_PLAIN_COLUMNS)}, recorded_at_s) "
    "VALUES (" + ", ".join("?" * (len(_PLAIN_COLUMNS) + 1)) + ")"
)
"""An event or command as delivered (nearly every row): the nine columns of dead letters and
replays left to their default, NULL. Binding them cost a fifth of the insert (12.7 against
10.3 µs a row in groups of 8, docs/benchmarks.md)."""
_IS_STORED = "SELECT 1 FROM messages WHERE id = ?"
# Lists of refs go to SQLite as one JSON array (one statement, whatever their number).
_READ_ORDERS = (
    "SELECT order_ref, stage, since, facts FROM orders "
    "WHERE order_ref IN (SELECT value FROM json_each(?))"
)
_encode_list = msgspec.json.Encoder().encode
_REPEAT = Recorded(new=False)
_NO_ORDER = Recorded(new=True)


def _record_all(
    conn: sqlite3.Connection,
    entries: Sequence[Entry],
    known: dict[str, KnownOrder] | None = None,
) -> list[Recorded]:
    """Insert each of ``entries`` not stored yet, and update their orders' rows.

    One ``executemany`` inserts the group's events and commands (a message twice in
    the group is stored once), another its dead letters and replays if any; one
    stored already (a redelivery, a replay seen before) is
    found by the insert itself, refused by the primary key (:func:`_insert_new`),
    so a group of new messages asks nothing before inserting. One statement reads
    the orders not kept, and each order's row is written once for all its messages
    in the group (a message's event and the command it causes often come together).
    The writer's transaction makes the inserts and the orders' writes one step:
    nothing else writes the file in between.

    ``known``: the order rows this writer wrote in transactions that committed (kept
    across calls by the caller, dropped by it after any rollback): an order found
    there is not read again.
    """
    results: list[Recorded] = []
    # The rows of each insert, and each row's index in ``results``.
    plain: list[tuple[Any, ...]] = []
    plain_results: list[int] = []
    full: list[tuple[Any, ...]] = []
    full_results: list[int] = []
    seen: set[str] = set()
    for record, at in entries:
        if record.id in seen:
            results.append(_REPEAT)
            continue
        seen.add(record.id)
        if _is_plain(record):
            plain_results.append(len(results))
            plain.append(_plain_row(record, at))
        else:
            full_results.append(len(results))
            full.append(_row(record, at))
        results.append(_NO_ORDER)  # an order's messages: replaced below
    for insert, rows, row_results in (
        (_INSERT_PLAIN, plain, plain_results),
        (_INSERT, full, full_results),
    ):
        for repeated in _insert_new(conn, insert, rows):
            results[row_results[repeated]] = _REPEAT
    by_order: dict[str, list[int]] = {}
    for index, (record, _) in enumerate(entries):
        if record.order_ref is not None and results[index] is _NO_ORDER:
            by_order.setdefault(record.order_ref, []).append(index)
    if not by_order:
        return results
    kept = _orders_of(conn, by_order, known)
    for order_ref, indexes in by_order.items():
        records = [entries[index][0] for index in indexes]
        order = kept.get(order_ref)
        folded = _fold(records, order)
        if not _write_order(conn, order_ref, folded, order):
            # The kept row is gone (deleted by another hand): read it as if never kept.
            order = _orders_of(conn, [order_ref], None).get(order_ref)
            folded = _fold(records, order)
            written = _write_order(conn, order_ref, folded, order)
            assert written  # an insert, or an update of the row just read
        _keep(known, order_ref, folded.order)
        for index, recorded in zip(indexes, folded.recorded, strict=True):
            results[index] = recorded
    return results


def _insert_new(conn: sqlite3.Connection, insert: str, rows: list[tuple[Any, ...]]) -> list[int]:
    """Insert ``rows`` (of distinct ids, each its id first) with ``insert`` but those stored
    already; the positions of those.

    A redelivered message is rare: the insert finds it, where a look-up of the
    group's ids before every insert cost a statement a group (the writer's CPU a
    row, groups of 2 and of 8: 62 and 42 µs with it, 59 and 38 without,
    docs/benchmarks.md). ``executemany`` stops at a row the table refuses, the
    rows before it inserted (SQLite undoes only the refused row's statement): the
    changes counted tell which row it was. Refused for its id (stored already),
    it is skipped and the rest inserted; refused for anything else (a ``CHECK``),
    the error is raised and fails the group as any job's would.
    """
    repeated: list[int] = []
    start = 0
    while start < len(rows):
        before = conn.total_changes
        try:
            conn.executemany(insert, rows[start:] if start else rows)
        except sqlite3.IntegrityError:
            refused = start + conn.total_changes - before
            if conn.execute(_IS_STORED, (rows[refused][0],)).fetchone() is None:
                raise
            repeated.append(refused)
            start = refused + 1
        else:
            break
    return repeated


def _is_plain(record: AuditRecord) -> bool:
    """No column of a dead letter or a replay set: :data:`_INSERT_PLAIN` stores it whole."""
    return bool(_letter_of(record) == _NO_LETTER)


def _delivered(record: AuditRecord) -> tuple[Any, ...]:
    """The columns every row has, up to ``body`` (the first of ``messages``' columns)."""
    return (
        record.id,
        record.kind,
        record.ce_type,
        record.subject,
        record.order_ref,
        record.correlation_id,
        record.causation_id,
        record.source,
        format_time(record.time),
        time_s(record.time),
        record.stream,
        record.stream_sequence,
        record.nats_subject,
        record.body,
    )


def _plain_row(record: AuditRecord, at: datetime) -> tuple[Any, ...]:
    """A plain ``record`` (:func:`_is_plain`) as :data:`_INSERT_PLAIN`'s parameters."""
    return (*_delivered(record), int(record.unconsumed), record.trace_id, time_s(at))


def _row(record: AuditRecord, at: datetime) -> tuple[Any, ...]:
    """``record`` as a row of ``messages`` (:data:`_INSERT`'s parameters)."""
    return (
        *_delivered(record),
        *_letter_of(record),
        int(record.unconsumed),
        record.trace_id,
        time_s(at),
    )


def _orders_of(
    conn: sqlite3.Connection, refs: Iterable[str], known: dict[str, KnownOrder] | None
) -> dict[str, KnownOrder]:
    """The stage rows of ``refs``: those kept from ``known``, the others read in one statement
    (an order with no row is absent)."""
    found: dict[str, KnownOrder] = {}
    unread: list[str] = []
    for order_ref in refs:
        kept = known.get(order_ref) if known is not None else None
        if kept is None:
            unread.append(order_ref)
        else:
            found[order_ref] = kept
    if unread:
        for row in conn.execute(_READ_ORDERS, (_encode_list(unread),)):
            found[row["order_ref"]] = KnownOrder(
                Stage(row["stage"]),
                row["since"],
                reads.parse_time(row["since"]),
                _decode_facts(row["facts"]),
            )
    return found


class _Folded(NamedTuple):
    """An order's row after some of its messages, and what each of them did."""

    order: KnownOrder
    recorded: list[Recorded]
    messages: int
    dead_letters: int
    last_seen_s: float


def _fold(records: Sequence[AuditRecord], stored: KnownOrder | None) -> _Folded:
    """The order's row after ``records``, in order (``stored``: as it is, None when none)."""
    current = stored
    recorded: list[Recorded] = []
    dead_letters = 0
    last_seen_s = float("-inf")
    for record in records:
        if current is None:
            before, before_since, facts = None, None, OrderFacts()
        else:
            before, before_since, facts = current.stage, current.since_at, current.facts
        facts = merge(facts, record.observation)
        stage, since = settle(before, before_since, facts)
        since = since or record.time
        since_text = (
            current.since if current is not None and since == before_since else format_time(since)
        )
        current = KnownOrder(stage, since_text, since, facts)
        recorded.append(Recorded(new=True, stage_before=before, stage_after=stage))
        dead_letters += record.kind == DEAD_LETTER
        last_seen_s = max(last_seen_s, time_s(record.time))
    assert current is not None  # at least one record
    return _Folded(current, recorded, len(records) - dead_letters, dead_letters, last_seen_s)


def _write_order(
    conn: sqlite3.Connection, order_ref: str, folded: _Folded, stored: KnownOrder | None
) -> bool:
    """Write the order's row as ``folded`` left it; False when an update found no row."""
    order = folded.order
    counts = (folded.messages, folded.dead_letters, folded.last_seen_s)
    encoded = _encode_facts(order.facts)
    if stored is None:
        conn.execute(
            _NEW_ORDER,
            (order_ref, order.stage.value, order.since, time_s(order.since_at), encoded, *counts),
        )
        return True
    if order.stage == stored.stage and order.since == stored.since:
        # About half of an order's messages do not move it (a notification, a command
        # after its event, a milestone in transit): the stage and its two indexes are
        # left alone, only the facts and the counts change.
        return bool(conn.execute(_SAME_STAGE, (encoded, *counts, order_ref)).rowcount)
    return bool(
        conn.execute(
            _NEW_STAGE,
            (order.stage.value, order.since, time_s(order.since_at), encoded, *counts, order_ref),
        ).rowcount
    )


def _keep(known: dict[str, KnownOrder] | None, order_ref: str, order: KnownOrder) -> None:
    if known is None:
        return
    if order_ref not in known and len(known) >= KNOWN_ORDERS:
        del known[next(iter(known))]
    known[order_ref] = order


_NEW_ORDER = (
    "INSERT INTO orders (order_ref, stage, since, since_s, facts, messages, dead_letters, "
    "last_seen_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    # Another writer on the file (a second auditor, which the file does not support, or a
    # restore) may have made the row since it was read: add to it rather than fail.
    "ON CONFLICT (order_ref) DO UPDATE SET stage = excluded.stage, since = excluded.since, "
    "since_s = excluded.since_s, facts = excluded.facts, "
    "messages = messages + excluded.messages, "
    "dead_letters = dead_letters + excluded.dead_letters, "
    "last_seen_s = max(last_seen_s, excluded.last_seen_s)"
)
_COUNTS = (
    "facts = ?, messages = messages + ?, dead_letters = dead_letters + ?, "
    "last_seen_s = max(last_seen_s, ?)"
)
_SAME_STAGE = f"UPDATE orders SET {_COUNTS} WHERE order_ref = ?"
_NEW_STAGE = f"UPDATE orders SET stage = ?, since = ?, since_s = ?, {_COUNTS} WHERE order_ref = ?"


LINGER_S = 0.02
"""Longest a group of audit rows waits for more while rows keep coming (its messages' acks
wait as long). In an in-process harness at the stack's pace (a row every 2.5 ms), 10 ms
made groups of 3.8 rows, 20 ms 6.6, 40 ms 12 (docs/benchmarks.md)."""
BUSY_S = 0.1
"""A group begun within this long of the last one's end lingers; after a quiet spell the
first row is committed at once."""


def linger_for(consumer_concurrency: int) -> Linger:
    """The writer's linger for consumers handling ``consumer_concurrency`` messages at once.

    A group stops waiting once it holds as many rows as one consumer handles at a
    time: replaying a backlog (every slot waiting on the writer) never waits, and a
    setting of few slots does not cap the trail at slots per ``LINGER_S``.
    """
    return Linger(wait_s=LINGER_S, rows=max(1, consumer_concurrency), busy_s=BUSY_S)


PURGE_BATCH = 5000
"""Rows deleted per write while purging, so recording never waits long behind it."""


class SqliteAuditStore:
    """The audit database of one auditor in one file: a writer thread and a reader thread."""

    def __init__(
        self,
        path: Path,
        *,
        on_change: OnChange | None = None,
        sync_always: bool = False,
        linger: Linger | None = None,
    ) -> None:
        """``linger``: how the writer waits for more rows per commit while rows keep
        coming (:func:`linger_for`); None commits each group as soon as it is taken."""
        self.path = path
        self._sync_always = sync_always
        self.location = str(path)
        self._on_change = on_change
        self._writer = SqliteThread(
            self._open_writer, name="audit-writer", writer=True, linger=linger
        )
        # The orders' rows as the writer last committed them (read and written in the
        # writer's thread only): an order's next message does not read its row again.
        self._known: dict[str, KnownOrder] = {}
        self._known_at_rollbacks = 0
        self._reader = SqliteThread(self._open_reader, name="audit-reader", writer=False)

    def _open_writer(self) -> sqlite3.Connection:
        try:
            # Customers' data: readable by the auditor's user only (SQLite gives its
            # journal and WAL files the database's permissions).
            private_folder(self.path.parent, tighten=False)
            touch_private(self.path)
            for companion in ("-wal", "-shm", "-journal"):
                left = self.path.with_name(self.path.name + companion)
                if left.exists():
                    touch_private(left)
            conn = connect(self.path, sync_always=self._sync_always)
        except (OSError, sqlite3.Error) as error:
            raise AuditDatabaseError(
                f"the audit database {self.path} cannot be opened ({error}): set "
                "WAYBILL_AUDIT_DB (or WAYBILL_STATE_DIR) to a writable place"
            ) from None
        conn.row_factory = sqlite3.Row
        try:
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_reader(self) -> sqlite3.Connection:
        conn = connect(self.path, read_only=True)
        conn.row_factory = sqlite3.Row
        return conn

    async def open(self) -> None:
        """Create or migrate the database, then open the reader."""
        await self._writer.start()
        try:
            await self._reader.start()
        except BaseException:
            await self._writer.stop()
            raise

    async def close(self) -> None:
        """Finish queued work and close both connections."""
        await self._reader.stop()
        await self._writer.stop()

    # -- writing ---------------------------------------------------------------

    async def record(self, record: AuditRecord, *, now: datetime | None = None) -> Recorded:
        """Store ``record`` unless its id is stored already; update its order's stage."""
        entry: Entry = (record, now or datetime.now(UTC))
        try:
            recorded: Recorded = await self._writer.run(Together(self._write_records, entry))
        except sqlite3.Error as error:
            raise AuditDatabaseBusy(f"the audit database refused the write: {error}") from error
        if recorded.new and self._on_change is not None:
            self._on_change(change_of(record, recorded))
        return recorded

    def _write_records(self, conn: sqlite3.Connection, entries: list[Entry]) -> list[Recorded]:
        """In the writer's thread: the records queued side by side, written together."""
        return _record_all(conn, entries, self._known_orders())

    def _known_orders(self) -> dict[str, KnownOrder]:
        """The orders' rows kept, in the writer's thread; none kept past a rollback.

        A rolled-back transaction may have changed rows kept here (its jobs are run
        again, each alone, and read the rows afresh).
        """
        rollbacks = self._writer.rollbacks
        if rollbacks != self._known_at_rollbacks:
            self._known.clear()
            self._known_at_rollbacks = rollbacks
        return self._known

    async def purge(self, *, before: datetime) -> Purged:
        """Delete what is older than ``before``, in batches (each its own write)."""
        before_s = before.timestamp()
        deleted = {"messages": 0, "orders": 0}
        for table, column in (("messages", "time_s"), ("orders", "last_seen_s")):
            while True:

                def job(conn: sqlite3.Connection, table: str = table, column: str = column) -> int:
                    self._known.clear()  # the orders deleted are not kept
                    return int(
                        conn.execute(
                            f"DELETE FROM {table} WHERE rowid IN "
                            f"(SELECT rowid FROM {table} WHERE {column} < ? LIMIT ?)",
                            (before_s, PURGE_BATCH),
                        ).rowcount
                    )

                count = await self._writer.run(job)
                deleted[table] += count
                if count < PURGE_BATCH:
                    break
        return Purged(**deleted)

    async def heartbeat(self) -> None:
        """Write one row: proves the database takes writes now."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO heartbeat (id, at_s) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET at_s = excluded.at_s",
                (datetime.now(UTC).timestamp(),),
            )

        await self._writer.run(job)

    # -- reading ---------------------------------------------------------------

    async def order(self, order_ref: str) -> OrderRow | None:
        """The order's stage row, or None if no message about it was recorded."""

        return await self._reader.run(lambda conn: _order_of(conn, order_ref))

    async def messages_of(self, order_ref: str, *, dead_letters: bool) -> list[StoredMessage]:
        """Events and commands (or dead letters) about ``order_ref`` by order or correlation."""
        return await self._reader.run(lambda conn: _messages_of(conn, order_ref, dead_letters))

    async def timeline(self, order_ref: str) -> Timeline:
        """The order's row, messages and dead letters, read together (one snapshot)."""

        def job(conn: sqlite3.Connection) -> Timeline:
            return (
                _order_of(conn, order_ref),
                _messages_of(conn, order_ref, False),
                _messages_of(conn, order_ref, True),
            )

        return await self._reader.run(job)

    async def orders(
        self, chosen: OrdersFilter, *, deadlines: Mapping[Stage, float], now: datetime
    ) -> list[OrderRow]:
        """Orders oldest-in-stage first; up to ``limit + 1`` so the caller sees if more exist."""
        clauses: list[str] = []
        params: list[Any] = []
        if chosen.stages:
            clauses.append(f"stage IN ({', '.join('?' * len(chosen.stages))})")
            params.extend(stage.value for stage in chosen.stages)
        if chosen.stuck_only:
            late = overdue(chosen, deadlines, now)
            if not late:
                return []
            clauses.append("(" + " OR ".join("(stage = ? AND since_s < ?)" for _ in late) + ")")
            for stage, before in late:
                params.extend((stage.value, before))
        if chosen.after is not None:
            clauses.append("(since_s, order_ref) > (?, ?)")
            params.extend((time_s(chosen.after[0]), chosen.after[1]))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = (
            f"SELECT {reads.ORDER_COLUMNS} FROM orders {where} ORDER BY since_s, order_ref LIMIT ?"
        )
        params.append(chosen.limit + 1)

        def job(conn: sqlite3.Connection) -> list[OrderRow]:
            return [reads.order_from_row(row) for row in conn.execute(sql, params).fetchall()]

        return await self._reader.run(job)

    async def dead_letters(
        self,
        *,
        service: str | None = None,
        order_ref: str | None = None,
        before_sequence: int | None = None,
        limit: int = 100,
    ) -> list[StoredMessage]:
        """Dead letters, newest first; up to ``limit + 1`` so the caller sees if more exist."""
        # The kind written out: SQLite uses the dead letters' partial index
        # (database.MIGRATIONS, 6) only for a condition it can read in the query.
        clauses = [f"kind = '{DEAD_LETTER}'"]
        params: list[Any] = []
        for clause, value in (
            ("dl_service = ?", service),
            (BY_ORDER, order_ref),
            ("stream_sequence < ?", before_sequence),
        ):
            if value is not None:
                clauses.append(clause)
                params.extend([value] * clause.count("?"))
        sql = (
            f"SELECT {reads.MESSAGE_COLUMNS} FROM messages WHERE {' AND '.join(clauses)} "
            "ORDER BY stream_sequence DESC LIMIT ?"
        )
        params.append(limit + 1)

        def job(conn: sqlite3.Connection) -> list[StoredMessage]:
            return [reads.message_from_row(row) for row in conn.execute(sql, params).fetchall()]

        return await self._reader.run(job)

    async def counts(self) -> tuple[dict[str, int], dict[Stage, int]]:
        """Rows stored per kind, and orders per stage (for the metrics at start)."""

        def job(conn: sqlite3.Connection) -> tuple[dict[str, int], dict[Stage, int]]:
            # Two scans of indexes (GROUP BY kind would sort every row's entry): the
            # time index, which holds each row's kind, and the dead letters' own.
            total, commands = conn.execute(
                "SELECT count(*), coalesce(sum(kind = 'command'), 0) "
                "FROM messages INDEXED BY messages_by_time"
            ).fetchone()
            dead_letters = conn.execute(
                "SELECT count(*) FROM messages INDEXED BY messages_dead_letters "
                f"WHERE kind = '{DEAD_LETTER}'"
            ).fetchone()[0]
            kinds = {
                "event": int(total) - int(dead_letters) - int(commands),
                "command": int(commands),
                DEAD_LETTER: int(dead_letters),
            }
            stages = {
                Stage(row[0]): int(row[1])
                for row in conn.execute("SELECT stage, count(*) FROM orders GROUP BY stage")
            }
            return {kind: kinds.get(kind, 0) for kind in KINDS}, stages

        return await self._reader.run(job)

    # -- the control tower's figures (sqlite_reads) ------------------------------

    async def stage_counts(self) -> list[StageCount]:
        """Orders per stage with the oldest ``since``, in the stages' order."""
        return await self._reader.run(reads.stage_counts)

    async def counts_by_type(self, types: Sequence[str], *, since: datetime) -> dict[str, int]:
        """Events and commands of each of ``types`` sent since ``since`` (by ``ce-time``)."""
        return await self._reader.run(lambda conn: reads.counts_by_type(conn, types, since))

    async def partner_figures(
        self,
        *,
        commands: Sequence[str],
        failures: Sequence[str],
        source: str,
        service: str,
        since: datetime,
    ) -> PartnerFigures:
        """What one service was asked (``commands``) and answered (events from ``source``)."""
        return await self._reader.run(
            lambda conn: reads.partner_figures(
                conn,
                commands=commands,
                failures=failures,
                source=source,
                service=service,
                since=since,
            )
        )

    async def search_orders(
        self, text: str, *, body_needles: Sequence[bytes], limit: int
    ) -> list[OrderRow]:
        """Orders whose ref contains ``text`` or one of whose bodies holds a needle."""
        return await self._reader.run(
            lambda conn: reads.search_orders(conn, text, body_needles, limit)
        )

    async def latest_per_subject(self, ce_type: str) -> list[StoredMessage]:
        """The newest event of ``ce_type`` for each of its subjects (business keys)."""
        return await self._reader.run(lambda conn: reads.latest_per_subject(conn, ce_type))

    async def troubles_of(self, refs: Sequence[str], *, exception_type: str) -> list[StoredMessage]:
        """The dead letters and ``exception_type`` events of ``refs``, newest first."""
        if not refs:
            return []
        return await self._reader.run(lambda conn: reads.troubles_of(conn, refs, exception_type))
