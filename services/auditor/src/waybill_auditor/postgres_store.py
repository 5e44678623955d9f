"""The audit trail in PostgreSQL: several auditor replicas on one database, each message once.

The replicas share the auditor's durable consumers, so any of them may be
handed a message, and a redelivery may go to another replica than the first
delivery. Recording is therefore idempotent in the database itself: under a
transaction-scoped advisory lock on the message id, a message whose id is
stored already changes nothing; otherwise its row is inserted (``ON CONFLICT
DO NOTHING`` on its key) and its order, locked the same way by ref, moves on in
the same transaction.

Every new row is announced with ``NOTIFY`` in the transaction that stores it;
each replica ``LISTEN``s, so the control tower's live pages and the metrics on
every replica see rows whichever replica stored them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from waybill_auditor.postgres_schema import (
    create_partition,
    day_of,
    drop_partitions_before,
    migrate,
)
from waybill_auditor.progress import OrderFacts, merge, settle
from waybill_auditor.records import DEAD_LETTER, KINDS, AuditRecord, StoredMessage
from waybill_auditor.sqlite_store import like_escaped
from waybill_auditor.stages import Stage
from waybill_auditor.store import (
    RESYNC,
    AuditDatabaseBusy,
    AuditDatabaseError,
    Change,
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

log = logging.getLogger("waybill.auditor")

CHANNEL = "waybill_audit"
"""The NOTIFY channel new rows are announced on."""
MESSAGE_LOCKS = 0x57415942
"""First key of the two-key advisory locks on message ids ('WAYB')."""
ORDER_LOCKS = 0x4F524452
"""First key of the two-key advisory locks on order refs ('ORDR')."""
POOL_SIZE = 8
RECONNECT_AFTER_S = 1.0

MESSAGE_COLUMNS = (
    "id, kind, ce_type, subject, order_ref, correlation_id, causation_id, source, time, "
    "stream, stream_sequence, nats_subject, body, original_id, dl_service, dl_consumer, "
    "dl_reason, dl_error_type, dl_error_message, dl_attempts, replayed_from, replayed_by, "
    "unconsumed, trace_id"
)
ORDER_COLUMNS = "order_ref, stage, since, messages, dead_letters, last_seen"

_encode = msgspec.json.Encoder().encode
_decode_facts = msgspec.json.Decoder(OrderFacts).decode
_decode_change = msgspec.json.Decoder(Change).decode

# What a refused write looks like: the database is gone, full, read-only, busy.
_WRITE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def without_password(url: str) -> str:
    """``url`` fit for a log line: its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _message(row: asyncpg.Record) -> StoredMessage:
    values: dict[str, Any] = dict(row)
    values["time"] = values["time"].astimezone(UTC)
    return StoredMessage(**values)


def _order(row: asyncpg.Record) -> OrderRow:
    return OrderRow(
        order_ref=row["order_ref"],
        stage=Stage(row["stage"]),
        since=row["since"].astimezone(UTC),
        messages=row["messages"],
        dead_letters=row["dead_letters"],
        last_seen=row["last_seen"].astimezone(UTC),
    )


def _at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def storable(record: AuditRecord) -> AuditRecord:
    """``record`` with every NUL character of its text replaced by U+FFFD.

    PostgreSQL's text cannot hold NUL, and a message that cannot be stored
    would be redelivered for ever: a poisoned header or error message is kept
    legible instead (the body is bytes and kept exactly as sent).
    """
    changes = {
        name: value.replace("\x00", "\ufffd")
        for name in record.__struct_fields__
        if isinstance(value := getattr(record, name), str) and "\x00" in value
    }
    return msgspec.structs.replace(record, **changes) if changes else record


class _NoPartition(Exception):
    """The day's partition is not there (dropped by another replica's retention)."""


class PostgresAuditStore:
    """The audit database shared by every auditor replica: a connection pool and a listener."""

    def __init__(self, url: str, *, on_change: OnChange | None = None) -> None:
        self._url = url
        self.location = without_password(url)
        self._on_change = on_change
        self._pool: asyncpg.Pool | None = None
        self._days: set[Any] = set()
        """Days whose partition this replica made or found (others may drop them: retried)."""
        self._listening: asyncio.Task[None] | None = None
        self._listener_ready = asyncio.Event()

    # -- life --------------------------------------------------------------------

    async def open(self) -> None:
        """Migrate under the migration lock, open the pool, start listening for new rows."""
        try:
            conn = await asyncpg.connect(self._url)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise AuditDatabaseError(
                f"the audit database {self.location} cannot be reached ({error}): check "
                "WAYBILL_AUDIT_DATABASE_URL and that PostgreSQL is up"
            ) from None
        try:
            await migrate(conn)
        finally:
            await conn.close()
        self._pool = await asyncpg.create_pool(self._url, min_size=1, max_size=POOL_SIZE)
        if self._on_change is not None:
            self._listening = asyncio.create_task(self._listen(), name="audit-listener")
            await self._listener_ready.wait()

    async def close(self) -> None:
        """Stop listening and close the pool."""
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
            self._listening = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"the audit store {self.location} is not open")
        return self._pool

    async def _listen(self) -> None:
        """LISTEN for new rows on a connection of its own; reconnect when it drops."""
        assert self._on_change is not None
        on_change = self._on_change

        def heard(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            try:
                change = _decode_change(payload)
            except msgspec.DecodeError:
                log.warning("ignoring a malformed notice on %s: %.200s", CHANNEL, payload)
                return
            on_change(change)

        first = True
        while True:
            lost = asyncio.Event()

            def dropped(_conn: object, lost: asyncio.Event = lost) -> None:
                lost.set()

            try:
                conn = await asyncpg.connect(self._url)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("cannot listen to %s for new rows: %s", self.location, error)
                self._listener_ready.set()
                first = False
                await asyncio.sleep(RECONNECT_AFTER_S)
                continue
            try:
                conn.add_termination_listener(dropped)
                await conn.add_listener(CHANNEL, heard)
                self._listener_ready.set()
                if not first:
                    on_change(RESYNC)  # what was stored while not listening went unheard
                first = False
                await lost.wait()
                log.warning("lost the listening connection to %s: reconnecting", self.location)
                await asyncio.sleep(RECONNECT_AFTER_S)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

    # -- writing -----------------------------------------------------------------

    async def record(self, record: AuditRecord, *, now: datetime | None = None) -> Recorded:
        """Store ``record`` unless its id is stored already; update its order's stage."""
        at = now or datetime.now(UTC)
        record = storable(record)
        day = day_of(record.time)
        try:
            for attempt in range(2):
                if day not in self._days:
                    async with self.pool.acquire() as conn:
                        await create_partition(conn, day)
                    self._days.add(day)
                try:
                    return await self._record(record, at)
                except _NoPartition:
                    self._days.discard(day)
                    if attempt:
                        raise
            raise AssertionError("unreachable")
        except _NoPartition:
            raise AuditDatabaseBusy(
                f"the audit database has no partition for {day} (dropped while recording)"
            ) from None
        except _WRITE_ERRORS as error:
            raise AuditDatabaseBusy(f"the audit database refused the write: {error}") from error

    async def _record(self, record: AuditRecord, now: datetime) -> Recorded:
        async with self.pool.acquire() as conn, conn.transaction():
            # One id at a time, whichever replica: the second delivery waits for the
            # first to commit, then finds its row.
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", MESSAGE_LOCKS, record.id
            )
            if await conn.fetchval("SELECT 1 FROM messages WHERE id = $1 LIMIT 1", record.id):
                return Recorded(new=False)
            try:
                status = await conn.execute(
                    f"INSERT INTO messages ({MESSAGE_COLUMNS}, recorded_at) VALUES "
                    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
                    "$17, $18, $19, $20, $21, $22, $23, $24, $25) "
                    "ON CONFLICT (id, time) DO NOTHING",
                    record.id,
                    record.kind,
                    record.ce_type,
                    record.subject,
                    record.order_ref,
                    record.correlation_id,
                    record.causation_id,
                    record.source,
                    record.time,
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
                    record.unconsumed,
                    record.trace_id,
                    now,
                )
            except asyncpg.CheckViolationError as error:
                if "no partition" in str(error):
                    raise _NoPartition from None
                raise
            if status.split()[-1] == "0":
                return Recorded(new=False)
            recorded = (
                Recorded(new=True)
                if record.order_ref is None
                else await self._update_order(conn, record)
            )
            await conn.execute(
                "SELECT pg_notify($1, $2)", CHANNEL, _encode(change_of(record, recorded)).decode()
            )
            return recorded

    async def _update_order(self, conn: asyncpg.Connection, record: AuditRecord) -> Recorded:
        assert record.order_ref is not None
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", ORDER_LOCKS, record.order_ref
        )
        row = await conn.fetchrow(
            "SELECT stage, since, facts FROM orders WHERE order_ref = $1", record.order_ref
        )
        if row is None:
            before, before_since, facts = None, None, OrderFacts()
        else:
            before, before_since = Stage(row["stage"]), row["since"].astimezone(UTC)
            facts = _decode_facts(row["facts"])
        facts = merge(facts, record.observation)
        stage, since = settle(before, before_since, facts)
        since = since or record.time
        is_dead_letter = record.kind == DEAD_LETTER
        await conn.execute(
            "INSERT INTO orders (order_ref, stage, since, facts, messages, dead_letters, "
            "last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (order_ref) DO UPDATE SET stage = excluded.stage, "
            "since = excluded.since, facts = excluded.facts, "
            "messages = orders.messages + excluded.messages, "
            "dead_letters = orders.dead_letters + excluded.dead_letters, "
            "last_seen = greatest(orders.last_seen, excluded.last_seen)",
            record.order_ref,
            stage.value,
            since,
            _encode(facts),
            0 if is_dead_letter else 1,
            1 if is_dead_letter else 0,
            record.time,
        )
        return Recorded(new=True, stage_before=before, stage_after=stage)

    async def heartbeat(self) -> None:
        """Write one row: proves the database takes writes now."""
        await self.pool.execute(
            "INSERT INTO heartbeat (id, at) VALUES (1, now()) "
            "ON CONFLICT (id) DO UPDATE SET at = excluded.at"
        )

    async def purge(self, *, before: datetime) -> Purged:
        """Drop the days' partitions wholly before ``before``, delete the rest of it by row."""
        async with self.pool.acquire() as conn:
            dropped = await drop_partitions_before(conn, before)
            status = await conn.execute("DELETE FROM messages WHERE time < $1", before)
            orders = await conn.execute("DELETE FROM orders WHERE last_seen < $1", before)
        self._days = {day for day in self._days if day >= day_of(before)}
        return Purged(messages=dropped + int(status.split()[-1]), orders=int(orders.split()[-1]))

    # -- reading -----------------------------------------------------------------

    async def order(self, order_ref: str) -> OrderRow | None:
        """The order's stage row, or None if no message about it was recorded."""
        row = await self.pool.fetchrow(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_ref = $1", order_ref
        )
        return _order(row) if row is not None else None

    async def messages_of(self, order_ref: str, *, dead_letters: bool) -> list[StoredMessage]:
        """Events and commands (or dead letters) about ``order_ref`` by order or correlation."""
        async with self.pool.acquire() as conn:
            return await _messages_of(conn, order_ref, dead_letters)

    async def timeline(self, order_ref: str) -> Timeline:
        """The order's row, messages and dead letters, read together (one snapshot)."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetchrow(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_ref = $1", order_ref
            )
            return (
                _order(row) if row is not None else None,
                await _messages_of(conn, order_ref, False),
                await _messages_of(conn, order_ref, True),
            )

    async def orders(
        self, chosen: OrdersFilter, *, deadlines: Mapping[Stage, float], now: datetime
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
            clauses.append(
                f"(since, order_ref) > ({param(chosen.after[0])}, {param(chosen.after[1])})"
            )
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self.pool.fetch(
            f"SELECT {ORDER_COLUMNS} FROM orders {where} ORDER BY since, order_ref "
            f"LIMIT {param(chosen.limit + 1)}",
            *params,
        )
        return [_order(row) for row in rows]

    async def dead_letters(
        self,
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
        rows = await self.pool.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {' AND '.join(clauses)} "
            f"ORDER BY stream_sequence DESC LIMIT ${len(params)}",
            *params,
        )
        return [_message(row) for row in rows]

    async def counts(self) -> tuple[dict[str, int], dict[Stage, int]]:
        """Rows stored per kind, and orders per stage (for the metrics)."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            kinds = {
                str(row[0]): int(row[1])
                for row in await conn.fetch("SELECT kind, count(*) FROM messages GROUP BY kind")
            }
            stages = {
                Stage(row[0]): int(row[1])
                for row in await conn.fetch("SELECT stage, count(*) FROM orders GROUP BY stage")
            }
        return {kind: kinds.get(kind, 0) for kind in KINDS}, stages

    # -- the control tower's figures -------------------------------------------

    async def stage_counts(self) -> list[StageCount]:
        """Orders per stage with the oldest ``since``, in the stages' order."""
        rows = await self.pool.fetch(
            "SELECT stage, count(*), min(since) FROM orders GROUP BY stage"
        )
        found = {Stage(row[0]): (int(row[1]), row[2].astimezone(UTC)) for row in rows}
        return [
            StageCount(stage=stage, orders=found[stage][0], oldest_since=found[stage][1])
            for stage in Stage
            if stage in found
        ]

    async def counts_by_type(self, types: Sequence[str], *, since: datetime) -> dict[str, int]:
        """Events and commands of each of ``types`` sent since ``since`` (by ``ce-time``)."""
        rows = await self.pool.fetch(
            "SELECT ce_type, count(*) FROM messages WHERE time >= $1 AND kind != 'dead_letter' "
            "AND ce_type = ANY($2::text[]) GROUP BY ce_type",
            since,
            list(types),
        )
        counted = {str(row[0]): int(row[1]) for row in rows}
        return {t: counted.get(t, 0) for t in types}

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
        async with (
            self.pool.acquire() as conn,
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
        self, text: str, *, body_needles: Sequence[bytes], limit: int
    ) -> list[OrderRow]:
        """Orders whose ref contains ``text`` or one of whose bodies holds a needle."""
        in_bodies = (
            " OR ".join(f"position(${n + 3}::bytea IN body) > 0" for n in range(len(body_needles)))
            or "false"
        )
        rows = await self.pool.fetch(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_ref LIKE $1 ESCAPE '\\' "
            "OR order_ref IN (SELECT order_ref FROM messages WHERE order_ref IS NOT NULL "
            f"AND kind != 'dead_letter' AND ({in_bodies})) ORDER BY order_ref LIMIT $2",
            f"%{like_escaped(text)}%",
            limit,
            *body_needles,
        )
        return [_order(row) for row in rows]

    async def troubles_of(self, refs: Sequence[str], *, exception_type: str) -> list[StoredMessage]:
        """The dead letters and ``exception_type`` events of ``refs``, newest first."""
        if not refs:
            return []
        rows = await self.pool.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE order_ref = ANY($1::text[]) "
            "AND (kind = 'dead_letter' OR ce_type = $2) ORDER BY time DESC",
            list(refs),
            exception_type,
        )
        return [_message(row) for row in rows]


async def _messages_of(
    conn: asyncpg.Connection, order_ref: str, dead_letters: bool
) -> list[StoredMessage]:
    kinds = [DEAD_LETTER] if dead_letters else [k for k in KINDS if k != DEAD_LETTER]
    rows = await conn.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE kind = ANY($1::text[]) "
        "AND (order_ref = $2 OR correlation_id = $2) ORDER BY time, stream_sequence",
        kinds,
        order_ref,
    )
    return [_message(row) for row in rows]
