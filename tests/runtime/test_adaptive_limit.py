"""The adaptive limit: grows while calls go well, halves once per round when they do not."""

from __future__ import annotations

import asyncio

import pytest

from waybill_runtime.resilience.adaptive import AdaptiveLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _fine_call(limit: AdaptiveLimit) -> None:
    async with limit.slot():
        pass


async def test_fast_calls_grow_the_cap_up_to_the_maximum() -> None:
    limit = AdaptiveLimit(8, initial=2, slow_s=5, clock=Clock())
    for _ in range(200):
        await _fine_call(limit)
    assert limit.cap == 8


async def test_growth_is_about_one_call_per_round() -> None:
    limit = AdaptiveLimit(64, initial=4, slow_s=5, clock=Clock())
    for _ in range(4):  # one round at a cap of 4
        await _fine_call(limit)
    assert limit.cap == 4  # 4.92: a round at 4 adds about one
    for _ in range(5):
        await _fine_call(limit)
    assert limit.cap == 5  # 5.86


async def test_an_overloaded_partner_halves_the_cap_once_per_round() -> None:
    limit = AdaptiveLimit(16, minimum=2, initial=16, slow_s=5, clock=Clock())
    # Four calls under way when Odoo starts answering with lock conflicts.
    entered = [limit.slot() for _ in range(4)]
    slots = [await cm.__aenter__() for cm in entered]
    for cm, slot in zip(entered, slots, strict=True):
        slot.partner_overloaded()
        await cm.__aexit__(None, None, None)
    assert limit.cap == 8  # not 1: one round of bad news is one cut
    async with limit.slot() as slot:
        slot.partner_overloaded()
    assert limit.cap == 4
    for _ in range(5):
        async with limit.slot() as slot:
            slot.partner_overloaded()
    assert limit.cap == 2  # never under the minimum


async def test_a_slow_call_counts_as_overload() -> None:
    clock = Clock()
    limit = AdaptiveLimit(8, initial=8, slow_s=5, clock=clock)
    async with limit.slot():
        clock.now += 6
    assert limit.cap == 4


async def test_callers_beyond_the_cap_wait_in_arrival_order() -> None:
    limit = AdaptiveLimit(2, initial=2, slow_s=5, clock=Clock())
    order: list[int] = []
    release = asyncio.Event()

    async def call(n: int) -> None:
        async with limit.slot():
            order.append(n)
            await release.wait()

    tasks = [asyncio.create_task(call(n)) for n in range(5)]
    await asyncio.sleep(0.01)
    assert order == [0, 1] and limit.in_flight == 2
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4] and limit.in_flight == 0


async def test_a_cancelled_waiter_gives_its_turn_to_the_next() -> None:
    limit = AdaptiveLimit(1, initial=1, slow_s=5, clock=Clock())
    holder = limit.slot()
    await holder.__aenter__()
    cancelled = asyncio.create_task(_fine_call(limit))
    waiting = asyncio.create_task(_fine_call(limit))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    await holder.__aexit__(None, None, None)
    await asyncio.wait_for(waiting, 5)  # a bound for a hung test
    assert limit.in_flight == 0


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="minimum <= maximum"):
        AdaptiveLimit(2, minimum=3, slow_s=1)
    with pytest.raises(ValueError, match="slow_s"):
        AdaptiveLimit(2, slow_s=0)
