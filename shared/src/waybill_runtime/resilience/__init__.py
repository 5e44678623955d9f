"""Resilience for partner clients: retries, circuit breakers, rate and concurrency limits,
timeouts."""

from waybill_runtime.resilience.circuit import (
    CircuitBreaker,
    CircuitBreakers,
    CircuitOpenError,
    CircuitState,
)
from waybill_runtime.resilience.concurrency import ConcurrencyLimit, KeyedLock
from waybill_runtime.resilience.rate_limit import RateLimits, TokenBucket
from waybill_runtime.resilience.retry import RetryPolicy, retry_call
from waybill_runtime.resilience.timeouts import PartnerTimeout, with_timeout

__all__ = [
    "CircuitBreaker",
    "CircuitBreakers",
    "CircuitOpenError",
    "CircuitState",
    "ConcurrencyLimit",
    "KeyedLock",
    "PartnerTimeout",
    "RateLimits",
    "RetryPolicy",
    "TokenBucket",
    "retry_call",
    "with_timeout",
]
