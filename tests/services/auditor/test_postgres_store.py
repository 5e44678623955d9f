"""What only the PostgreSQL audit store does, on a real PostgreSQL 16: migrations (from an empty
database, from the previous version, two replicas at once), each message once when replicas
record it together, new rows told to every replica, retention dropping whole days' partitions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.services.auditor.databases import opened
from tests.services.auditor.journey import T0, Journey, for_order
from tests.services.auditor.rows import SUBJECTS, record_of, released
from waybill_auditor.config import AuditorSettings
from waybill_auditor.database import AuditDatabaseError
from waybill_auditor.postgres_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    create_partition,
    migrate,
    partitions,
)
from waybill_auditor.postgres_store import PostgresAuditStore, without_password
from waybill_auditor.records import message_record
from waybill_auditor.stages import Stage
from waybill_auditor.store import RESYNC, Change, store_for
from waybill_contracts.events import OrderReleased, WarehouseOrderAccepted
from waybill_runtime.bus.replay import ReplayMark
from waybill_runtime.settings import SettingsError, load_settings
from waybill_runtime.testing.waiting import eventually


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresAuditStore]:
    async with opened(PostgresAuditStore(postgres_url)) as ready:
        assert isinstance(ready, PostgresAuditStore)
        yield ready


async def _versions(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT version FROM audit_schema_version ORDER BY version")
        return [int(row[0]) for row in rows]
    finally:
        await conn.close()


async def test_an_empty_database_is_migrated_to_the_newest_schema_once_by_two_replicas(
    postgres_url: str,
) -> None:
    first, second = PostgresAuditStore(postgres_url), PostgresAuditStore(postgres_url)

    # Both start at the same moment: one migrates, the other waits and finds it done.
    await asyncio.gather(first.open(), second.open())
    try:
        record = released("WH/OUT/1")
        assert (await first.record(record)).new
        assert not (await second.record(record)).new
    finally:
        await first.close()
        await second.close()

    assert await _versions(postgres_url) == list(range(1, SCHEMA_VERSION + 1))


async def test_a_database_at_the_previous_version_is_migrated_and_keeps_its_rows(
    postgres_url: str,
) -> None:
    record = released("WH/OUT/old")
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await migrate(conn, MIGRATIONS[:-1]) == SCHEMA_VERSION - 1
        await create_partition(conn, record.time.date())
        await conn.execute(
            "INSERT INTO messages (id, kind, ce_type, subject, order_ref, source, time, stream, "
            "stream_sequence, nats_subject, body, recorded_at) "
            "VALUES ($1, 'event', $2, $3, $4, $5, $6, 'S', 1, 'x', $7, now())",
            record.id,
            record.ce_type,
            record.subject,
            record.order_ref,
            record.source,
            record.time,
            record.body,
        )
    finally:
        await conn.close()

    async with opened(PostgresAuditStore(postgres_url)) as store:
        [kept] = await store.messages_of("WH/OUT/old", dead_letters=False)
        assert not (await store.record(record)).new

    assert (kept.id, kept.trace_id, kept.body) == (record.id, None, record.body)
    assert await _versions(postgres_url) == list(range(1, SCHEMA_VERSION + 1))


async def test_a_database_from_a_newer_auditor_is_refused(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("CREATE TABLE audit_schema_version (version integer NOT NULL)")
        await conn.execute("INSERT INTO audit_schema_version VALUES (99)")
    finally:
        await conn.close()

    with pytest.raises(AuditDatabaseError, match="schema version 99, newer than this auditor"):
        await PostgresAuditStore(postgres_url).open()


async def test_a_database_that_cannot_be_reached_is_named_without_its_password() -> None:
    url = "postgresql://auditor:s3cret-pw@127.0.0.1:1/audit"

    with pytest.raises(AuditDatabaseError) as refused:
        await PostgresAuditStore(url).open()

    assert "WAYBILL_AUDIT_DATABASE_URL" in str(refused.value)
    assert "s3cret-pw" not in str(refused.value)
    assert without_password(url) == "postgresql://auditor:***@127.0.0.1:1/audit"


async def test_replicas_recording_the_same_messages_together_store_each_once(
    postgres_url: str,
) -> None:
    ref = "WH/OUT/race"
    journey = Journey(ref)
    release = for_order(OrderReleased, ref)
    cause = journey.add(release)
    accepted = for_order(WarehouseOrderAccepted, ref)
    records = [
        record_of(release, cause),
        record_of(accepted, journey.add(accepted, cause=cause, minutes=3)),
    ]
    async with (
        opened(PostgresAuditStore(postgres_url)) as first,
        opened(PostgresAuditStore(postgres_url)) as second,
    ):
        outcomes = await asyncio.gather(
            *(store.record(r) for r in records for store in (first, second, first, second))
        )
        order = await first.order(ref)
        kinds, _ = await second.counts()

    assert sum(o.new for o in outcomes) == 2
    assert order is not None and (order.stage, order.messages) == (Stage.ACCEPTED, 2)
    assert kinds["event"] == 2


async def test_a_replay_seen_twice_at_different_times_is_recorded_once(
    store: PostgresAuditStore,
) -> None:
    ref = "WH/OUT/replayed"
    message = for_order(OrderReleased, ref)
    context = Journey(ref).add(message)

    def replayed() -> object:
        # Its time is when the auditor saw it: another each delivery.
        return message_record(
            message,
            context,
            subjects=SUBJECTS,
            nats_subject=SUBJECTS.subject_for(OrderReleased),
            stream_sequence=9,
            replay=ReplayMark(dead_letter=4, operator="ops@example.com"),
        )

    first, again = replayed(), replayed()
    assert first.time != again.time  # type: ignore[attr-defined]

    assert (await store.record(first)).new  # type: ignore[arg-type]
    assert not (await store.record(again)).new  # type: ignore[arg-type]
    assert len(await store.messages_of(ref, dead_letters=False)) == 1


async def test_every_replica_is_told_of_a_row_whichever_replica_stored_it(
    postgres_url: str,
) -> None:
    heard: dict[str, list[Change]] = {"first": [], "second": []}
    async with (
        opened(PostgresAuditStore(postgres_url, on_change=heard["first"].append)) as first,
        opened(PostgresAuditStore(postgres_url, on_change=heard["second"].append)),
    ):
        record = released("WH/OUT/told")
        await first.record(record)
        await first.record(record)  # a duplicate tells nobody

        await eventually(
            lambda: _count(heard), until=lambda n: n == (1, 1), what="both replicas told"
        )

    assert heard["second"] == [
        Change(
            kind="event",
            type="io.waybill.order.released.v1",
            order_ref="WH/OUT/told",
            stage_before=None,
            stage_after=Stage.RELEASED,
        )
    ]


async def _count(heard: dict[str, list[Change]]) -> tuple[int, int]:
    return len(heard["first"]), len(heard["second"])


async def test_retention_drops_whole_days_and_deletes_the_rest_by_row(
    store: PostgresAuditStore, postgres_url: str
) -> None:
    # Three days of orders (T0 is 09:30 UTC): each released, one of them moving on later.
    for day in range(3):
        await store.record(released(f"WH/OUT/day{day}", minutes=day * 24 * 60))
    await store.record(released("WH/OUT/day2-late", minutes=2 * 24 * 60 + 600))
    conn = await asyncpg.connect(postgres_url)
    try:
        before = await partitions(conn)
        cutoff = T0 + timedelta(days=2, hours=1)  # the third day, 10:30

        purged = await store.purge(before=cutoff)

        after = await partitions(conn)
    finally:
        await conn.close()

    assert [d - before[0] for d in before] == [timedelta(days=n) for n in range(3)]
    assert after == before[2:]  # two days dropped whole; the third one stays
    assert (purged.messages, purged.orders) == (3, 3)
    kinds, stages = await store.counts()
    assert kinds["event"] == 1 and stages == {Stage.RELEASED: 1}
    # A late message about a dropped day makes its partition again (this replica, or another).
    assert (await store.record(released("WH/OUT/day0-again"))).new


async def test_a_day_another_replica_dropped_is_made_again_when_a_message_of_it_comes(
    postgres_url: str,
) -> None:
    async with (
        opened(PostgresAuditStore(postgres_url)) as first,
        opened(PostgresAuditStore(postgres_url)) as second,
    ):
        await first.record(released("WH/OUT/a"))
        await second.purge(before=T0 + timedelta(days=1))  # drops the day first just used

        assert (await first.record(released("WH/OUT/b"))).new
        assert (await second.order("WH/OUT/b")) is not None


def test_the_database_url_is_a_secret_read_from_the_secrets_folder(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    url = "postgresql://auditor:Xk9-secret@db.internal:5432/audit"
    (folder / "WAYBILL_AUDIT_DATABASE_URL").write_text(url + "\n")

    settings = load_settings(
        AuditorSettings, {"WAYBILL_SECRETS_DIR": str(folder)}, service="auditor"
    )

    assert settings.audit_database_url == url
    assert isinstance(store_for(settings), PostgresAuditStore)
    assert "Xk9-secret" not in repr(settings)
    with pytest.raises(SettingsError, match="not a PostgreSQL URL") as refused:
        load_settings(
            AuditorSettings,
            {"WAYBILL_AUDIT_DATABASE_URL": "mysql://root:hunter2@db/audit"},
            service="auditor",
        )
    assert "hunter2" not in str(refused.value)


async def test_a_replica_that_lost_its_listening_connection_listens_again_and_recounts(
    postgres_url: str,
) -> None:
    heard: list[Change] = []
    async with (
        opened(PostgresAuditStore(postgres_url)) as writer,
        opened(PostgresAuditStore(postgres_url, on_change=heard.append)),
    ):
        conn = await asyncpg.connect(postgres_url)
        try:
            # The database drops the listening session (a failover, an idle timeout).
            cut = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            )
        finally:
            await conn.close()
        assert cut == 1

        await eventually(lambda: _heard(heard), until=lambda h: RESYNC in h, what="a resync")
        record = released("WH/OUT/after-the-cut")
        await writer.record(record)
        await eventually(
            lambda: _heard(heard),
            until=lambda h: any(c.order_ref == "WH/OUT/after-the-cut" for c in h),
            what="the row stored after the cut",
        )


async def _heard(heard: list[Change]) -> list[Change]:
    return list(heard)
