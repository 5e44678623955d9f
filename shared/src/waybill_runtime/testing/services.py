"""Running a Waybill service in-process for a test, exactly as `waybill run` would."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import nats
from nats.aio.client import Client as NatsClient

from waybill_contracts import SubjectMap
from waybill_runtime.bus.provisioning import provision_mesh
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.service import Runtime, Service
from waybill_runtime.settings import RuntimeSettings, load_settings
from waybill_runtime.telemetry import tracing_active
from waybill_runtime.testing.authenticated import server_for


@contextlib.asynccontextmanager
async def running_service(
    service: Service[Any], *, start_timeout_s: float = 30.0, **settings: Any
) -> AsyncIterator[asyncio.Task[None]]:
    """Start ``service`` with ``settings`` (overrides of its settings struct); stop it on exit.

    Yields the serving task. The environment is not read, so tests never
    depend on the shell they run in. HTTP listens on a free port unless given.
    On the suite's authenticated server the service runs as its own identity
    (see :func:`_own_identity`).
    """
    settings.setdefault("http_port", 0)
    settings.setdefault("fetch_wait_s", 0.2)  # quick shutdowns; idle polling is cheap locally
    settings.setdefault("http_host", "127.0.0.1")
    async with (
        _own_identity(service, settings) as effective,
        _serving(service, start_timeout_s, effective) as task,
    ):
        yield task


def _runs_as_itself(settings: dict[str, Any]) -> bool:
    # A test that hands the service credentials, or asks it to provision its
    # own streams (which takes admin rights), has chosen who it runs as.
    chosen = ("nats_nkey_seed_file", "nats_credentials_file")
    return not any(settings.get(name) for name in chosen) and "provision" not in settings


@contextlib.asynccontextmanager
async def _own_identity(
    service: Service[Any], settings: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """``settings`` that run ``service`` as its own identity on the suite's authenticated
    server, as production does: provisioned beforehand with admin rights, then
    enrolled with the permissions of its declaration (see
    :mod:`waybill_runtime.testing.authenticated`). Other servers: ``settings`` as given."""
    server = server_for(str(settings.get("nats_url", "")))
    if server is None or not _runs_as_itself(settings):
        yield settings
        return
    prefix = str(settings.get("subject_prefix", "waybill"))
    declaration = service.describe(subject_prefix=prefix)
    loaded = load_settings(service.settings_type, environ={}, service=service.name, **settings)
    harness = await nats.connect(server.client_url, connect_timeout=5)
    try:
        await provision_mesh(harness.jetstream(), [declaration], loaded, tracing=tracing_active())
    finally:
        await harness.close()
    seed_file = await asyncio.to_thread(server.enroll, declaration, prefix)
    try:
        yield {
            **settings,
            "nats_url": server.bare_url,
            "nats_nkey_seed_file": str(seed_file),
            "provision": "never",
        }
    finally:
        server.release(declaration, prefix)


@contextlib.asynccontextmanager
async def _serving(
    service: Service[Any], start_timeout_s: float, settings: dict[str, Any]
) -> AsyncIterator[asyncio.Task[None]]:
    loaded = load_settings(service.settings_type, environ={}, service=service.name, **settings)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(service.serve(loaded, stop, ready=ready))
    ready_wait = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait(
        {task, ready_wait}, timeout=start_timeout_s, return_when=asyncio.FIRST_COMPLETED
    )
    if task in done:
        ready_wait.cancel()
        task.result()  # raises the start-up error
        raise AssertionError(f"{service.name} stopped during start-up")
    if ready_wait not in done:
        ready_wait.cancel()
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        raise AssertionError(f"{service.name} did not start within {start_timeout_s} s")
    try:
        yield task
    finally:
        stop.set()
        await task


def bare_runtime(
    nc: NatsClient, subjects: SubjectMap, *, service: str, publisher: Publisher | None = None
) -> Runtime[RuntimeSettings]:
    """A :class:`Runtime` on ``nc`` without a service around it, for tests of one consumer."""
    return Runtime(
        settings=load_settings(RuntimeSettings, environ={}, service=service),
        subjects=subjects,
        nc=nc,
        js=nc.jetstream(),
        publisher=publisher or Publisher(nc, subjects, service=service),
        metrics=MetricsRegistry(service),
    )
