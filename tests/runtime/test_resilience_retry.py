"""Retrying partner calls on the spot, and deadlines that name what timed out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from waybill_runtime.outcomes import Outcome, PermanentError, TransientError, classify
from waybill_runtime.resilience import PartnerTimeout, RetryPolicy, retry_call, with_timeout

EXACT = RetryPolicy(attempts=4, base_s=1.0, max_s=30.0, jitter=0.0)


class RecordedSleep:
    """Stands in for asyncio.sleep: remembers the waits, waits for nothing."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def failing(errors: list[BaseException], result: str = "label-123") -> Callable[[], Awaitable[str]]:
    """A call that raises the given errors in turn, then succeeds."""
    calls = iter(errors)

    async def call() -> str:
        error = next(calls, None)
        if error is not None:
            raise error
        return result

    return call


async def test_transient_failures_are_retried_with_exponential_backoff() -> None:
    sleep = RecordedSleep()
    call = failing([TimeoutError(), ConnectionResetError(), TransientError("busy")])
    assert await retry_call(call, EXACT, sleep=sleep) == "label-123"
    assert sleep.waits == [1.0, 2.0, 4.0]


async def test_backoff_is_capped_at_max_s() -> None:
    policy = RetryPolicy(attempts=4, base_s=10.0, max_s=15.0, jitter=0.0)
    sleep = RecordedSleep()
    await retry_call(failing([TimeoutError()] * 3), policy, sleep=sleep)
    assert sleep.waits == [10.0, 15.0, 15.0]


async def test_the_last_error_is_raised_when_attempts_run_out() -> None:
    sleep = RecordedSleep()
    last = TimeoutError("third")
    with pytest.raises(TimeoutError) as caught:
        await retry_call(
            failing([TimeoutError("first"), TimeoutError("second"), last]),
            RetryPolicy(attempts=3, base_s=0.5, jitter=0.0),
            sleep=sleep,
        )
    assert caught.value is last
    assert len(sleep.waits) == 2


@pytest.mark.parametrize(
    "error", [PermanentError("address refused"), KeyError("bug")], ids=["permanent", "bug"]
)
async def test_permanent_errors_and_bugs_are_not_retried(error: Exception) -> None:
    sleep = RecordedSleep()
    with pytest.raises(type(error)):
        await retry_call(failing([error]), EXACT, sleep=sleep)
    assert sleep.waits == []


async def test_retry_after_longer_than_the_backoff_is_honoured() -> None:
    sleep = RecordedSleep()
    await retry_call(failing([TransientError("busy", retry_after_s=7.0)]), EXACT, sleep=sleep)
    assert sleep.waits == [7.0]


async def test_http_429_retry_after_is_honoured() -> None:
    url = URL("https://carrier-a.example/rates")
    info = aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
    limited = aiohttp.ClientResponseError(
        info, (), status=429, headers=CIMultiDictProxy(CIMultiDict({"Retry-After": "3"}))
    )
    sleep = RecordedSleep()
    await retry_call(failing([limited]), EXACT, sleep=sleep)
    assert sleep.waits == [3.0]


async def test_retry_after_beyond_max_s_is_left_to_the_message_bus() -> None:
    sleep = RecordedSleep()
    error = TransientError("come back in an hour", retry_after_s=3600.0)
    with pytest.raises(TransientError) as caught:
        await retry_call(failing([error]), EXACT, sleep=sleep)
    assert sleep.waits == []
    assert classify(caught.value).delay_s == 3600.0


async def test_retry_on_decides_what_is_retried() -> None:
    sleep = RecordedSleep()
    result = await retry_call(
        failing([KeyError("flaky")]),
        EXACT,
        retry_on=lambda error: isinstance(error, KeyError),
        sleep=sleep,
    )
    assert result == "label-123"
    assert sleep.waits == [1.0]


async def test_on_retry_is_told_about_each_retry() -> None:
    seen: list[tuple[int, str, float]] = []
    await retry_call(
        failing([TimeoutError(), TimeoutError()]),
        EXACT,
        sleep=RecordedSleep(),
        on_retry=lambda n, error, delay: seen.append((n, type(error).__name__, delay)),
    )
    assert seen == [(1, "TimeoutError", 1.0), (2, "TimeoutError", 2.0)]


async def test_cancellation_is_never_retried() -> None:
    sleep = RecordedSleep()
    with pytest.raises(asyncio.CancelledError):
        await retry_call(failing([asyncio.CancelledError()]), EXACT, sleep=sleep)
    assert sleep.waits == []


def test_policy_delay_is_jittered_within_bounds() -> None:
    policy = RetryPolicy(attempts=3, base_s=2.0, max_s=60.0, jitter=0.5)
    assert policy.delay_s(2, rng=lambda: 0.0) == pytest.approx(2.0)
    assert policy.delay_s(2, rng=lambda: 0.5) == pytest.approx(4.0)


def test_policy_survives_absurd_retry_numbers() -> None:
    assert RetryPolicy(attempts=2, base_s=1.0, max_s=5.0, jitter=0.0).delay_s(10_000) == 5.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": 0}, "attempts"),
        ({"base_s": -1.0}, "base_s"),
        ({"base_s": 5.0, "max_s": 1.0}, "max_s"),
        ({"jitter": 2.0}, "jitter"),
    ],
)
def test_bad_policies_are_refused_with_the_field_named(
    kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


async def test_with_timeout_returns_the_result_in_time() -> None:
    async def quick() -> str:
        return "rates"

    assert await with_timeout(quick(), 5.0, "carrier-a rates") == "rates"


async def test_with_timeout_names_what_timed_out() -> None:
    with pytest.raises(PartnerTimeout) as caught:
        await with_timeout(asyncio.sleep(10), 0.01, "carrier-a label purchase")
    assert str(caught.value) == "carrier-a label purchase did not answer within 0.01 s"
    assert caught.value.what == "carrier-a label purchase"
    assert classify(caught.value).outcome is Outcome.RETRY


async def test_with_timeout_passes_the_calls_own_timeout_through() -> None:
    own = TimeoutError("socket read timed out")

    async def slow_socket() -> None:
        raise own

    with pytest.raises(TimeoutError) as caught:
        await with_timeout(slow_socket(), 5.0, "odoo write")
    assert caught.value is own


async def test_with_timeout_refuses_a_non_positive_deadline() -> None:
    with pytest.raises(ValueError, match="odoo write"):
        await with_timeout(asyncio.sleep(0), 0, "odoo write")
