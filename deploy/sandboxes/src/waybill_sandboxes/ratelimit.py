"""A token bucket per API key, as partners meter calls (carriers' label purchases, a WMS's
product uploads)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["CallRateLimit"]


class CallRateLimit:
    """Allows ``burst`` calls at once, refilled at ``rate_per_s``, per API key.

    A ``rate_per_s`` of 0 turns the limit off.
    """

    def __init__(
        self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_per_s < 0 or burst < 1:
            raise ValueError("the call rate must be 0 or more and the burst at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def retry_after(self, key: str) -> int | None:
        """Take a token for ``key``: None if allowed, else whole seconds to wait (at least 1)."""
        if self.rate_per_s == 0:
            return None
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate_per_s)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return None
        self._buckets[key] = (tokens, now)
        # Retry-After carries whole seconds; rounding up never invites an early retry.
        return max(1, math.ceil((1 - tokens) / self.rate_per_s))
