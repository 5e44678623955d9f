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
from datetime import UTC, date, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from waybill_auditor import postgres_reads as reads
from waybill_auditor.postgres_schema import (
    create_partition,
    day_of,
    drop_partitions_before,
    migrate,
)
from waybill_auditor.progress import OrderFacts, merge, settle
from waybill_auditor.records import DEAD_LETTER, KINDS, AuditRecord, StoredMessage
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
        self._days: set[date] = set()
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
                    f"INSERT INTO messages ({reads.MESSAGE_COLUMNS}, recorded_at) VALUES "
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
            f"SELECT {reads.ORDER_COLUMNS} FROM orders WHERE order_ref = $1", order_ref
        )
        return reads.order_of(row) if row is not None else None

    async def messages_of(self, order_ref: str, *, dead_letters: bool) -> list[StoredMessage]:
        """Events and commands (or dead letters) about ``order_ref`` by order or correlation."""
        async with self.pool.acquire() as conn:
            return await reads.messages_of(conn, order_ref, dead_letters)

    async def timeline(self, order_ref: str) -> Timeline:
        """The order's row, messages and dead letters, read together (one snapshot)."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetchrow(
                f"SELECT {reads.ORDER_COLUMNS} FROM orders WHERE order_ref = $1", order_ref
            )
            return (
                reads.order_of(row) if row is not None else None,
                await reads.messages_of(conn, order_ref, False),
                await reads.messages_of(conn, order_ref, True),
            )

    async def orders(
        self, chosen: OrdersFilter, *, deadlines: Mapping[Stage, float], now: datetime
    ) -> list[OrderRow]:
        """Orders oldest-in-stage first; up to ``limit + 1`` so the caller sees if more exist."""
        return await reads.orders(self.pool, chosen, deadlines=deadlines, now=now)

    async def dead_letters(
        self,
        *,
        service: str | None = None,
        order_ref: str | None = None,
        before_sequence: int | None = None,
        limit: int = 100,
    ) -> list[StoredMessage]:
        """Dead letters, newest first; up to ``limit + 1`` so the caller sees if more exist."""
        return await reads.dead_letters(
            self.pool,
            service=service,
            order_ref=order_ref,
            before_sequence=before_sequence,
            limit=limit,
        )

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

    # -- the control tower's figures (postgres_reads) ----------------------------

    async def stage_counts(self) -> list[StageCount]:
        """Orders per stage with the oldest ``since``, in the stages' order."""
        return await reads.stage_counts(self.pool)

    async def counts_by_type(self, types: Sequence[str], *, since: datetime) -> dict[str, int]:
        """Events and commands of each of ``types`` sent since ``since`` (by ``ce-time``)."""
        return await reads.counts_by_type(self.pool, types, since=since)

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
        return await reads.partner_figures(
            self.pool,
            commands=commands,
            failures=failures,
            source=source,
            service=service,
            since=since,
        )

    async def search_orders(
        self, text: str, *, body_needles: Sequence[bytes], limit: int
    ) -> list[OrderRow]:
        """Orders whose ref contains ``text`` or one of whose bodies holds a needle."""
        return await reads.search_orders(self.pool, text, body_needles=body_needles, limit=limit)

    async def latest_per_subject(self, ce_type: str) -> list[StoredMessage]:
        """The newest event of ``ce_type`` for each of its subjects (business keys)."""
        return await reads.latest_per_subject(self.pool, ce_type)

    async def troubles_of(self, refs: Sequence[str], *, exception_type: str) -> list[StoredMessage]:
        """The dead letters and ``exception_type`` events of ``refs``, newest first."""
        return await reads.troubles_of(self.pool, refs, exception_type=exception_type)
