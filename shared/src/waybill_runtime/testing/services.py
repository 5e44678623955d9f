"""Running a Waybill service in-process for a test, exactly as `waybill run` would."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from nats.aio.client import Client as NatsClient

from waybill_contracts import SubjectMap
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.service import Runtime, Service
from waybill_runtime.settings import RuntimeSettings, load_settings


@contextlib.asynccontextmanager
async def running_service(
    service: Service[Any], *, start_timeout_s: float = 30.0, **settings: Any
) -> AsyncIterator[asyncio.Task[None]]:
    """Start ``service`` with ``settings`` (overrides of its settings struct); stop it on exit.

    Yields the serving task. The environment is not read, so tests never
    depend on the shell they run in. HTTP listens on a free port unless given.
    """
    settings.setdefault("http_port", 0)
    settings.setdefault("fetch_wait_s", 0.2)  # quick shutdowns; idle polling is cheap locally
    settings.setdefault("http_host", "127.0.0.1")
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
