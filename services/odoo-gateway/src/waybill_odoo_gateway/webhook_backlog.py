"""Webhooks accepted and still being processed, bounded, and finished (or cut off) on stop.

Odoo waits 1 s for a webhook's answer and never retries, so the gateway
answers at once (202) and re-reads the record in the background. The bound
keeps a webhook storm from piling up unbounded work: beyond it the gateway
answers 503, and the poll finds those records instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["WebhookBacklog"]

log = logging.getLogger("waybill.odoo.webhooks")


class WebhookBacklog:
    """Background tasks for accepted webhooks, at most ``limit`` at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def submit(self, work: Coroutine[Any, Any, None], *, name: str) -> bool:
        """Start ``work`` in the background; False (and ``work`` closed) when full or stopping."""
        if self._closed or len(self._tasks) >= self.limit:
            work.close()
            return False
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return True

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.warning("%s failed: %s: %s", task.get_name(), type(error).__name__, error)

    async def idle(self) -> None:
        """Wait until every accepted webhook has been processed."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, *, grace_s: float) -> None:
        """Refuse new work; give running work ``grace_s`` to finish, then cancel it."""
        self._closed = True
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(list(self._tasks), timeout=grace_s)
        for task in pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            log.info(
                "%d webhook(s) were cut off by the stop; the poll will find them", len(pending)
            )
