"""The SQLite store's queries: rows into the auditor's values, and the control tower's figures
(each a job on the reader's connection; :mod:`waybill_auditor.sqlite_store` runs them)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from waybill_auditor.database import PER_SUBJECT
from waybill_auditor.records import StoredMessage
from waybill_auditor.stages import Stage
from waybill_auditor.store import (
    OrderRow,
    PartnerFigures,
    StageCount,
    like_escaped,
    read_per_subject,
)

MESSAGE_COLUMNS = (
    "id, kind, ce_type, subject, order_ref, correlation_id, causation_id, source, time, time_s, "
    "stream, stream_sequence, nats_subject, body, original_id, dl_service, dl_consumer, "
    "dl_reason, dl_error_type, dl_error_message, dl_attempts, replayed_from, replayed_by, "
    "unconsumed, trace_id"
)
ORDER_COLUMNS = "order_ref, stage, since, messages, dead_letters, last_seen_s"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def message_from_row(row: sqlite3.Row) -> StoredMessage:
    """A row of ``messages`` as the auditor reads it."""
    values: dict[str, Any] = dict(row)
    values.pop("time_s", None)
    values["time"] = parse_time(values["time"])
    values["unconsumed"] = bool(values["unconsumed"])
    return StoredMessage(**values)


def order_from_row(row: sqlite3.Row) -> OrderRow:
    """A row of ``orders`` as the auditor reads it."""
    return OrderRow(
        order_ref=row["order_ref"],
        stage=Stage(row["stage"]),
        since=parse_time(row["since"]),
        messages=row["messages"],
        dead_letters=row["dead_letters"],
        last_seen=datetime.fromtimestamp(row["last_seen_s"], UTC),
    )


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def stage_counts(conn: sqlite3.Connection) -> list[StageCount]:
    """Orders per stage with the oldest ``since``, in the stages' order."""
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


def counts_by_type(
    conn: sqlite3.Connection, types: Sequence[str], since: datetime
) -> dict[str, int]:
    """Events and commands of each of ``types`` sent since ``since`` (by ``ce-time``)."""
    rows = conn.execute(
        f"SELECT ce_type, count(*) FROM messages WHERE time_s >= ? "
        f"AND kind != 'dead_letter' AND ce_type IN ({_marks(len(types))}) GROUP BY ce_type",
        (since.timestamp(), *types),
    ).fetchall()
    counted = {str(row[0]): int(row[1]) for row in rows}
    return {t: counted.get(t, 0) for t in types}


def partner_figures(
    conn: sqlite3.Connection,
    *,
    commands: Sequence[str],
    failures: Sequence[str],
    source: str,
    service: str,
    since: datetime,
) -> PartnerFigures:
    """What one service was asked (``commands``) and answered (events from ``source``)."""
    at = since.timestamp()
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


def latest_per_subject(conn: sqlite3.Connection, ce_type: str) -> list[StoredMessage]:
    """The newest event of ``ce_type`` for each of its subjects (business keys).

    Both selects state the type index's condition (database.PER_SUBJECT), which
    ``ce_type`` meets (:func:`read_per_subject`): SQLite uses a partial index only then.
    """
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages AS m WHERE ce_type = ? AND {PER_SUBJECT} "
        "AND kind = 'event' AND stream_sequence = (SELECT max(stream_sequence) FROM messages "
        f"WHERE ce_type = m.ce_type AND {PER_SUBJECT} AND subject = m.subject "
        "AND kind = 'event') ORDER BY subject",
        (read_per_subject(ce_type),),
    ).fetchall()
    return [message_from_row(row) for row in rows]


def search_orders(
    conn: sqlite3.Connection, text: str, body_needles: Sequence[bytes], limit: int
) -> list[OrderRow]:
    """Orders whose ref contains ``text`` or one of whose bodies holds a needle."""
    in_bodies = " OR ".join("instr(body, ?) > 0" for _ in body_needles) or "0"
    rows = conn.execute(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_ref LIKE ? ESCAPE '\\' "
        "OR order_ref IN (SELECT order_ref FROM messages WHERE order_ref IS NOT NULL "
        f"AND kind != 'dead_letter' AND ({in_bodies})) ORDER BY order_ref LIMIT ?",
        (f"%{like_escaped(text)}%", *body_needles, limit),
    ).fetchall()
    return [order_from_row(row) for row in rows]


def troubles_of(
    conn: sqlite3.Connection, refs: Sequence[str], exception_type: str
) -> list[StoredMessage]:
    """The dead letters and ``exception_type`` events of ``refs``, newest first."""
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE order_ref IN ({_marks(len(refs))}) "
        "AND (kind = 'dead_letter' OR ce_type = ?) ORDER BY time_s DESC",
        (*refs, exception_type),
    ).fetchall()
    return [message_from_row(row) for row in rows]
