"""The bounded memory of recent entries."""

from __future__ import annotations

import pytest

from waybill_runtime.recent import Recent


def test_the_least_recently_used_entry_is_forgotten_first() -> None:
    recent: Recent[str, int] = Recent(2)
    recent.put("a", 1)
    recent.put("b", 2)
    assert recent.get("a") == 1  # "a" is now the most recent
    recent.put("c", 3)
    assert "b" not in recent and recent.get("a") == 1 and recent.get("c") == 3
    assert len(recent) == 2


def test_forgetting_and_a_size_of_zero() -> None:
    recent: Recent[str, int] = Recent(1)
    recent.put("a", 1)
    recent.forget("a")
    recent.forget("never there")
    assert recent.get("a") is None
    nothing: Recent[str, int] = Recent(0)
    nothing.put("a", 1)
    assert len(nothing) == 0


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="size must be 0 or more"):
        Recent(-1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_with_a_maximum_age_is_forgotten_once_that_old() -> None:
    clock = Clock()
    recent: Recent[str, int] = Recent(4, max_age_s=5.0, clock=clock)
    recent.put("a", 1)
    clock.now += 3.0
    recent.put("b", 2)
    clock.now += 1.5
    # Read at 4.5 s: still current, and reading it does not make it younger.
    assert recent.get("a") == 1 and "a" in recent
    clock.now += 0.5
    assert "a" not in recent
    assert recent.get("a") is None and recent.get("b") == 2
    assert len(recent) == 1  # "a", too old, is gone from memory
    recent.put("b", 3)  # put again: young again
    clock.now += 4.9
    assert recent.get("b") == 3


def test_a_maximum_age_of_zero_keeps_nothing_current() -> None:
    recent: Recent[str, int] = Recent(4, max_age_s=0.0, clock=Clock())
    recent.put("a", 1)
    assert recent.get("a") is None and "a" not in recent


def test_an_entry_pushed_out_by_size_takes_its_age_with_it() -> None:
    clock = Clock()
    recent: Recent[str, int] = Recent(1, max_age_s=5.0, clock=clock)
    recent.put("a", 1)
    recent.put("b", 2)
    assert recent.get("a") is None and recent.get("b") == 2
    assert recent._put_at == {"b": 100.0}


def test_a_negative_maximum_age_is_refused() -> None:
    with pytest.raises(ValueError, match="max_age_s must be 0 or more"):
        Recent(1, max_age_s=-1.0)


def test_every_entry_too_old_is_dropped_at_the_next_look_up_however_many() -> None:
    clock = Clock()
    recent: Recent[str, int] = Recent(100, max_age_s=5.0, clock=clock)
    for n in range(10):
        recent.put(f"old-{n}", n)
    clock.now += 4.0
    recent.put("young", 1)
    clock.now += 1.0
    assert recent.get("someone else") is None
    assert len(recent) == 1 and recent.get("young") == 1
