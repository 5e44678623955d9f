"""Token buckets: stay under a partner's request rate (e.g. label purchases per second).

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s``. Waiting
callers reserve their tokens up front (the balance may go below zero), so they
are served in arrival order and each sleeps exactly as long as its share needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["RateLimits", "TokenBucket"]


class TokenBucket:
    """Allow ``rate_per_s`` calls per second on average, bursts of up to ``burst``."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
        if not burst >= 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate_per_s)

    def _check(self, tokens: float) -> None:
        if not 0 < tokens <= self.burst:
            raise ValueError(f"can take between 0 and {self.burst:g} tokens at once, not {tokens}")

    @property
    def available(self) -> float:
        """Tokens that could be taken right now (negative while callers are queued)."""
        self._refill()
        return self._tokens

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take ``tokens`` if they are there now; never waits."""
        self._check(tokens)
        self._refill()
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    async def acquire(self, tokens: float = 1.0) -> None:
        """Take ``tokens``, waiting until the bucket has refilled enough."""
        self._check(tokens)
        self._refill()
        self._tokens -= tokens
        if self._tokens >= 0:
            return
        wait_s = -self._tokens / self.rate_per_s
        try:
            await self._sleep(wait_s)
        except BaseException:
            self._tokens += tokens  # gave up waiting: hand the reservation back
            raise


class RateLimits:
    """One token bucket per key (per carrier account), with per-key overrides."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        TokenBucket(rate_per_s, burst)  # fail on bad numbers now, not at the first call
        self._default = (rate_per_s, burst)
        self._limits: dict[str, tuple[float, float]] = {}
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, TokenBucket] = {}

    def set_limit(self, key: str, rate_per_s: float, burst: float) -> None:
        """Give ``key`` its own rate (replaces its bucket, which starts full)."""
        self._buckets[key] = TokenBucket(rate_per_s, burst, clock=self._clock, sleep=self._sleep)
        self._limits[key] = (rate_per_s, burst)

    def for_key(self, key: str) -> TokenBucket:
        """The bucket for ``key`` (the same object every time)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            rate, burst = self._limits.get(key, self._default)
            bucket = TokenBucket(rate, burst, clock=self._clock, sleep=self._sleep)
            self._buckets[key] = bucket
        return bucket
