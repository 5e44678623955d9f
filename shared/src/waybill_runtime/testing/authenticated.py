"""The test suite's nats-server: authentication on, every service on its own identity.

The suite runs with the security production runs with. The server admits no
anonymous client. The test code itself (publishing partner facts, reading
streams, breaking durables) connects as the ``harness``, a user/password
identity with every right, so fixtures hand out a URL that carries it
(``nats://harness:<password>@127.0.0.1:<port>``) and any client or CLI given
that URL authenticates.

A Waybill service started by :func:`waybill_runtime.testing.services.running_service`
does not run as the harness: its streams, buckets and durables are provisioned
with the harness's rights (as `waybill provision` does), then it is *enrolled*: a
new nkey user with the permissions generated from its declaration for the
test's subject prefix is added and the server reloads its config. The service
connects with that seed and ``WAYBILL_PROVISION=never``, so anything it does
beyond its declaration is refused by the server, in every test.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from waybill_contracts import SubjectMap
from waybill_runtime.declaration import Declaration
from waybill_runtime.local.embedded_nats import EmbeddedNats, EmbeddedNatsOptions
from waybill_runtime.security.authorization import render_authorization
from waybill_runtime.security.nkeys_store import NkeyUser, ensure_users
from waybill_runtime.security.permissions import (
    OPERATOR,
    Identity,
    Permissions,
    operator_identity,
    service_identity,
)

HARNESS = "harness"

# Servers by the URL their fixtures hand out, so `running_service` can find the
# server a test's settings point at and enroll the service there.
_BY_URL: dict[str, AuthenticatedServer] = {}


def _harness_identity() -> Identity:
    return Identity(
        name=HARNESS,
        role="admin",
        inbox_prefix="_INBOX",
        permissions=Permissions(publish=[">"], subscribe=[">"]),
    )


@dataclass
class _Enrollment:
    identity: Identity
    user: NkeyUser
    holders: int = 0


class AuthenticatedServer:
    """An embedded nats-server that admits the harness and the services enrolled on it."""

    def __init__(self, state_dir: Path, *, server_name: str) -> None:
        self._password = secrets.token_urlsafe(24)
        self._seeds = state_dir / "identities"
        self._enrolled: dict[tuple[str, str], _Enrollment] = {}
        self._lock = threading.Lock()
        self.server = EmbeddedNats(
            EmbeddedNatsOptions(
                port=0,
                monitor_port=0,
                state_dir=state_dir,
                server_name=server_name,
                authorization=self._authorization(),
            )
        )

    # -- the server --------------------------------------------------------------------

    def start(self) -> None:
        self.server.start()
        _BY_URL[self.client_url] = self

    def stop(self, *, grace_s: float = 10.0) -> None:
        _BY_URL.pop(self.client_url, None)
        self.server.stop(grace_s=grace_s)

    def restart(self, *, grace_s: float = 10.0) -> None:
        """Stop and start again on the same ports, store and identities."""
        self.server.restart(grace_s=grace_s)

    @property
    def pid(self) -> int | None:
        return self.server.pid

    @property
    def bare_url(self) -> str:
        """The URL without credentials: connecting with it alone is refused."""
        return self.server.client_url

    @property
    def client_url(self) -> str:
        """The URL the harness connects with (credentials included)."""
        address = urlsplit(self.server.client_url).netloc
        return f"nats://{HARNESS}:{self._password}@{address}"

    @property
    def monitor_url(self) -> str:
        return self.server.monitor_url

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    # -- identities --------------------------------------------------------------------

    def _authorization(self) -> str:
        enrollments = list(self._enrolled.values())
        # Each enrollment is its own user (one service may be enrolled under
        # several prefixes at once), so the config names them by seed file.
        identities = [
            _harness_identity(),
            *(msgspec.structs.replace(e.identity, name=e.user.name) for e in enrollments),
        ]
        users = {e.user.name: e.user for e in enrollments}
        return render_authorization(identities, users, passwords={HARNESS: self._password})

    def enroll(self, declaration: Declaration, subject_prefix: str) -> Path:
        """Admit the service ``declaration`` describes under ``subject_prefix``; its seed file.

        Blocks until the server has reloaded. Enrolling the same service under
        the same prefix again (two replicas in one test) shares one identity,
        kept until the last :meth:`release`.
        """
        subjects = SubjectMap(subject_prefix)
        return self._admit(
            (declaration.name, subject_prefix),
            lambda: service_identity(declaration, subjects, tracing=True),
        )

    def release(self, declaration: Declaration, subject_prefix: str) -> None:
        """The service has stopped: forget its identity once no replica holds it."""
        key = (declaration.name, subject_prefix)
        with self._lock:
            enrollment = self._enrolled[key]
            enrollment.holders -= 1
            if enrollment.holders == 0:
                # Left in the server's config until the next reload: a reload
                # per stop would only cost time, and the seed is gone.
                del self._enrolled[key]
                enrollment.user.seed_file.unlink(missing_ok=True)

    def operator_seed(self, subject_prefix: str) -> Path:
        """The operator seed of ``subject_prefix`` (`waybill dlq`), kept while the server runs."""
        return self._admit(
            (OPERATOR, subject_prefix), lambda: operator_identity(SubjectMap(subject_prefix))
        )

    def _admit(self, key: tuple[str, str], identity: Callable[[], Identity]) -> Path:
        with self._lock:
            enrollment = self._enrolled.get(key)
            if enrollment is None:
                unique = ".".join(key)
                user = ensure_users(self._seeds, [unique])[unique]
                enrollment = self._enrolled[key] = _Enrollment(identity=identity(), user=user)
                self.server.update_authorization(self._authorization())
            enrollment.holders += 1
            return enrollment.user.seed_file


def cli_environment(nats_url: str, subject_prefix: str) -> dict[str, str]:
    """Environment variables that run an operator command (`waybill dlq`) against ``nats_url``.

    On the suite's authenticated server the command runs as the prefix's
    operator, with the rights production's operator has; elsewhere with the URL
    as given.
    """
    environment = {"WAYBILL_SUBJECT_PREFIX": subject_prefix, "NATS_URL": nats_url}
    server = server_for(nats_url)
    if server is not None:
        seed = server.operator_seed(subject_prefix)
        environment |= {"NATS_URL": server.bare_url, "WAYBILL_NATS_NKEY_SEED_FILE": str(seed)}
    return environment


def server_for(url: str) -> AuthenticatedServer | None:
    """The authenticated test server a fixture handed ``url`` out for (None: another server)."""
    return _BY_URL.get(url)


def start_authenticated_server(state_dir: Path, *, server_name: str) -> AuthenticatedServer:
    server = AuthenticatedServer(state_dir, server_name=server_name)
    server.start()
    return server
