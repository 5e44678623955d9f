"""The audit trail in SQLite (the embedded default): recording messages once, orders' stages,
and the reads the API and the control tower make.

Recording is idempotent by message id: a redelivered or replayed message is
recognised and changes nothing. A new message about an order updates the
order's facts and stage in the same transaction as its row, so the two never
disagree after a crash. One file has one writer: one auditor replica.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from waybill_auditor.database import AuditDatabaseError, SqliteThread, connect, migrate
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

T = TypeVar("T")

_encode_facts = msgspec.json.Encoder().encode
_decode_facts = msgspec.json.Decoder(OrderFacts).decode

MESSAGE_COLUMNS = (
    "id, kind, ce_type, subject, order_ref, correlation_id, causation_id, source, time, time_s, "
    "stream, stream_sequence, nats_subject, body, original_id, dl_service, dl_consumer, "
    "dl_reason, dl_error_type, dl_error_message, dl_attempts, replayed_from, replayed_by, "
    "unconsumed, trace_id"
)
ORDER_COLUMNS = "order_ref, stage, since, messages, dead_letters, last_seen_s"


def _time_s(moment: datetime) -> float:
    return moment.timestamp()


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def message_from_row(row: sqlite3.Row) -> StoredMessage:
    values: dict[str, Any] = dict(row)
    values.pop("time_s", None)
    values["time"] = _parse_time(values["time"])
    values["unconsumed"] = bool(values["unconsumed"])
    return StoredMessage(**values)


def order_from_row(row: sqlite3.Row) -> OrderRow:
    return OrderRow(
        order_ref=row["order_ref"],
        stage=Stage(row["stage"]),
        since=_parse_time(row["since"]),
        messages=row["messages"],
        dead_letters=row["dead_letters"],
        last_seen=datetime.fromtimestamp(row["last_seen_s"], UTC),
    )


def _order_of(conn: sqlite3.Connection, order_ref: str) -> OrderRow | None:
    row = conn.execute(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_ref = ?", (order_ref,)
    ).fetchone()
    return order_from_row(row) if row is not None else None


def _messages_of(
    conn: sqlite3.Connection, order_ref: str, dead_letters: bool
) -> list[StoredMessage]:
    kinds = (DEAD_LETTER,) if dead_letters else tuple(k for k in KINDS if k != DEAD_LETTER)
    marks = ", ".join("?" * len(kinds))
    # "+kind" keeps SQLite off the kind index (which would scan every event):
    # the order and correlation indexes find an order's few rows.
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE +kind IN ({marks}) "
        "AND (order_ref = ? OR correlation_id = ?) ORDER BY time_s, stream_sequence",
        (*kinds, order_ref, order_ref),
    ).fetchall()
    return [message_from_row(row) for row in rows]


def _record(conn: sqlite3.Connection, record: AuditRecord, now: datetime) -> Recorded:
    inserted = conn.execute(
        f"INSERT INTO messages ({MESSAGE_COLUMNS}, recorded_at_s) "
        "VALUES (" + ", ".join("?" * 26) + ") ON CONFLICT (id) DO NOTHING",
        (
            record.id,
            record.kind,
            record.ce_type,
            record.subject,
            record.order_ref,
            record.correlation_id,
            record.causation_id,
            record.source,
            format_time(record.time),
            _time_s(record.time),
            record.stream,
            record.stream_sequence,
            record.nats_subject,
            record.body,
            record.original_id,
            record.dl_service,
            record.dl_consumer,
            record.dl_reason,
            record.dl_error_type,
            record.dl_error_message,
            record.dl_attempts,
            record.replayed_from,
            record.replayed_by,
            int(record.unconsumed),
            record.trace_id,
            _time_s(now),
        ),
    ).rowcount
    if not inserted:
        return Recorded(new=False)
    if record.order_ref is None:
        return Recorded(new=True)
    return _update_order(conn, record)


def _update_order(conn: sqlite3.Connection, record: AuditRecord) -> Recorded:
    assert record.order_ref is not None
    row = conn.execute(
        "SELECT stage, since, facts FROM orders WHERE order_ref = ?", (record.order_ref,)
    ).fetchone()
    if row is None:
        before, before_since, facts = None, None, OrderFacts()
    else:
        before, before_since = Stage(row["stage"]), _parse_time(row["since"])
        facts = _decode_facts(row["facts"])
    facts = merge(facts, record.observation)
    stage, since = settle(before, before_since, facts)
    since = since or record.time
    is_dead_letter = record.kind == DEAD_LETTER
    conn.execute(
        "INSERT INTO orders (order_ref, stage, since, since_s, facts, messages, dead_letters, "
        "last_seen_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (order_ref) DO UPDATE SET stage = excluded.stage, since = excluded.since, "
        "since_s = excluded.since_s, facts = excluded.facts, "
        "messages = messages + excluded.messages, "
        "dead_letters = dead_letters + excluded.dead_letters, "
        "last_seen_s = max(last_seen_s, excluded.last_seen_s)",
        (
            record.order_ref,
            stage.value,
            format_time(since),
            _time_s(since),
            _encode_facts(facts),
            0 if is_dead_letter else 1,
            1 if is_dead_letter else 0,
            _time_s(record.time),
        ),
    )
    return Recorded(new=True, stage_before=before, stage_after=stage)


PURGE_BATCH = 5000
"""Rows deleted per write while purging, so recording never waits long behind it."""


class SqliteAuditStore:
    """The audit database of one auditor in one file: a writer thread and a reader thread."""

    def __init__(self, path: Path, *, on_change: OnChange | None = None) -> None:
        self.path = path
        self.location = str(path)
        self._on_change = on_change
        self._writer = SqliteThread(self._open_writer, name="audit-writer", writer=True)
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
            conn = connect(self.path)
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
        at = now or datetime.now(UTC)

        def job(conn: sqlite3.Connection) -> Recorded:
            return _record(conn, record, at)

        try:
            recorded = await self._writer.run(job)
        except sqlite3.Error as error:
            raise AuditDatabaseBusy(f"the audit database refused the write: {error}") from error
        if recorded.new and self._on_change is not None:
            self._on_change(change_of(record, recorded))
        return recorded

    async def purge(self, *, before: datetime) -> Purged:
        """Delete what is older than ``before``, in batches (each its own write)."""
        before_s = before.timestamp()
        deleted = {"messages": 0, "orders": 0}
        for table, column in (("messages", "time_s"), ("orders", "last_seen_s")):
            while True:

                def job(conn: sqlite3.Connection, table: str = table, column: str = column) -> int:
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
            params.extend((_time_s(chosen.after[0]), chosen.after[1]))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {ORDER_COLUMNS} FROM orders {where} ORDER BY since_s, order_ref LIMIT ?"
        params.append(chosen.limit + 1)

        def job(conn: sqlite3.Connection) -> list[OrderRow]:
            return [order_from_row(row) for row in conn.execute(sql, params).fetchall()]

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
        clauses = ["kind = ?"]
        params: list[Any] = [DEAD_LETTER]
        for clause, value in (
            ("dl_service = ?", service),
            ("(order_ref = ? OR correlation_id = ?)", order_ref),
            ("stream_sequence < ?", before_sequence),
        ):
            if value is not None:
                clauses.append(clause)
                params.extend([value] * clause.count("?"))
        sql = (
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {' AND '.join(clauses)} "
            "ORDER BY stream_sequence DESC LIMIT ?"
        )
        params.append(limit + 1)

        def job(conn: sqlite3.Connection) -> list[StoredMessage]:
            return [message_from_row(row) for row in conn.execute(sql, params).fetchall()]

        return await self._reader.run(job)

    async def counts(self) -> tuple[dict[str, int], dict[Stage, int]]:
        """Rows stored per kind, and orders per stage (for the metrics at start)."""

        def job(conn: sqlite3.Connection) -> tuple[dict[str, int], dict[Stage, int]]:
            kinds = {
                str(row[0]): int(row[1])
                for row in conn.execute("SELECT kind, count(*) FROM messages GROUP BY kind")
            }
            stages = {
                Stage(row[0]): int(row[1])
                for row in conn.execute("SELECT stage, count(*) FROM orders GROUP BY stage")
            }
            return {kind: kinds.get(kind, 0) for kind in KINDS}, stages

        return await self._reader.run(job)

    # -- the control tower's figures -----------------------------------------------

    async def stage_counts(self) -> list[StageCount]:
        """Orders per stage with the oldest ``since``, in the stages' order."""

        def job(conn: sqlite3.Connection) -> list[StageCount]:
            rows = conn.execute(
                "SELECT stage, count(*), min(since_s) FROM orders GROUP BY stage"
            ).fetchall()
            found = {Stage(row[0]): (int(row[1]), float(row[2])) for row in rows}
            return [
                StageCount(
                    stage=stage,
                    orders=found[stage][0],
                    oldest_since=datetime.fromtimestamp(found[stage][1], UTC),
                )
                for stage in Stage
                if stage in found
            ]

        return await self._reader.run(job)

    async def counts_by_type(self, types: Sequence[str], *, since: datetime) -> dict[str, int]:
        """Events and commands of each of ``types`` sent since ``since`` (by ``ce-time``)."""

        def job(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                f"SELECT ce_type, count(*) FROM messages WHERE time_s >= ? "
                f"AND kind != 'dead_letter' AND ce_type IN ({_marks(len(types))}) GROUP BY ce_type",
                (since.timestamp(), *types),
            ).fetchall()
            counted = {str(row[0]): int(row[1]) for row in rows}
            return {t: counted.get(t, 0) for t in types}

        return await self._reader.run(job)

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
        at = since.timestamp()

        def job(conn: sqlite3.Connection) -> PartnerFigures:
            sent = conn.execute(
                f"SELECT count(*) FROM messages WHERE time_s >= ? AND kind = 'command' "
                f"AND ce_type IN ({_marks(len(commands))})",
                (at, *commands),
            ).fetchone()[0]
            answers, failed = conn.execute(
                f"SELECT count(*), coalesce(sum(ce_type IN ({_marks(len(failures))})), 0) "
                "FROM messages WHERE time_s >= ? AND kind = 'event' AND source = ?",
                (*failures, at, source),
            ).fetchone()
            dead = conn.execute(
                "SELECT count(*) FROM messages WHERE time_s >= ? AND kind = 'dead_letter' "
                "AND dl_service = ?",
                (at, service),
            ).fetchone()[0]
            mean, longest = conn.execute(
                "SELECT avg(gap), max(gap) FROM (SELECT min(answer.time_s) - cause.time_s AS gap "
                "FROM messages AS answer JOIN messages AS cause ON cause.id = answer.causation_id "
                "WHERE answer.time_s >= ? AND answer.kind = 'event' AND answer.source = ? "
                "AND cause.kind = 'command' GROUP BY cause.id)",
                (at, source),
            ).fetchone()
            return PartnerFigures(
                commands=int(sent),
                answers=int(answers),
                failures=int(failed),
                dead_letters=int(dead),
                mean_latency_s=None if mean is None else max(0.0, float(mean)),
                max_latency_s=None if longest is None else max(0.0, float(longest)),
            )

        return await self._reader.run(job)

    async def search_orders(
        self, text: str, *, body_needles: Sequence[bytes], limit: int
    ) -> list[OrderRow]:
        """Orders whose ref contains ``text`` or one of whose bodies holds a needle."""

        def job(conn: sqlite3.Connection) -> list[OrderRow]:
            in_bodies = " OR ".join("instr(body, ?) > 0" for _ in body_needles) or "0"
            rows = conn.execute(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_ref LIKE ? ESCAPE '\\' "
                "OR order_ref IN (SELECT order_ref FROM messages WHERE order_ref IS NOT NULL "
                f"AND kind != 'dead_letter' AND ({in_bodies})) ORDER BY order_ref LIMIT ?",
                (f"%{like_escaped(text)}%", *body_needles, limit),
            ).fetchall()
            return [order_from_row(row) for row in rows]

        return await self._reader.run(job)

    async def troubles_of(self, refs: Sequence[str], *, exception_type: str) -> list[StoredMessage]:
        """The dead letters and ``exception_type`` events of ``refs``, newest first."""
        if not refs:
            return []

        def job(conn: sqlite3.Connection) -> list[StoredMessage]:
            rows = conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE order_ref IN ({_marks(len(refs))}) "
                "AND (kind = 'dead_letter' OR ce_type = ?) ORDER BY time_s DESC",
                (*refs, exception_type),
            ).fetchall()
            return [message_from_row(row) for row in rows]

        return await self._reader.run(job)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def like_escaped(text: str) -> str:
    """``text`` for a LIKE pattern with backslash as the escape: its own % and _ literal."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
