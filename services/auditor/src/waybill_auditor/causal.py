"""Causal order: every message after the message that caused it, then by time.

Clocks of different services disagree, and the auditor reads events and
commands from two streams at once, so neither ce-time nor arrival order alone
is the story of an order. The causation ids are: a message is placed only
after its cause; among messages whose causes are placed, the earliest
ce-time goes first, then the stream and its sequence, then the id (so the
order is the same on every call).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeVar


class Causal(Protocol):
    """What causal ordering needs to know about a message."""

    @property
    def id(self) -> str: ...

    @property
    def causation_id(self) -> str | None: ...

    @property
    def time(self) -> datetime: ...

    @property
    def stream(self) -> str: ...

    @property
    def stream_sequence(self) -> int: ...


C = TypeVar("C", bound=Causal)


def _tie_key(entry: Causal) -> tuple[datetime, str, int, str]:
    return (entry.time, entry.stream, entry.stream_sequence, entry.id)


def causal_order(entries: Sequence[C]) -> list[C]:
    """``entries`` with each one after its cause; ties by time, stream sequence, id.

    A cause that is not among ``entries`` (another order's message, or one the
    stream no longer holds) does not hold its effects back. Entries caught in
    a causation cycle (malformed headers) come last, by time, rather than
    being dropped.
    """
    by_id = {entry.id: entry for entry in entries}
    children: dict[str, list[C]] = {}
    waiting: dict[str, int] = {}
    ready: list[tuple[tuple[datetime, str, int, str], int, C]] = []
    for index, entry in enumerate(entries):
        cause = entry.causation_id
        if cause is not None and cause in by_id and cause != entry.id:
            children.setdefault(cause, []).append(entry)
            waiting[entry.id] = 1
        else:
            heapq.heappush(ready, (_tie_key(entry), index, entry))
    ordered: list[C] = []
    placed: set[str] = set()
    counter = len(entries)
    while ready:
        _, _, entry = heapq.heappop(ready)
        ordered.append(entry)
        placed.add(entry.id)
        for child in children.get(entry.id, ()):
            waiting[child.id] -= 1
            if waiting[child.id] == 0:
                counter += 1
                heapq.heappush(ready, (_tie_key(child), counter, child))
    if len(ordered) < len(entries):
        stranded = [entry for entry in entries if entry.id not in placed]
        ordered.extend(sorted(stranded, key=_tie_key))
    return ordered
