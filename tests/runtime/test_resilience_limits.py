"""Token buckets, concurrency limits and per-key locks for partner calls."""

from __future__ import annotations

import asyncio

import pytest

from waybill_runtime.resilience import ConcurrencyLimit, KeyedLock, RateLimits, TokenBucket


class FakeTime:
    """A clock and a sleep that moves it: waits take no real time."""

    def __init__(self) -> None:
        self.now = 50.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


def bucket(time_: FakeTime, rate: float = 2.0, burst: float = 3.0) -> TokenBucket:
    return TokenBucket(rate, burst, clock=time_.clock, sleep=time_.sleep)


def test_a_full_bucket_allows_a_burst_then_refuses(time_: FakeTime) -> None:
    labels = bucket(time_)
    assert [labels.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_the_bucket_refills_at_its_rate(time_: FakeTime) -> None:
    labels = bucket(time_, rate=2.0, burst=1.0)
    assert labels.try_acquire()
    time_.now += 0.4
    assert not labels.try_acquire()
    time_.now += 0.1
    assert labels.try_acquire()


def test_the_bucket_never_holds_more_than_its_burst(time_: FakeTime) -> None:
    labels = bucket(time_, rate=10.0, burst=2.0)
    time_.now += 3600
    assert labels.available == 2.0


async def test_acquire_takes_at_once_while_tokens_last(time_: FakeTime) -> None:
    labels = bucket(time_)
    for _ in range(3):
        await labels.acquire()
    assert time_.sleeps == []


async def test_acquire_waits_exactly_until_a_token_is_there(time_: FakeTime) -> None:
    labels = bucket(time_, rate=4.0, burst=1.0)
    await labels.acquire()
    await labels.acquire()
    assert time_.sleeps == [pytest.approx(0.25)]


async def test_waiting_callers_are_paced_in_arrival_order() -> None:
    # Real asyncio.sleep is not used: the sleep only parks callers until released.
    now = 0.0
    parked: list[tuple[float, asyncio.Event]] = []

    async def park(seconds: float) -> None:
        event = asyncio.Event()
        parked.append((seconds, event))
        await event.wait()

    labels = TokenBucket(2.0, 1.0, clock=lambda: now, sleep=park)
    await labels.acquire()
    first = asyncio.create_task(labels.acquire())
    second = asyncio.create_task(labels.acquire())
    await asyncio.sleep(0)
    assert [seconds for seconds, _ in parked] == [pytest.approx(0.5), pytest.approx(1.0)]
    for _, event in parked:
        event.set()
    await asyncio.gather(first, second)


async def test_a_cancelled_wait_gives_its_tokens_back(time_: FakeTime) -> None:
    async def never(seconds: float) -> None:
        await asyncio.Event().wait()

    labels = TokenBucket(1.0, 1.0, clock=time_.clock, sleep=never)
    await labels.acquire()
    waiter = asyncio.create_task(labels.acquire())
    await asyncio.sleep(0)
    assert labels.available == -1.0
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert labels.available == 0.0


@pytest.mark.parametrize(
    ("rate", "burst", "message"), [(0.0, 1.0, "rate_per_s"), (1.0, 0.5, "burst")]
)
def test_bad_bucket_settings_are_refused(rate: float, burst: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TokenBucket(rate, burst)
    with pytest.raises(ValueError, match=message):
        RateLimits(rate, burst)


async def test_asking_for_more_than_the_burst_is_refused(time_: FakeTime) -> None:
    labels = bucket(time_, burst=2.0)
    with pytest.raises(ValueError, match="between 0 and 2"):
        labels.try_acquire(3)
    with pytest.raises(ValueError, match="between 0 and 2"):
        await labels.acquire(0)


def test_rate_limits_are_kept_per_key(time_: FakeTime) -> None:
    limits = RateLimits(1.0, 1.0, clock=time_.clock, sleep=time_.sleep)
    assert limits.for_key("carrier-a") is limits.for_key("carrier-a")
    assert limits.for_key("carrier-a").try_acquire()
    assert not limits.for_key("carrier-a").try_acquire()
    assert limits.for_key("carrier-b").try_acquire()


def test_a_key_can_have_its_own_limit(time_: FakeTime) -> None:
    limits = RateLimits(1.0, 1.0, clock=time_.clock, sleep=time_.sleep)
    limits.set_limit("carrier-fast", 50.0, 5.0)
    fast = limits.for_key("carrier-fast")
    assert (fast.rate_per_s, fast.burst) == (50.0, 5.0)
    assert limits.for_key("carrier-slow").rate_per_s == 1.0


async def test_concurrency_limit_never_lets_more_than_n_in() -> None:
    limit = ConcurrencyLimit(3)
    highest = 0
    gate = asyncio.Event()

    async def rpc() -> None:
        nonlocal highest
        async with limit:
            highest = max(highest, limit.in_flight)
            await gate.wait()

    tasks = [asyncio.create_task(rpc()) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert limit.in_flight == 3
    gate.set()
    await asyncio.gather(*tasks)
    assert highest == 3
    assert limit.in_flight == 0


async def test_concurrency_limit_frees_its_slot_when_the_call_fails() -> None:
    limit = ConcurrencyLimit(1)
    with pytest.raises(TimeoutError):
        async with limit:
            raise TimeoutError
    assert limit.in_flight == 0
    async with limit:
        assert limit.in_flight == 1


def test_concurrency_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        ConcurrencyLimit(0)


async def test_keyed_lock_never_runs_two_operations_on_one_record() -> None:
    locks = KeyedLock()
    inside: set[int] = set()
    overlaps = 0
    order: list[int] = []

    async def write(n: int) -> None:
        nonlocal overlaps
        async with locks.hold(("stock.picking", 42)):
            overlaps += bool(inside)
            inside.add(n)
            order.append(n)
            for _ in range(3):
                await asyncio.sleep(0)
            inside.discard(n)

    await asyncio.gather(*(write(n) for n in range(5)))
    assert overlaps == 0
    assert sorted(order) == [0, 1, 2, 3, 4]


async def test_keyed_lock_lets_different_records_proceed_together() -> None:
    locks = KeyedLock()
    both_inside = asyncio.Event()
    entered: set[str] = set()

    async def write(record: str) -> None:
        async with locks.hold(record):
            entered.add(record)
            if len(entered) == 2:
                both_inside.set()
            await asyncio.wait_for(both_inside.wait(), timeout=5)

    await asyncio.gather(write("picking/1"), write("picking/2"))
    assert entered == {"picking/1", "picking/2"}


async def test_keyed_lock_forgets_keys_once_idle() -> None:
    locks = KeyedLock()
    async with locks.hold("picking/1"):
        assert locks.locked("picking/1")
        assert len(locks) == 1
    assert not locks.locked("picking/1")
    assert len(locks) == 0


async def test_keyed_lock_forgets_keys_after_a_cancelled_waiter() -> None:
    locks = KeyedLock()
    holder_in = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("picking/7"):
            holder_in.set()
            await release.wait()

    async def waiter() -> None:
        async with locks.hold("picking/7"):
            pytest.fail("the waiter was cancelled before it got the lock")

    holding = asyncio.create_task(holder())
    await holder_in.wait()
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    await holding
    assert len(locks) == 0
