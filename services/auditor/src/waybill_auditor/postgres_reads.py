"""The PostgreSQL store's reads: rows into the auditor's values, an order's messages, and the
control tower's figures (the SQL only; :mod:`waybill_auditor.postgres_store` runs them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from waybill_auditor.records import DEAD_LETTER, KINDS, StoredMessage
from waybill_auditor.stages import Stage
from waybill_auditor.store import (
    OrderRow,
    OrdersFilter,
    PartnerFigures,
    StageCount,
    like_escaped,
    overdue,
    read_per_subject,
)

MESSAGE_COLUMNS = (
    "id, kind, ce_type, subject, order_ref, correlation_id, causation_id, source, time, "
    "stream, stream_sequence, nats_subject, body, original_id, dl_service, dl_consumer, "
    "dl_reason, dl_error_type, dl_error_message, dl_attempts, replayed_from, replayed_by, "
    "unconsumed, trace_id"
)
ORDER_COLUMNS = "order_ref, stage, since, messages, dead_letters, last_seen"


def message_of(row: asyncpg.Record) -> StoredMessage:
    """A row of ``messages`` as the auditor reads it."""
    values: dict[str, Any] = dict(row)
    values["time"] = values["time"].astimezone(UTC)
    return StoredMessage(**values)


def _at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def order_of(row: asyncpg.Record) -> OrderRow:
    """A row of ``orders`` as the auditor reads it."""
    return OrderRow(
        order_ref=row["order_ref"],
        stage=Stage(row["stage"]),
        since=row["since"].astimezone(UTC),
        messages=row["messages"],
        dead_letters=row["dead_letters"],
        last_seen=row["last_seen"].astimezone(UTC),
    )


async def messages_of(
    conn: asyncpg.Connection, order_ref: str, dead_letters: bool
) -> list[StoredMessage]:
    kinds = [DEAD_LETTER] if dead_letters else [k for k in KINDS if k != DEAD_LETTER]
    rows = await conn.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE kind = ANY($1::text[]) "
        "AND (order_ref = $2 OR correlation_id = $2) ORDER BY time, stream_sequence",
        kinds,
        order_ref,
    )
    return [message_of(row) for row in rows]


async def orders(
    pool: asyncpg.Pool, chosen: OrdersFilter, *, deadlines: Mapping[Stage, float], now: datetime
) -> list[OrderRow]:
    """Orders oldest-in-stage first; up to ``limit + 1`` so the caller sees if more exist."""
    clauses: list[str] = []
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if chosen.stages:
        clauses.append(f"stage = ANY({param([s.value for s in chosen.stages])}::text[])")
    if chosen.stuck_only:
        late = overdue(chosen, deadlines, now)
        if not late:
            return []
        clauses.append(
            "("
            + " OR ".join(
                f"(stage = {param(stage.value)} AND since < {param(_at(before))})"
                for stage, before in late
            )
            + ")"
        )
    if chosen.after is not None:
        clauses.append(f"(since, order_ref) > ({param(chosen.after[0])}, {param(chosen.after[1])})")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = await pool.fetch(
        f"SELECT {ORDER_COLUMNS} FROM orders {where} ORDER BY since, order_ref "
        f"LIMIT {param(chosen.limit + 1)}",
        *params,
    )
    return [order_of(row) for row in rows]


async def dead_letters(
    pool: asyncpg.Pool,
    *,
    service: str | None = None,
    order_ref: str | None = None,
    before_sequence: int | None = None,
    limit: int = 100,
) -> list[StoredMessage]:
    """Dead letters, newest first; up to ``limit + 1`` so the caller sees if more exist."""
    clauses = ["kind = 'dead_letter'"]
    params: list[Any] = []
    for clause, value in (
        ("dl_service = {}", service),
        ("(order_ref = {0} OR correlation_id = {0})", order_ref),
        ("stream_sequence < {}", before_sequence),
    ):
        if value is not None:
            params.append(value)
            clauses.append(clause.format(f"${len(params)}"))
    params.append(limit + 1)
    rows = await pool.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {' AND '.join(clauses)} "
        f"ORDER BY stream_sequence DESC LIMIT ${len(params)}",
        *params,
    )
    return [message_of(row) for row in rows]


async def stage_counts(pool: asyncpg.Pool) -> list[StageCount]:
    """Orders per stage with the oldest ``since``, in the stages' order."""
    rows = await pool.fetch("SELECT stage, count(*), min(since) FROM orders GROUP BY stage")
    found = {Stage(row[0]): (int(row[1]), row[2].astimezone(UTC)) for row in rows}
    return [
        StageCount(stage=stage, orders=found[stage][0], oldest_since=found[stage][1])
        for stage in Stage
        if stage in found
    ]


async def counts_by_type(
    pool: asyncpg.Pool, types: Sequence[str], *, since: datetime
) -> dict[str, int]:
    """Events and commands of each of ``types`` sent since ``since`` (by ``ce-time``)."""
    rows = await pool.fetch(
        "SELECT ce_type, count(*) FROM messages WHERE time >= $1 AND kind != 'dead_letter' "
        "AND ce_type = ANY($2::text[]) GROUP BY ce_type",
        since,
        list(types),
    )
    counted = {str(row[0]): int(row[1]) for row in rows}
    return {t: counted.get(t, 0) for t in types}


async def partner_figures(
    pool: asyncpg.Pool,
    *,
    commands: Sequence[str],
    failures: Sequence[str],
    source: str,
    service: str,
    since: datetime,
) -> PartnerFigures:
    """What one service was asked (``commands``) and answered (events from ``source``)."""
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        sent = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE time >= $1 AND kind = 'command' "
            "AND ce_type = ANY($2::text[])",
            since,
            list(commands),
        )
        answers = await conn.fetchrow(
            "SELECT count(*), count(*) FILTER (WHERE ce_type = ANY($1::text[])) "
            "FROM messages WHERE time >= $2 AND kind = 'event' AND source = $3",
            list(failures),
            since,
            source,
        )
        dead = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE time >= $1 AND kind = 'dead_letter' "
            "AND dl_service = $2",
            since,
            service,
        )
        latency = await conn.fetchrow(
            "SELECT avg(gap), max(gap) FROM (SELECT extract(epoch FROM "
            "min(answer.time) - cause.time)::float8 AS gap "
            "FROM messages AS answer JOIN messages AS cause ON cause.id = answer.causation_id "
            "WHERE answer.time >= $1 AND answer.kind = 'event' AND answer.source = $2 "
            "AND cause.kind = 'command' GROUP BY cause.id, cause.time) AS gaps",
            since,
            source,
        )
    mean, longest = latency[0], latency[1]
    return PartnerFigures(
        commands=int(sent),
        answers=int(answers[0]),
        failures=int(answers[1]),
        dead_letters=int(dead),
        mean_latency_s=None if mean is None else max(0.0, float(mean)),
        max_latency_s=None if longest is None else max(0.0, float(longest)),
    )


async def search_orders(
    pool: asyncpg.Pool, text: str, *, body_needles: Sequence[bytes], limit: int
) -> list[OrderRow]:
    """Orders whose ref contains ``text`` or one of whose bodies holds a needle."""
    in_bodies = (
        " OR ".join(f"position(${n + 3}::bytea IN body) > 0" for n in range(len(body_needles)))
        or "false"
    )
    rows = await pool.fetch(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_ref LIKE $1 ESCAPE '\\' "
        "OR order_ref IN (SELECT order_ref FROM messages WHERE order_ref IS NOT NULL "
        f"AND kind != 'dead_letter' AND ({in_bodies})) ORDER BY order_ref LIMIT $2",
        f"%{like_escaped(text)}%",
        limit,
        *body_needles,
    )
    return [order_of(row) for row in rows]


async def latest_per_subject(pool: asyncpg.Pool, ce_type: str) -> list[StoredMessage]:
    """The newest event of ``ce_type`` for each of its subjects (business keys)."""
    rows = await pool.fetch(
        f"SELECT DISTINCT ON (subject) {MESSAGE_COLUMNS} FROM messages "
        "WHERE ce_type = $1 AND kind = 'event' ORDER BY subject, stream_sequence DESC",
        read_per_subject(ce_type),
    )
    return [message_of(row) for row in rows]


async def troubles_of(
    pool: asyncpg.Pool, refs: Sequence[str], *, exception_type: str
) -> list[StoredMessage]:
    """The dead letters and ``exception_type`` events of ``refs``, newest first."""
    if not refs:
        return []
    rows = await pool.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE order_ref = ANY($1::text[]) "
        "AND (kind = 'dead_letter' OR ce_type = $2) ORDER BY time DESC",
        list(refs),
        exception_type,
    )
    return [message_of(row) for row in rows]
