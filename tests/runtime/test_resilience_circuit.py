"""Circuit breakers open on repeated partner failures and probe their way back."""

from __future__ import annotations

import asyncio

import pytest

from waybill_runtime.outcomes import Outcome, PermanentError, TransientError, classify
from waybill_runtime.resilience import (
    CircuitBreaker,
    CircuitBreakers,
    CircuitOpenError,
    CircuitState,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def ok() -> str:
    return "booked"


async def partner_down() -> str:
    raise TimeoutError("carrier-a did not answer")


async def refused() -> str:
    raise PermanentError("address refused")


def state_of(breaker: CircuitBreaker) -> CircuitState:
    """The state, read afresh (the clock moves it; type checkers cannot know)."""
    return breaker.state


async def fail_times(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(TimeoutError):
            await breaker.call(partner_down)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=3,
        reset_timeout_s=30.0,
        half_open_max_calls=1,
        name="carrier-a",
        clock=clock,
    )


async def test_circuit_opens_after_threshold_consecutive_failures(breaker: CircuitBreaker) -> None:
    await fail_times(breaker, 2)
    assert state_of(breaker) is CircuitState.CLOSED
    await fail_times(breaker, 1)
    assert state_of(breaker) is CircuitState.OPEN


async def test_open_circuit_fails_fast_without_calling_the_partner(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    await fail_times(breaker, 3)
    clock.now += 10
    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        return "booked"

    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(counted)
    assert calls == 0
    assert caught.value.retry_after_s == pytest.approx(20.0)
    assert "carrier-a" in str(caught.value)


async def test_open_circuit_error_is_a_transient_error_retried_after_the_reset(
    breaker: CircuitBreaker,
) -> None:
    await fail_times(breaker, 3)
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(ok)
    assert isinstance(caught.value, TransientError)
    verdict = classify(caught.value)
    assert (verdict.outcome, verdict.delay_s) == (Outcome.RETRY, 30.0)


async def test_a_success_resets_the_failure_count(breaker: CircuitBreaker) -> None:
    await fail_times(breaker, 2)
    assert await breaker.call(ok) == "booked"
    assert breaker.consecutive_failures == 0
    await fail_times(breaker, 2)
    assert breaker.state is CircuitState.CLOSED


async def test_a_partner_saying_no_does_not_open_the_circuit(breaker: CircuitBreaker) -> None:
    for _ in range(5):
        with pytest.raises(PermanentError):
            await breaker.call(refused)
    assert breaker.state is CircuitState.CLOSED


async def test_circuit_turns_half_open_after_the_reset_timeout(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    await fail_times(breaker, 3)
    clock.now += 29.9
    assert state_of(breaker) is CircuitState.OPEN
    clock.now += 0.1
    assert state_of(breaker) is CircuitState.HALF_OPEN
    assert breaker.retry_after_s == 0.0


async def test_successful_trial_call_closes_the_circuit(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    await fail_times(breaker, 3)
    clock.now += 30
    assert await breaker.call(ok) == "booked"
    assert breaker.state is CircuitState.CLOSED


async def test_failed_trial_call_opens_the_circuit_again_for_a_full_timeout(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    await fail_times(breaker, 3)
    clock.now += 30
    await fail_times(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after_s == pytest.approx(30.0)


async def test_half_open_lets_only_the_allowed_number_of_trials_through(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    await fail_times(breaker, 3)
    clock.now += 30
    release = asyncio.Event()

    async def slow_trial() -> str:
        await release.wait()
        return "booked"

    trial = asyncio.create_task(breaker.call(slow_trial))
    await asyncio.sleep(0)  # let the trial enter the breaker
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    release.set()
    assert await trial == "booked"
    assert breaker.state is CircuitState.CLOSED


async def test_results_of_calls_admitted_before_a_transition_are_ignored(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    release = asyncio.Event()

    async def slow_success() -> str:
        await release.wait()
        return "booked"

    straggler = asyncio.create_task(breaker.call(slow_success))
    await asyncio.sleep(0)
    await fail_times(breaker, 3)
    clock.now += 30
    assert breaker.state is CircuitState.HALF_OPEN
    release.set()
    await straggler
    # Only a trial call admitted while half-open may close the circuit.
    assert breaker.state is CircuitState.HALF_OPEN


async def test_async_with_counts_failures_and_successes(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        with pytest.raises(TimeoutError):
            async with breaker:
                raise TimeoutError
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pytest.fail("the block must not run while the circuit is open")


async def test_cancelled_call_neither_opens_nor_closes_the_circuit(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    await fail_times(breaker, 3)
    clock.now += 30

    async def hangs() -> str:
        await asyncio.Event().wait()
        return "never"

    trial = asyncio.create_task(breaker.call(hangs))
    await asyncio.sleep(0)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(ok) == "booked"  # the trial slot was given back


async def test_state_changes_are_reported_and_a_broken_listener_is_survived(
    clock: FakeClock,
) -> None:
    seen: list[tuple[str, CircuitState, CircuitState]] = []
    reasons: list[str] = []

    def listener(name: str, old: CircuitState, new: CircuitState, reason: str) -> None:
        seen.append((name, old, new))
        reasons.append(reason)
        raise RuntimeError("dashboard down")

    breaker = CircuitBreaker(1, 5.0, name="carrier-b", clock=clock, on_state_change=listener)
    await fail_times(breaker, 1)
    clock.now += 5
    await breaker.call(ok)
    assert seen == [
        ("carrier-b", CircuitState.CLOSED, CircuitState.OPEN),
        ("carrier-b", CircuitState.OPEN, CircuitState.HALF_OPEN),
        ("carrier-b", CircuitState.HALF_OPEN, CircuitState.CLOSED),
    ]
    assert reasons[1:] == [
        "5 s passed since it opened: trial calls go through",
        "a trial call succeeded",
    ]
    assert reasons[0].startswith("1 failures in a row (")


async def test_breakers_are_kept_per_key_and_independent(clock: FakeClock) -> None:
    breakers = CircuitBreakers(failure_threshold=2, reset_timeout_s=10.0, clock=clock)
    carrier_a = breakers.for_key("carrier-a")
    assert breakers.for_key("carrier-a") is carrier_a
    await fail_times(carrier_a, 2)
    assert await breakers.for_key("carrier-b").call(ok) == "booked"
    assert breakers.states() == {"carrier-a": CircuitState.OPEN, "carrier-b": CircuitState.CLOSED}
    assert "carrier-a" in breakers
    assert len(breakers) == 2
    assert carrier_a.name == "carrier-a"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 1.0, 1), "failure_threshold"),
        ((1, -1.0, 1), "reset_timeout_s"),
        ((1, 1.0, 0), "half_open"),
    ],
)
def test_bad_breaker_settings_are_refused(args: tuple[int, float, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(*args)
    with pytest.raises(ValueError, match=message):
        CircuitBreakers(*args)
