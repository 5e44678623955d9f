"""Deadlines for calls to partners, failing with an error that names the call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from waybill_runtime.outcomes import TransientError

__all__ = ["PartnerTimeout", "with_timeout"]

T = TypeVar("T")


class PartnerTimeout(TransientError):
    """A partner did not answer in time; the message is retried later."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"{what} did not answer within {seconds:g} s")
        self.what = what
        self.seconds = seconds


async def with_timeout(aw: Awaitable[T], seconds: float, what: str) -> T:
    """Await ``aw`` for at most ``seconds``; raise :class:`PartnerTimeout` naming ``what``.

    Cancellation from outside is passed through untouched: only the deadline
    set here turns into a PartnerTimeout.
    """
    if not seconds > 0:
        if asyncio.iscoroutine(aw):
            aw.close()  # never started: avoid the "never awaited" warning
        raise ValueError(f"timeout for {what} must be positive, got {seconds}")
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            return await aw
    except TimeoutError as err:
        if deadline.expired():
            raise PartnerTimeout(what, seconds) from err
        raise  # a timeout of the call itself, already meaningful
