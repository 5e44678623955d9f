"""Identities for a local run: the embedded server's authorization, provisioning as admin,
and each service's settings for its own identity (`waybill up`, `waybill nats`)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import nats

from waybill_contracts import SubjectMap
from waybill_runtime.bus.provisioning import provision_mesh
from waybill_runtime.local.embedded_nats import EmbeddedNatsOptions, prepare_state_dir
from waybill_runtime.security.mesh import MeshSecurity, secure_mesh
from waybill_runtime.security.permissions import ADMIN, inbox_prefix
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


def provision_as_admin(
    url: str, security: MeshSecurity, services: Mapping[str, Service[Any]], subject_prefix: str
) -> None:
    """Streams, buckets and durables of ``services``, made as the admin before they start."""
    settings = load_settings(
        RuntimeSettings, environ={}, service=ADMIN, subject_prefix=subject_prefix
    )
    declarations = [s.describe(subject_prefix=subject_prefix) for s in services.values()]

    async def provisioning() -> None:
        nc = await nats.connect(
            url,
            nkeys_seed=str(security.seed_file(ADMIN)),
            inbox_prefix=inbox_prefix(ADMIN),
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
