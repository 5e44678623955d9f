"""Retrying a partner call on the spot, with jittered exponential backoff.

This is for short hiccups inside one delivery (a dropped connection, a 502).
Longer waits belong to the message bus: when a partner asks for more patience
than the policy allows (``Retry-After`` beyond ``max_s``), the error is raised at
once so the message is redelivered later instead of holding a worker.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from waybill_runtime.outcomes import apply_jitter, classify, is_transient

__all__ = ["RetryPolicy", "retry_call"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# 2**64 times any sane base is already "forever"; stops float overflow.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry.

    ``attempts`` counts every try, the first included; retry ``n`` waits
    ``base_s * 2**(n-1)`` seconds capped at ``max_s``, spread by ±``jitter``.
    """

    attempts: int = 3
    base_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base_s < 0:
            raise ValueError(f"base_s must not be negative, got {self.base_s}")
        if self.max_s < self.base_s:
            raise ValueError(f"max_s ({self.max_s}) must not be below base_s ({self.base_s})")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be a fraction between 0 and 1, got {self.jitter}")

    def delay_s(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``retry`` (1 = the first retry)."""
        exponent = min(max(retry, 1) - 1, _MAX_EXPONENT)
        return apply_jitter(min(self.max_s, self.base_s * 2.0**exponent), self.jitter, rng)


async def retry_call(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    retry_on: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    rng: Callable[[], float] = random.random,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Call ``fn`` until it succeeds, the error is not retryable, or attempts run out.

    By default only errors known to be transient are retried (see
    :func:`waybill_runtime.outcomes.is_transient`); a delay named by the error
    (``TransientError.retry_after_s``, an HTTP ``Retry-After``) is honoured as
    the minimum wait. ``on_retry(retry_number, error, delay_s)`` is told about
    each retry before the wait. The last error is raised unchanged.
    """
    attempt = 1
    while True:
        try:
            return await fn()
        except Exception as exc:
            if attempt >= policy.attempts or not retry_on(exc):
                raise
            delay = policy.delay_s(attempt, rng)
            asked = classify(exc).delay_s
            if asked is not None:
                if asked > policy.max_s:
                    raise  # the partner wants a longer pause than we hold a worker for
                delay = max(delay, asked)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            logger.debug("retry %d/%d in %.2f s after %s", attempt, policy.attempts - 1, delay, exc)
            await sleep(delay)
            attempt += 1
