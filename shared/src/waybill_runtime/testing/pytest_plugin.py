"""pytest fixtures: a real nats-server with JetStream on a free port, never a fixed one.

Load with ``pytest_plugins = ["waybill_runtime.testing.pytest_plugin"]`` in a
conftest. One server serves the whole session; each test gets its own subject
prefix (``nats_prefix``), which the subject map turns into its own streams and
buckets, so tests never see each other's messages. Tests that restart or break
the server take ``fresh_nats_server``, a server of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client as NatsClient

from waybill_runtime.local.embedded_nats import EmbeddedNats, EmbeddedNatsOptions
from waybill_runtime.testing.secured import SecuredNats, start_secured_server


def start_test_server(state_dir: object) -> EmbeddedNats:
    """A nats-server on free ports with its store in ``state_dir``."""
    from pathlib import Path

    server = EmbeddedNats(
        EmbeddedNatsOptions(
            port=0, monitor_port=0, state_dir=Path(str(state_dir)), server_name="waybill-test"
        )
    )
    server.start()
    return server


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """One embedded nats-server for the whole test session."""
    server = start_test_server(tmp_path_factory.mktemp("nats-session"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_url(nats_server: EmbeddedNats) -> str:
    return nats_server.client_url


@pytest.fixture
def nats_prefix() -> str:
    """A subject prefix of this test's own (one NATS token), e.g. ``t3fa9c1d2e4``."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    """A connected nats-py client, closed after the test."""
    client = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=5)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def fresh_nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A nats-server of this test's own, for tests that restart or stop it."""
    server = start_test_server(tmp_path_factory.mktemp("nats-fresh"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def secured_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredNats]:
    """A nats-server of this test's own with authorization on: an nkey user per installed
    service, the admin and the operator (permissions are generated for one subject prefix,
    so tests do not share this server)."""
    secured = start_secured_server(tmp_path_factory.mktemp("nats-secured"))
    try:
        yield secured
    finally:
        secured.server.stop()
