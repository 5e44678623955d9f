"""nats-servers with TLS for tests, made as `waybill up --tls` / `--mtls` makes them.

A server of the test's own, on free ports, serving TLS with the local CA of
its state folder (:mod:`waybill_runtime.security.local_ca`); with ``mutual``
it also verifies client certificates, one per identity. With ``secure`` the
mesh's identities are on too (an nkey user per installed service, admin and
operator, for one subject prefix of the server's own), as with `waybill up`.

Load the fixtures with ``pytest_plugins = ["waybill_runtime.testing.tls"]``:
``tls_nats`` (TLS, identities on) and ``mtls_nats`` (mutual TLS, identities on).
A service started with :meth:`TlsNats.service_settings` runs as its own
identity, over TLS, after :func:`provision_over_tls`.
"""

from __future__ import annotations

import dataclasses
import json
import ssl
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from waybill_contracts import SubjectMap
from waybill_runtime.bus.client import connect_client
from waybill_runtime.local.embedded_nats import EmbeddedNats, EmbeddedNatsOptions
from waybill_runtime.local.registry import load_services
from waybill_runtime.local.secured_stack import LocalTls, secure_options, tls_options
from waybill_runtime.security.mesh import MeshSecurity
from waybill_runtime.security.permissions import ADMIN, inbox_prefix
from waybill_runtime.security.tls import TlsFiles
from waybill_runtime.settings import env_var_name
from waybill_runtime.testing.secured import provision_installed


@dataclass
class TlsNats:
    """A running server with TLS, its local CA and, when on, its identities."""

    server: EmbeddedNats
    local_tls: LocalTls
    subjects: SubjectMap
    security: MeshSecurity | None

    @property
    def url(self) -> str:
        """``tls://host:port``."""
        return self.server.client_url

    @property
    def plain_url(self) -> str:
        """The same server as ``nats://host:port``: what a client is often given."""
        return self.url.replace("tls://", "nats://", 1)

    @property
    def prefix(self) -> str:
        return self.subjects.prefix

    @property
    def state_dir(self) -> Path:
        return self.server.state_dir

    def files(self, identity: str) -> TlsFiles:
        """What ``identity`` connects with: the CA, and its own certificate with mutual TLS."""
        return self.local_tls.files(identity)

    def context(self, identity: str) -> ssl.SSLContext:
        return self.local_tls.context(identity)

    def service_settings(self, name: str) -> dict[str, Any]:
        """Settings overrides that run service ``name`` over TLS (as itself, identities on)."""
        files = self.files(name)
        settings: dict[str, Any] = {
            "nats_url": self.url,
            "subject_prefix": self.prefix,
            "nats_tls_ca_file": files.ca_file,
            "nats_tls_cert_file": files.cert_file,
            "nats_tls_key_file": files.key_file,
        }
        if self.security is not None:
            settings["nats_nkey_seed_file"] = str(self.security.seed_file(name))
            settings["provision"] = "never"
        return settings

    def environment(self, identity: str) -> dict[str, str]:
        """``NATS_URL``, the prefix, the TLS files and the seed of ``identity``, as variables."""
        environment = {
            "NATS_URL": self.url,
            env_var_name("subject_prefix"): self.prefix,
            **self.local_tls.environment(identity),
        }
        if self.security is not None:
            environment[env_var_name("nats_nkey_seed_file")] = str(
                self.security.seed_file(identity)
            )
        return environment

    def tls_versions(self) -> dict[str, str]:
        """Each named client connection's TLS version, from the server's ``connz``
        (``""``: the connection is plaintext)."""
        with urllib.request.urlopen(f"{self.server.monitor_url}/connz?limit=1000", timeout=5) as r:
            connz = json.load(r)
        return {
            c.get("name", ""): c.get("tls_version", "")
            for c in connz.get("connections", [])
            if c.get("name")
        }


def start_tls_server(
    state_dir: Path,
    *,
    mutual: bool = False,
    secure: bool = True,
    identities: Iterable[str] = (),
    also_plaintext: bool = False,
) -> TlsNats:
    """A nats-server on free ports with TLS from the local CA in ``state_dir``.

    ``identities``: more names that get a client certificate (with ``mutual``;
    the installed services, admin and operator always do). ``also_plaintext``:
    the server offers TLS but accepts plaintext clients too (``allow_non_tls``),
    to show that a client asked to use TLS does so on its own.
    """
    subjects = SubjectMap(f"s{uuid.uuid4().hex[:10]}")
    services = load_services()
    options = EmbeddedNatsOptions(
        port=0, monitor_port=0, state_dir=state_dir, server_name="waybill-test-tls"
    )
    security = None
    if secure:
        options, security = secure_options(options, services, subjects.prefix)
    options, local_tls = tls_options(options, [*services, *identities], mutual=mutual)
    if also_plaintext:
        assert options.tls is not None
        options = dataclasses.replace(options, tls="allow_non_tls: true\n" + options.tls)
    server = EmbeddedNats(options)
    server.start()
    return TlsNats(server=server, local_tls=local_tls, subjects=subjects, security=security)


async def connect_over_tls(tls_nats: TlsNats, identity: str, **options: Any) -> NatsClient:
    """A client connected as ``identity`` (its seed when identities are on, its TLS files),
    named after it; ``options`` go to nats-py (``url`` another URL of the server)."""
    if tls_nats.security is not None:
        options.setdefault("nkeys_seed", str(tls_nats.security.seed_file(identity)))
    options.setdefault("connect_timeout", 5)
    options.setdefault("max_reconnect_attempts", 5)
    options.setdefault("name", identity)
    options.setdefault("tls", tls_nats.context(identity))
    url = options.pop("url", tls_nats.url)
    return await connect_client(url, inbox_prefix=inbox_prefix(identity), **options)


async def provision_over_tls(tls_nats: TlsNats) -> None:
    """Streams, buckets and durables of every installed service, made as the admin over TLS."""
    admin = await connect_over_tls(tls_nats, ADMIN)
    try:
        await provision_installed(admin, tls_nats.prefix)
    finally:
        await admin.close()


@pytest.fixture
def tls_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNats]:
    """A server of this test's own with TLS (the local CA) and the mesh's identities on."""
    started = start_tls_server(tmp_path_factory.mktemp("nats-tls"), mutual=False)
    try:
        yield started
    finally:
        started.server.stop()


@pytest.fixture
def mtls_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNats]:
    """A server of this test's own with mutual TLS (a client certificate per identity) and
    the mesh's identities on."""
    started = start_tls_server(tmp_path_factory.mktemp("nats-mtls"), mutual=True)
    try:
        yield started
    finally:
        started.server.stop()
