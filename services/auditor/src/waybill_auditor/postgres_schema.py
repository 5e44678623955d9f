"""The audit trail's schema in PostgreSQL: versioned migrations applied at start, and the
messages table's daily partitions.

Several auditor replicas may start at once against one database: each takes a
session advisory lock before migrating, so one migrates and the others find
the work done. Messages are partitioned by ``ce-time``, one partition a day
(UTC), created when the first message of that day arrives; retention drops
whole partitions (:mod:`waybill_auditor.postgres_store`). A database written by
a newer auditor is refused rather than misread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from waybill_auditor.store import AuditDatabaseError

log = logging.getLogger("waybill.auditor")

MIGRATION_LOCK = 0x5741_5942_4155_4431
"""Advisory lock (one 64-bit key) held while migrating: 'WAYBAUD1'."""
PARTITION_LOCK = 0x5741_5942_4155_4432
"""Advisory lock held while creating or dropping a partition: replicas take turns."""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the audit trail (partitioned by ce-time), orders' stages, the readiness heartbeat.
    (
        """
        CREATE TABLE messages (
            id text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('event', 'command', 'dead_letter')),
            ce_type text NOT NULL,
            subject text NOT NULL,
            order_ref text,
            correlation_id text,
            causation_id text,
            source text NOT NULL,
            time timestamptz NOT NULL,
            stream text NOT NULL,
            stream_sequence bigint NOT NULL,
            nats_subject text NOT NULL,
            body bytea NOT NULL,
            original_id text,
            dl_service text,
            dl_consumer text,
            dl_reason text,
            dl_error_type text,
            dl_error_message text,
            dl_attempts integer,
            replayed_from bigint,
            replayed_by text,
            unconsumed boolean NOT NULL DEFAULT false,
            recorded_at timestamptz NOT NULL,
            -- A partitioned table's keys include the partition column; a message's
            -- ce-time never changes, so (id, time) is still one row per message.
            PRIMARY KEY (id, time)
        ) PARTITION BY RANGE (time)
        """,
        "CREATE INDEX messages_by_id ON messages (id)",
        "CREATE INDEX messages_by_order ON messages (order_ref) WHERE order_ref IS NOT NULL",
        "CREATE INDEX messages_by_correlation ON messages (correlation_id)",
        "CREATE INDEX messages_by_kind ON messages (kind, stream_sequence)",
        "CREATE INDEX messages_by_time ON messages (time)",
        """
        CREATE TABLE orders (
            order_ref text PRIMARY KEY,
            stage text NOT NULL,
            since timestamptz NOT NULL,
            facts bytea NOT NULL,
            messages integer NOT NULL DEFAULT 0,
            dead_letters integer NOT NULL DEFAULT 0,
            last_seen timestamptz NOT NULL
        )
        """,
        "CREATE INDEX orders_by_since ON orders (since, order_ref)",
        "CREATE INDEX orders_by_stage ON orders (stage, since, order_ref)",
        "CREATE INDEX orders_by_last_seen ON orders (last_seen)",
        "CREATE TABLE heartbeat (id integer PRIMARY KEY CHECK (id = 1), at timestamptz NOT NULL)",
    ),
    # 2: the trace each message belongs to (the control tower links to it).
    ("ALTER TABLE messages ADD COLUMN trace_id text",),
    # 3: the latest message of a type per ce-subject (the control tower's circuit breakers).
    ("CREATE INDEX messages_by_type ON messages (ce_type, subject, stream_sequence)",),
)
"""Schema steps; step ``n`` (1-based) takes a database from version ``n - 1`` to ``n``."""

SCHEMA_VERSION = len(MIGRATIONS)


async def schema_version(conn: asyncpg.Connection) -> int:
    """The version the database is at (0: empty)."""
    await conn.execute("CREATE TABLE IF NOT EXISTS audit_schema_version (version integer NOT NULL)")
    found = await conn.fetchval("SELECT max(version) FROM audit_schema_version")
    return int(found) if found is not None else 0


async def migrate(
    conn: asyncpg.Connection, migrations: Sequence[Sequence[str]] = MIGRATIONS
) -> int:
    """Bring the schema to the newest version, one transaction per step; returns the version.

    Holds :data:`MIGRATION_LOCK` throughout, so replicas starting together
    migrate one after the other (the later ones find nothing to do).
    """
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        current = await schema_version(conn)
        if current > len(migrations):
            raise AuditDatabaseError(
                f"the audit database has schema version {current}, newer than this auditor's "
                f"{len(migrations)}: run a newer auditor or point WAYBILL_AUDIT_DATABASE_URL "
                "at another database"
            )
        for version in range(current + 1, len(migrations) + 1):
            async with conn.transaction():
                for statement in migrations[version - 1]:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO audit_schema_version (version) VALUES ($1)", version
                )
            log.info("audit database migrated to schema version %d", version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    return len(migrations)


PARTITION_PREFIX = "messages_"


def partition_name(day: date) -> str:
    """The name of ``day``'s partition: ``messages_20250314``."""
    return f"{PARTITION_PREFIX}{day:%Y%m%d}"


def day_of(moment: datetime) -> date:
    """The UTC day a message's ``ce-time`` falls on: its partition."""
    return moment.astimezone(UTC).date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


async def create_partition(conn: asyncpg.Connection, day: date) -> None:
    """Make ``day``'s partition unless it exists (replicas take turns under a lock)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
        # Bounds are literals (DDL takes no parameters); both come from a date.
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF messages "
            f"FOR VALUES FROM ('{_midnight(day).isoformat()}') "
            f"TO ('{_midnight(day + timedelta(days=1)).isoformat()}')"
        )


async def partitions(conn: asyncpg.Connection) -> list[date]:
    """The days that have a partition, oldest first."""
    rows = await conn.fetch(
        "SELECT child.relname FROM pg_inherits "
        "JOIN pg_class AS parent ON parent.oid = pg_inherits.inhparent "
        "JOIN pg_class AS child ON child.oid = pg_inherits.inhrelid "
        "JOIN pg_namespace ON pg_namespace.oid = parent.relnamespace "
        "WHERE parent.relname = 'messages' AND pg_namespace.nspname = current_schema()"
    )
    days = []
    for row in rows:
        name = str(row["relname"])
        try:
            days.append(datetime.strptime(name[len(PARTITION_PREFIX) :], "%Y%m%d").date())
        except ValueError:
            continue  # someone else's partition: not ours to drop
    return sorted(days)


async def drop_partitions_before(conn: asyncpg.Connection, cutoff: datetime) -> int:
    """Drop every partition that ends at or before ``cutoff``; how many rows went with them."""
    dropped = 0
    for day in await partitions(conn):
        if _midnight(day + timedelta(days=1)) > cutoff:
            break
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
            name = partition_name(day)
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
            if not exists:
                continue  # another replica dropped it first
            dropped += int(await conn.fetchval(f"SELECT count(*) FROM {name}"))
            await conn.execute(f"DROP TABLE {name}")
        log.info("audit retention: dropped partition %s", name)
    return dropped
