"""Circuit breakers: stop calling a partner that keeps failing, probe it now and then.

Closed: calls go through; consecutive failures are counted. At
``failure_threshold`` the circuit opens: calls fail at once with
:class:`CircuitOpenError` (a transient error, so messages are retried later,
and the carrier router can pick the next carrier). After ``reset_timeout_s``
the circuit is half-open: up to ``half_open_max_calls`` trial calls go through;
a success closes it, a failure opens it again.

Only failures that say "the partner is unwell" count (by default the transient
ones: timeouts, connection errors, 5xx, 429). A partner that answers "no" (a
4xx, a refused address) is working fine, so permanent errors count as success.
"""

from __future__ import annotations

import contextvars
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from waybill_runtime.outcomes import TransientError, is_transient

__all__ = [
    "CircuitBreaker",
    "CircuitBreakers",
    "CircuitOpenError",
    "CircuitState",
    "StateListener",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

StateListener = Callable[[str, "CircuitState", "CircuitState", str], None]
"""Told of each transition: the breaker's name, the state it left, the one it entered, and why
in words (the failures in a row and the last error's class, a trial's outcome)."""


class CircuitState(enum.StrEnum):
    """Where a circuit breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(TransientError):
    """The partner's circuit is open: the call was not attempted."""

    def __init__(self, name: str, retry_after_s: float | None) -> None:
        partner = name or "partner"
        super().__init__(
            f"circuit for {partner} is open after repeated failures; not calling it for now",
            retry_after_s=retry_after_s,
        )
        self.name = name


@dataclass(frozen=True, slots=True)
class _Ticket:
    """One admitted call: the state generation it entered in, and whether it is a trial."""

    generation: int
    trial: bool


class CircuitBreaker:
    """A circuit breaker for one partner (or one partner endpoint)."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        half_open_max_calls: int = 1,
        *,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
        is_failure: Callable[[BaseException], bool] = is_transient,
        on_state_change: StateListener | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        if reset_timeout_s < 0:
            raise ValueError(f"reset_timeout_s must not be negative, got {reset_timeout_s}")
        if half_open_max_calls < 1:
            raise ValueError(f"half_open_max_calls must be at least 1, got {half_open_max_calls}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._is_failure = is_failure
        self._on_state_change = on_state_change
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0
        # Bumped on every transition, so results of calls admitted under an
        # earlier state do not move the current one.
        self._generation = 0
        # Tickets of `async with` blocks, per task (a stack, in case of nesting).
        self._entered: contextvars.ContextVar[tuple[_Ticket, ...]] = contextvars.ContextVar(
            f"waybill_circuit_{id(self)}", default=()
        )

    @property
    def state(self) -> CircuitState:
        """The current state (an open circuit turns half-open once its timeout passed)."""
        if (
            self._state is CircuitState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout_s
        ):
            self._transition(
                CircuitState.HALF_OPEN,
                f"{self.reset_timeout_s:g} s passed since it opened: trial calls go through",
            )
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures in a row while closed."""
        return self._failures

    @property
    def retry_after_s(self) -> float:
        """Seconds until an open circuit lets a trial call through (0 when not open)."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_timeout_s - self._clock())

    def _transition(self, new: CircuitState, reason: str) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        self._generation += 1
        self._trials = 0
        if new is CircuitState.OPEN:
            self._opened_at = self._clock()
        if new is CircuitState.CLOSED:
            self._failures = 0
        logger.info("circuit %s: %s -> %s (%s)", self.name or "(unnamed)", old, new, reason)
        if self._on_state_change is not None:
            try:
                self._on_state_change(self.name, old, new, reason)
            except Exception:
                # A broken listener must not break calls to the partner.
                logger.exception("circuit state listener failed")

    def _admit(self) -> _Ticket:
        state = self.state
        if state is CircuitState.CLOSED:
            return _Ticket(self._generation, trial=False)
        if state is CircuitState.HALF_OPEN:
            if self._trials < self.half_open_max_calls:
                self._trials += 1
                return _Ticket(self._generation, trial=True)
            raise CircuitOpenError(self.name, retry_after_s=None)
        raise CircuitOpenError(self.name, retry_after_s=self.retry_after_s)

    def _settle(self, ticket: _Ticket, error: BaseException | None) -> None:
        if ticket.generation != self._generation:
            return  # the circuit moved on while this call ran
        if ticket.trial:
            self._trials -= 1
        if error is not None and not isinstance(error, Exception):
            return  # cancelled: says nothing about the partner
        if error is not None and self._is_failure(error):
            self.record_failure(error)
        else:
            self.record_success()

    def record_success(self) -> None:
        """Note a call that reached a healthy partner."""
        if self.state is CircuitState.HALF_OPEN:
            self._transition(CircuitState.CLOSED, "a trial call succeeded")
        else:
            self._failures = 0

    def record_failure(self, error: BaseException | None = None) -> None:
        """Note a call that found the partner unwell (``error``: what it raised, if known)."""
        state = self.state
        cause = f" ({type(error).__name__})" if error is not None else ""
        if state is CircuitState.HALF_OPEN:
            self._transition(CircuitState.OPEN, f"a trial call failed{cause}")
        elif state is CircuitState.CLOSED:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._transition(CircuitState.OPEN, f"{self._failures} failures in a row{cause}")

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` through the breaker; raises CircuitOpenError without calling when open."""
        ticket = self._admit()
        try:
            result = await fn()
        except BaseException as error:
            self._settle(ticket, error)
            raise
        self._settle(ticket, None)
        return result

    async def __aenter__(self) -> CircuitBreaker:
        ticket = self._admit()
        self._entered.set((*self._entered.get(), ticket))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack = self._entered.get()
        if not stack:  # pragma: no cover - only if __aexit__ is called by hand
            return
        self._entered.set(stack[:-1])
        self._settle(stack[-1], exc)


class CircuitBreakers:
    """One circuit breaker per key (per carrier, per Odoo instance), created on first use."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        half_open_max_calls: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        is_failure: Callable[[BaseException], bool] = is_transient,
        on_state_change: StateListener | None = None,
    ) -> None:
        # Built once so bad numbers fail here, not on the first call.
        CircuitBreaker(failure_threshold, reset_timeout_s, half_open_max_calls)
        self._settings = (failure_threshold, reset_timeout_s, half_open_max_calls)
        self._clock = clock
        self._is_failure = is_failure
        self._on_state_change = on_state_change
        self._breakers: dict[str, CircuitBreaker] = {}

    def for_key(self, key: str) -> CircuitBreaker:
        """The breaker for ``key`` (the same object every time)."""
        breaker = self._breakers.get(key)
        if breaker is None:
            threshold, reset_s, trials = self._settings
            breaker = CircuitBreaker(
                threshold,
                reset_s,
                trials,
                name=key,
                clock=self._clock,
                is_failure=self._is_failure,
                on_state_change=self._on_state_change,
            )
            self._breakers[key] = breaker
        return breaker

    def states(self) -> dict[str, CircuitState]:
        """The state of every breaker used so far, by key (for partner health views)."""
        return {key: breaker.state for key, breaker in self._breakers.items()}

    def __contains__(self, key: object) -> bool:
        return key in self._breakers

    def __len__(self) -> int:
        return len(self._breakers)
