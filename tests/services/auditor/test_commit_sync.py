"""How hard each commit of the SQLite trail waits for the disk (issue #18: the auditor's CPU).

Under write-ahead logging, ``synchronous = NORMAL`` leaves the disk sync to
checkpoints: a commit survives the auditor's crash, and a power loss of the
host may take the last commits, as nats-server's default sync interval may
take the streams' last messages. ``WAYBILL_AUDIT_SYNC_ALWAYS`` keeps a sync per
commit (``FULL``) for installations that run nats-server with
``sync_interval: always``. SQLite reports the level per connection: 1 is
NORMAL, 2 is FULL.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from tests.services.auditor.rows import released
from waybill_auditor.config import AuditorSettings
from waybill_auditor.sqlite_store import SqliteAuditStore
from waybill_auditor.store import store_for
from waybill_runtime.settings import SettingsError, load_settings

NORMAL, FULL = 1, 2


def settings(**env: str) -> AuditorSettings:
    return load_settings(AuditorSettings, env, service="auditor")


async def _writer_sync_level(store: SqliteAuditStore) -> int:
    await store.open()
    try:
        await store.record(released("WH/OUT/1"))

        def level(conn: sqlite3.Connection) -> int:
            return int(conn.execute("PRAGMA synchronous").fetchone()[0])

        return await store._writer.run(level)
    finally:
        await store.close()


async def test_the_writer_commits_without_a_disk_sync_per_commit_by_default(
    tmp_path: Path,
) -> None:
    store = store_for(settings(WAYBILL_AUDIT_DB=str(tmp_path / "audit.sqlite")))
    assert isinstance(store, SqliteAuditStore)

    assert await _writer_sync_level(store) == NORMAL


async def test_sync_always_keeps_a_disk_sync_per_commit(tmp_path: Path) -> None:
    store = store_for(
        settings(WAYBILL_AUDIT_DB=str(tmp_path / "audit.sqlite"), WAYBILL_AUDIT_SYNC_ALWAYS="true")
    )
    assert isinstance(store, SqliteAuditStore)

    assert await _writer_sync_level(store) == FULL


def test_a_bad_sync_always_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match=re.escape("WAYBILL_AUDIT_SYNC_ALWAYS")):
        settings(WAYBILL_AUDIT_SYNC_ALWAYS="sometimes")
