"""Sandbox profiles: how much a sandbox behaves like a slow, careful partner.

The ``standard`` profile is what the options say (simulated warehouse and
carrier time, the carriers' purchase limit, one webhook at a time). The
``benchmark`` profile takes every partner-side brake off, so that what a
benchmark measures is Waybill and not the stand-ins' simulated waiting: no
stage or tracking delays, no purchase limit, webhooks delivered many at once,
shelves that do not run empty.
It is a setting (``--profile`` or ``WAYBILL_SANDBOX_PROFILE``), so the local
stack's processes can be put in it without changing how they are started.
"""

from __future__ import annotations

import enum
import os

__all__ = [
    "BENCHMARK_STOCK",
    "BENCHMARK_WEBHOOK_CONCURRENCY",
    "PROFILE_ENV",
    "SandboxProfile",
    "profile_from_env",
]

PROFILE_ENV = "WAYBILL_SANDBOX_PROFILE"
"""The environment variable every sandbox command reads its profile from."""

BENCHMARK_WEBHOOK_CONCURRENCY = 32
"""Webhooks in flight at once in the benchmark profile: enough that delivery never queues
behind one slow POST on a small machine, few enough not to exhaust the receiver's sockets."""


BENCHMARK_STOCK = 100_000_000.0
"""Units of each SKU the WMS holds in the benchmark profile: a burst of any size is picked in
full (the standard 1,000 runs out around 2,000 orders, which then stop as short picks)."""


class SandboxProfile(enum.StrEnum):
    """How a sandbox command applies its timing and limit options."""

    STANDARD = "standard"
    """The options as given: simulated delays, purchase limits, one webhook at a time."""
    BENCHMARK = "benchmark"
    """No delays, no purchase limit, concurrent webhook delivery, stock that does not run out
    (overrides those options)."""


def profile_from_env() -> SandboxProfile:
    """The profile named by :data:`PROFILE_ENV` (standard when unset)."""
    value = os.environ.get(PROFILE_ENV, "").strip().lower()
    try:
        return SandboxProfile(value) if value else SandboxProfile.STANDARD
    except ValueError:
        choices = ", ".join(SandboxProfile)
        raise ValueError(f"${PROFILE_ENV} is {value!r}: use one of {choices}") from None
