"""The audit store suite's databases: a SQLite file, and a real PostgreSQL 16 started by the
tests from the ``pgserver`` wheel (its binaries ship in the wheel: nothing to install, never a
skip). One server per test session; every test gets a database of its own."""

from __future__ import annotations

import contextlib
import itertools
import os
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from waybill_auditor.sqlite_store import SqliteAuditStore
from waybill_auditor.store import AuditStore, OnChange

BACKENDS = ("sqlite", "postgresql")

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the session's PostgreSQL server (its maintenance database)."""
    # pgserver puts its socket in the data folder: keep the path short (a socket
    # path holds 107 bytes at most).
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"wbpg-{os.getpid()}"
    with warnings.catch_warnings():
        # platformdirs (under pgserver) warns when XDG_RUNTIME_DIR is unset, as in CI.
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(folder, cleanup_mode="delete")  # type: ignore[attr-defined]
    try:
        yield str(server.get_uri("postgres"))
    finally:
        server.cleanup()


def database_url(server_url: str, name: str) -> str:
    """``server_url`` with another database named."""
    base, _, query = server_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """A new, empty database on the server for the block; dropped after it."""
    name = f"audit_{os.getpid()}_{next(_numbers)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield database_url(server_url, name)
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def postgres_url(postgres_server: str) -> AsyncIterator[str]:
    """A new, empty database on the session's server."""
    async with fresh_database(postgres_server) as url:
        yield url


def store_of(
    backend: str, *, folder: Path, url: str | None, on_change: OnChange | None = None
) -> AuditStore:
    """A store of ``backend``: a SQLite file in ``folder``, or the PostgreSQL database ``url``."""
    if backend == "sqlite":
        return SqliteAuditStore(folder / "state" / "auditor" / "audit.sqlite", on_change=on_change)
    from waybill_auditor.postgres_store import PostgresAuditStore

    assert url is not None
    return PostgresAuditStore(url, on_change=on_change)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    return str(request.param)


@pytest.fixture
async def audit_url(backend: str, postgres_server: str) -> AsyncIterator[str | None]:
    """The PostgreSQL database of this test (None on SQLite)."""
    if backend == "sqlite":
        yield None
        return
    async with fresh_database(postgres_server) as url:
        yield url


@contextlib.asynccontextmanager
async def opened(store: AuditStore) -> AsyncIterator[AuditStore]:
    """``store``, open for the block."""
    await store.open()
    try:
        yield store
    finally:
        await store.close()
