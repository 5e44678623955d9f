"""Work a service does on a schedule: polls, reconciliation, deadline checks.

Run as a resource of the service (``service.uses``), so it starts after
provisioning and stops before the connection drains. A failing round is
logged and the next round runs as planned: a partner that is down must not
stop the poller for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable

from waybill_runtime.cancellation import cancel_and_wait, raise_if_cancelled

log = logging.getLogger("waybill.periodic")


@contextlib.asynccontextmanager
async def every(
    interval_s: float,
    work: Callable[[], Awaitable[object]],
    *,
    name: str,
    first_after_s: float | None = None,
    jitter: float = 0.1,
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``work`` every ``interval_s`` seconds (jittered, so replicas spread out) while open."""

    async def loop() -> None:
        delay = interval_s if first_after_s is None else first_after_s
        while True:
            await asyncio.sleep(delay)
            try:
                await work()
                raise_if_cancelled()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "%s failed (%s: %s); next round as planned", name, type(error).__name__, error
                )
            delay = interval_s * (1 + random.uniform(-jitter, jitter))

    task = asyncio.create_task(loop(), name=name)
    try:
        yield task
    finally:
        await cancel_and_wait(task)
