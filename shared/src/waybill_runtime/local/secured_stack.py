"""Identities for a local run: the embedded server's authorization, provisioning as admin,
and each service's settings for its own identity (`waybill up`, `waybill nats`)."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import Iterable, Mapping
from typing import Any

from waybill_contracts import SubjectMap
from waybill_runtime.bus.client import connect_client
from waybill_runtime.bus.provisioning import provision_mesh
from waybill_runtime.local.embedded_nats import EmbeddedNatsOptions, prepare_state_dir
from waybill_runtime.security.local_ca import LocalPki, ensure_local_pki, server_tls_block
from waybill_runtime.security.mesh import MeshSecurity, secure_mesh
from waybill_runtime.security.permissions import ADMIN, OPERATOR, inbox_prefix
from waybill_runtime.security.tls import TlsFiles, client_context
from waybill_runtime.service import Service
from waybill_runtime.settings import RuntimeSettings, env_var_name, load_settings


def secure_options(
    options: EmbeddedNatsOptions, services: Mapping[str, Service[Any]], subject_prefix: str
) -> tuple[EmbeddedNatsOptions, MeshSecurity]:
    """``options`` with the authorization block of ``services``' identities, and the identities.

    Seeds live in the state folder (resolved, so children started elsewhere find them).
    """
    state_dir = prepare_state_dir(options.state_dir)
    declarations = [s.describe(subject_prefix=subject_prefix) for s in services.values()]
    security = secure_mesh(declarations, SubjectMap(subject_prefix), state_dir)
    secured = dataclasses.replace(
        options, state_dir=state_dir, authorization=security.authorization
    )
    return secured, security


@dataclasses.dataclass(frozen=True)
class LocalTls:
    """The local CA's files for a run with TLS; ``mutual``: clients present certificates."""

    pki: LocalPki
    mutual: bool

    def files(self, identity: str) -> TlsFiles:
        """What ``identity`` connects with: the CA, and its own certificate with mutual TLS."""
        if not self.mutual:
            return TlsFiles(ca_file=str(self.pki.ca_file))
        return TlsFiles(
            ca_file=str(self.pki.ca_file),
            cert_file=str(self.pki.client_cert_file(identity)),
            key_file=str(self.pki.client_key_file(identity)),
        )

    def context(self, identity: str) -> ssl.SSLContext:
        context = client_context(self.files(identity))
        assert context is not None
        return context

    def environment(self, identity: str) -> dict[str, str]:
        """The variables (file paths, never contents) that connect ``identity`` over TLS."""
        files = self.files(identity)
        environment = {env_var_name("nats_tls_ca_file"): str(files.ca_file)}
        if files.cert_file and files.key_file:
            environment[env_var_name("nats_tls_cert_file")] = files.cert_file
            environment[env_var_name("nats_tls_key_file")] = files.key_file
        return environment


def tls_options(
    options: EmbeddedNatsOptions, identities: Iterable[str], *, mutual: bool
) -> tuple[EmbeddedNatsOptions, LocalTls]:
    """``options`` with a ``tls`` block from the local CA (made or reused in the state folder).

    With ``mutual`` the server verifies client certificates and every identity
    (the services, the admin, the operator) gets one.
    """
    state_dir = prepare_state_dir(options.state_dir)
    clients = [*identities, ADMIN, OPERATOR] if mutual else []
    pki = ensure_local_pki(state_dir, hosts=[options.host], clients=clients)
    secured = dataclasses.replace(
        options, state_dir=state_dir, tls=server_tls_block(pki, verify_clients=mutual)
    )
    return secured, LocalTls(pki, mutual)


def provision_as_admin(
    url: str,
    security: MeshSecurity,
    services: Mapping[str, Service[Any]],
    subject_prefix: str,
    *,
    tls: ssl.SSLContext | None = None,
    replicas: int = 1,
) -> None:
    """Streams, buckets and durables of ``services``, made as the admin before they start,
    each stream and bucket with ``replicas`` copies (3 on a three-node cluster)."""
    settings = load_settings(
        RuntimeSettings,
        environ={},
        service=ADMIN,
        subject_prefix=subject_prefix,
        stream_replicas=replicas,
    )
    declarations = [s.describe(subject_prefix=subject_prefix) for s in services.values()]

    async def provisioning() -> None:
        nc = await connect_client(
            url,
            nkeys_seed=str(security.seed_file(ADMIN)),
            inbox_prefix=inbox_prefix(ADMIN),
            tls=tls,
            connect_timeout=5,
            max_reconnect_attempts=0,
        )
        try:
            await provision_mesh(nc.jetstream(), declarations, settings)
        finally:
            await nc.close()

    asyncio.run(provisioning())


def identity_environment(security: MeshSecurity, service: str) -> dict[str, str]:
    """The variables that run ``service`` as its own identity, without admin rights."""
    return {
        env_var_name("nats_nkey_seed_file"): str(security.seed_file(service)),
        env_var_name("provision"): "never",
    }
