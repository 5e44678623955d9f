"""A nats-server with the mesh's identities on, for tests of permissions and of the secured mesh.

The server knows one nkey user per installed service (permissions generated
from the declarations, under one subject prefix of the session's own), plus
the admin and the operator. :func:`connect_as` connects as one of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NatsClient

from waybill_contracts import SubjectMap
from waybill_runtime.bus.provisioning import provision_mesh
from waybill_runtime.local.embedded_nats import EmbeddedNats, EmbeddedNatsOptions
from waybill_runtime.local.registry import load_services
from waybill_runtime.security.mesh import MeshSecurity, secure_mesh
from waybill_runtime.security.permissions import ADMIN, inbox_prefix
from waybill_runtime.settings import RuntimeSettings, load_settings

ErrorCallback = Callable[[Exception], Awaitable[None]]


@dataclass
class SecuredNats:
    """A running server with authorization on, and what it knows."""

    server: EmbeddedNats
    subjects: SubjectMap
    security: MeshSecurity

    @property
    def url(self) -> str:
        return self.server.client_url

    @property
    def prefix(self) -> str:
        return self.subjects.prefix

    def service_settings(self, name: str) -> dict[str, Any]:
        """The settings that run service ``name`` as its own identity, without admin rights."""
        return {
            "nats_nkey_seed_file": str(self.security.seed_file(name)),
            "provision": "never",
        }


def start_secured_server(state_dir: Path) -> SecuredNats:
    """A nats-server on free ports that knows every installed service's identity."""
    subjects = SubjectMap(f"s{uuid.uuid4().hex[:10]}")
    declarations = [
        service.describe(subject_prefix=subjects.prefix) for service in load_services().values()
    ]
    security = secure_mesh(declarations, subjects, state_dir)
    server = EmbeddedNats(
        EmbeddedNatsOptions(
            port=0,
            monitor_port=0,
            state_dir=state_dir,
            server_name="waybill-test-secured",
            authorization=security.authorization,
        )
    )
    server.start()
    return SecuredNats(server=server, subjects=subjects, security=security)


async def connect_as(
    secured: SecuredNats, name: str, *, error_cb: ErrorCallback | None = None
) -> NatsClient:
    """A client connected as identity ``name``, with its own inbox prefix."""
    options: dict[str, Any] = {"error_cb": error_cb} if error_cb is not None else {}
    return await nats.connect(
        secured.url,
        nkeys_seed=str(secured.security.seed_file(name)),
        inbox_prefix=inbox_prefix(name),
        connect_timeout=5,
        max_reconnect_attempts=5,
        **options,
    )


async def provision_installed(admin: NatsClient, prefix: str) -> None:
    """Streams, buckets and durables of every installed service under ``prefix``, made on
    ``admin`` (a connection with the admin's rights)."""
    declarations = [service.describe(subject_prefix=prefix) for service in load_services().values()]
    settings = load_settings(RuntimeSettings, environ={}, service=ADMIN, subject_prefix=prefix)
    await provision_mesh(admin.jetstream(), declarations, settings)


async def provision_all(secured: SecuredNats) -> None:
    """Streams, buckets and durables of every installed service, made as the admin."""
    admin = await connect_as(secured, ADMIN)
    try:
        await provision_installed(admin, secured.prefix)
    finally:
        await admin.close()
