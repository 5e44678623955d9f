"""Stopping background loops reliably, even when a library lost the cancellation."""

from __future__ import annotations

import asyncio

__all__ = ["raise_if_cancelled"]


def raise_if_cancelled() -> None:
    """Raise CancelledError when this task was cancelled but the cancellation got lost.

    On Python 3.11, ``asyncio.wait_for`` (which nats-py uses for every request)
    returns the answer instead of raising when the cancellation arrives just as
    the answer does. A loop stopped by one ``cancel()`` would then run on, and
    whoever awaits it after cancelling would wait forever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
