"""Stopping background tasks for sure.

On Python 3.11, ``asyncio.wait_for`` (which nats-py uses for every request)
can swallow a cancellation that arrives together with the reply, so a task
cancelled once may simply carry on. Cancelling until the task is done is the
only reliable stop.
"""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: asyncio.Task[object], *, every_s: float = 0.5) -> None:
    """Cancel ``task`` and wait until it is done, cancelling again if it carries on."""
    while not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task}, timeout=every_s)
    if not task.cancelled():
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()  # retrieved, so asyncio does not log it as never retrieved


def raise_if_cancelled() -> None:
    """Raise CancelledError when this task was cancelled but the cancellation got lost.

    A long-running loop calls this between rounds, so one ``cancel()`` stops it
    even when a library swallowed the cancellation mid-round.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
