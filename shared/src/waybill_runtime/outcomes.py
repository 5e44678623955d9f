"""What happens to a message after its handler ran: ack, retry later, or dead letter.

A handler steers the outcome by returning (ack) or by raising. Partner clients
raise the same exceptions, so a carrier timeout deep inside a handler turns into
a delayed redelivery without the handler catching anything.

Classification rules (see :func:`classify`):

* :class:`RetryLater`, :class:`TransientError` and errors that are transient by
  nature (timeouts, connection errors, HTTP 5xx / 408 / 425 / 429, NATS
  connection trouble) → ``RETRY`` (with a delay when the error names one, e.g.
  ``Retry-After``).
* :class:`PermanentError` (and :class:`InvalidMessage`), msgspec decoding and
  validation errors, contract errors and other HTTP 4xx → ``DEAD_LETTER``.
* Anything else → ``RETRY``. An unexpected exception is most likely a bug; a bug
  can be fixed by a redeploy while the message waits, and when it is not, the
  consumer's ``max_deliver`` runs out and the message lands in the dead letter
  stream anyway. Nothing is dropped and nothing is dead-lettered on the first
  hiccup.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import msgspec
import nats.errors
import nats.js.errors

__all__ = [
    "Classification",
    "InvalidMessage",
    "Outcome",
    "PermanentError",
    "RetryLater",
    "TransientError",
    "apply_jitter",
    "backoff_delay",
    "classify",
    "error_type_name",
    "is_transient",
    "parse_retry_after",
]


class RetryLater(Exception):
    """Raised by a handler that wants the message again later (e.g. waiting for a pick)."""

    def __init__(self, reason: str = "retry requested", *, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


class TransientError(Exception):
    """A failure that is expected to go away by itself (partner down, rate limited)."""

    def __init__(
        self, message: str = "transient failure", *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentError(Exception):
    """A failure that no retry can fix (a partner refused the request for good)."""


class InvalidMessage(PermanentError):
    """The message itself is wrong: it does not decode or breaks a business rule."""


class Outcome(enum.Enum):
    """The fate of one delivery."""

    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


class Classification(msgspec.Struct, frozen=True):
    """The verdict on an exception: what to do, after how long, and why."""

    outcome: Outcome
    delay_s: float | None
    reason: str
    error_type: str


# HTTP statuses below 500 that still mean "try again later".
_RETRYABLE_4XX = frozenset({408, 425, 429})

# NATS client errors that describe the connection, not the request.
_TRANSIENT_NATS: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.NoRespondersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.SlowConsumerError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
    nats.js.errors.NoStreamResponseError,
    # Another writer updated the key first: re-read and try again.
    nats.js.errors.KeyWrongLastSequenceError,
)

# Transient by nature. Checked after the NATS and HTTP-response branches
# because several of those errors also derive from OSError / TimeoutError.
_TRANSIENT_BUILTIN: tuple[type[BaseException], ...] = (
    TimeoutError,  # also asyncio.TimeoutError and aiohttp.ServerTimeoutError
    ConnectionError,
    OSError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,  # the body was cut off mid-way
)


def error_type_name(exc: BaseException) -> str:
    """The fully qualified type name, as OpenTelemetry's ``error.type`` wants it."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_contract_error(exc: BaseException) -> bool:
    # Matched by name so the runtime does not need a particular version of the
    # contracts package to classify its errors.
    return any(
        klass.__name__ == "ContractError" and klass.__module__.startswith("waybill_contracts")
        for klass in type(exc).__mro__
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date).

    Returns None when the header is absent or unreadable; a date in the past
    means "now" (0.0).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _retry(exc: BaseException, reason: str, delay_s: float | None = None) -> Classification:
    return Classification(Outcome.RETRY, delay_s, reason, error_type_name(exc))


def _dead_letter(exc: BaseException, reason: str) -> Classification:
    return Classification(Outcome.DEAD_LETTER, None, reason, error_type_name(exc))


def _classify_http(exc: aiohttp.ClientResponseError) -> Classification:
    where = f"{exc.request_info.method} {exc.request_info.url}" if exc.request_info else "request"
    reason = f"HTTP {exc.status} from {where}"
    if exc.status >= 500 or exc.status in _RETRYABLE_4XX:
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        return _retry(exc, reason, parse_retry_after(retry_after))
    return _dead_letter(exc, reason)


def _classify_known(exc: BaseException) -> Classification | None:
    """Classify the exceptions whose meaning is known; None for anything else."""
    if isinstance(exc, RetryLater):
        return _retry(exc, f"retry requested: {exc}", exc.delay_s)
    if isinstance(exc, TransientError):
        return _retry(exc, f"transient error: {exc}", exc.retry_after_s)
    if isinstance(exc, PermanentError):
        kind = "invalid message" if isinstance(exc, InvalidMessage) else "permanent error"
        return _dead_letter(exc, f"{kind}: {exc}")
    if isinstance(exc, msgspec.ValidationError):
        return _dead_letter(exc, f"invalid message: {exc}")
    if isinstance(exc, msgspec.DecodeError):
        return _dead_letter(exc, f"undecodable message: {exc}")
    if _is_contract_error(exc):
        return _dead_letter(exc, f"contract violation: {exc}")
    if isinstance(exc, aiohttp.ClientResponseError):
        return _classify_http(exc)
    if isinstance(exc, _TRANSIENT_NATS):
        return _retry(exc, f"NATS unavailable: {_describe(exc)}")
    if isinstance(exc, TimeoutError):
        return _retry(exc, f"timed out: {_describe(exc)}")
    if isinstance(exc, _TRANSIENT_BUILTIN):
        return _retry(exc, f"connection problem: {_describe(exc)}")
    if isinstance(exc, BaseExceptionGroup):
        return _classify_group(exc)
    return None


def _classify_group(group: BaseExceptionGroup[Any]) -> Classification:
    # A task group that failed: the worst member decides. One permanent failure
    # means the whole unit of work cannot succeed by retrying.
    verdicts = [classify(member) for member in group.exceptions]
    for verdict in verdicts:
        if verdict.outcome is Outcome.DEAD_LETTER:
            return verdict
    delays = [v.delay_s for v in verdicts if v.delay_s is not None]
    reasons = "; ".join(v.reason for v in verdicts)
    return Classification(
        Outcome.RETRY, max(delays) if delays else None, reasons, error_type_name(group)
    )


def classify(exc: BaseException) -> Classification:
    """Decide the outcome of a delivery whose handler raised ``exc``."""
    known = _classify_known(exc)
    if known is not None:
        return known
    if isinstance(exc, asyncio.CancelledError):
        return _retry(exc, "processing was cancelled (shutting down)")
    # Unexpected: most likely a bug. Retrying gives a fix time to be deployed;
    # exhausted retries still end in the dead letter stream.
    detail = f": {exc}" if str(exc) else ""
    return _retry(exc, f"unexpected error: {type(exc).__name__}{detail}")


def is_transient(exc: BaseException) -> bool:
    """True for errors known to go away by themselves (what a partner client retries).

    Unlike :func:`classify`, unexpected exceptions are *not* transient here:
    retrying a bug on the spot only repeats it.
    """
    known = _classify_known(exc)
    return known is not None and known.outcome is Outcome.RETRY


def apply_jitter(delay_s: float, jitter: float, rng: Callable[[], float] = random.random) -> float:
    """Spread ``delay_s`` uniformly by ±``jitter`` (a fraction) so retries do not stampede."""
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be a fraction between 0 and 1, got {jitter}")
    return max(0.0, delay_s * (1.0 + jitter * (2.0 * rng() - 1.0)))


def backoff_delay(
    attempt: int,
    schedule: Sequence[float],
    jitter: float = 0.2,
    *,
    rng: Callable[[], float] = random.random,
) -> float:
    """The delay before redelivery number ``attempt`` (1-based) from a backoff schedule.

    Attempt 1 waits ``schedule[0]``; attempts past the end repeat the last entry.
    """
    if not schedule:
        raise ValueError("backoff schedule is empty: give at least one delay in seconds")
    index = min(max(attempt, 1), len(schedule)) - 1
    return apply_jitter(float(schedule[index]), jitter, rng)
