"""pytest fixtures: a real nats-server with JetStream on a free port, never a fixed one.

Authentication is on, as in production: the URLs the fixtures hand out carry
the test harness's credentials, and services started with ``running_service``
run as their own identities (see :mod:`waybill_runtime.testing.authenticated`).

Load with ``pytest_plugins = ["waybill_runtime.testing.pytest_plugin"]`` in a
conftest. One server serves the whole session; each test gets its own subject
prefix (``nats_prefix``), which the subject map turns into its own streams and
buckets, so tests never see each other's messages. Tests that restart or break
the server take ``fresh_nats_server``, a server of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient

from waybill_runtime.testing.authenticated import AuthenticatedServer, start_authenticated_server
from waybill_runtime.testing.secured import SecuredNats, start_secured_server


def start_test_server(state_dir: Path, *, name: str = "waybill-test") -> AuthenticatedServer:
    """A nats-server on free ports with its store in ``state_dir``, authentication on."""
    return start_authenticated_server(state_dir, server_name=name)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthenticatedServer]:
    """One embedded nats-server for the whole test session."""
    server = start_test_server(tmp_path_factory.mktemp("nats-session"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_url(nats_server: AuthenticatedServer) -> str:
    """The session server's URL with the harness's credentials in it."""
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
def fresh_nats_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AuthenticatedServer]:
    """A nats-server of this test's own, for tests that restart or stop it."""
    server = start_test_server(tmp_path_factory.mktemp("nats-fresh"), name="waybill-test-fresh")
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
