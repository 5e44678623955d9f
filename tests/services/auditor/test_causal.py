"""Causal order of a timeline: causes first whatever the clocks say, then time, then sequence."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from waybill_auditor.causal import causal_order

T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    id: str
    causation_id: str | None
    time: datetime
    stream: str = "EVENTS"
    stream_sequence: int = 0


def entry(
    id_: str, cause: str | None, second: float, stream: str = "EVENTS", seq: int = 0
) -> Entry:
    return Entry(id_, cause, T0 + timedelta(seconds=second), stream, seq)


def ids(entries: list[Entry]) -> list[str]:
    return [e.id for e in entries]


def test_an_effect_comes_after_its_cause_even_when_its_clock_says_earlier() -> None:
    released = entry("released", None, 10)
    command = entry("release-cmd", "released", 5, "COMMANDS")  # the orchestrator's clock is slow
    accepted = entry("accepted", "release-cmd", 7)

    assert ids(causal_order([accepted, command, released])) == [
        "released",
        "release-cmd",
        "accepted",
    ]


def test_independent_messages_are_ordered_by_time() -> None:
    late = entry("late", None, 20)
    early = entry("early", None, 1)

    assert ids(causal_order([late, early])) == ["early", "late"]


def test_messages_of_the_same_time_are_ordered_by_stream_sequence() -> None:
    second = entry("b", None, 1, seq=8)
    first = entry("a-but-later-in-stream", None, 1, seq=9)
    third = entry("c", None, 1, seq=7)

    assert ids(causal_order([second, first, third])) == ["c", "b", "a-but-later-in-stream"]


def test_siblings_follow_their_cause_in_time_order() -> None:
    cancelled = entry("cancelled", None, 0)
    void = entry("void", "cancelled", 3, "COMMANDS", 2)
    cancel_wh = entry("cancel-wh", "cancelled", 2, "COMMANDS", 1)
    unrelated_before = entry("milestone", None, 1)

    ordered = ids(causal_order([void, cancel_wh, unrelated_before, cancelled]))

    assert ordered == ["cancelled", "milestone", "cancel-wh", "void"]


def test_a_cause_that_is_not_in_the_timeline_does_not_hold_its_effect_back() -> None:
    orphan = entry("orphan", "somebody-elses-message", 5)
    first = entry("first", None, 1)

    assert ids(causal_order([orphan, first])) == ["first", "orphan"]


def test_messages_caught_in_a_causation_cycle_come_last_instead_of_disappearing() -> None:
    a = entry("a", "b", 1)
    b = entry("b", "a", 2)
    root = entry("root", None, 3)

    assert ids(causal_order([b, a, root])) == ["root", "a", "b"]


def test_a_message_naming_itself_as_its_cause_is_kept() -> None:
    selfish = entry("self", "self", 1)

    assert ids(causal_order([selfish])) == ["self"]


@pytest.mark.parametrize("seed", range(20))
def test_the_order_is_the_same_whatever_order_the_rows_came_in(seed: int) -> None:
    chain = [entry("e0", None, 0)]
    for n in range(1, 12):
        # Skewed clocks: each step's time is random, its cause is the step before.
        chain.append(entry(f"e{n}", f"e{n - 1}", random.Random(n).uniform(-5, 5), seq=n))
    shuffled = list(chain)
    random.Random(seed).shuffle(shuffled)

    assert ids(causal_order(shuffled)) == [f"e{n}" for n in range(12)]


def test_nothing_to_order_gives_nothing() -> None:
    assert causal_order([]) == []
