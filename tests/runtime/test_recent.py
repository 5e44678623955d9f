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
