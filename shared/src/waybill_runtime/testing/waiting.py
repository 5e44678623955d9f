"""Waiting for something to become true, without timed assertions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], bool] = bool,
    timeout_s: float = 30.0,
    interval_s: float = 0.05,
    what: str = "the condition",
) -> T:
    """Call ``probe`` until ``until(result)`` holds; fail naming ``what`` after ``timeout_s``.

    The timeout only bounds a hung test: it is generous on purpose and is not
    a performance assertion.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {result!r}")
        await asyncio.sleep(interval_s)
