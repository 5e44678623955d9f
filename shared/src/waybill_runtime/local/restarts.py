"""When to start a crashed child of the local stack again: growing pauses, as Kubernetes does.

A child that keeps crashing is started again after 1 s, then 2, 4, ... up to
30 s, so a broken service does not spin the machine; once it has stayed up
for a minute its next crash starts the count again. The clock is given, so
the schedule is tested without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FIRST_PAUSE_S", "LONGEST_PAUSE_S", "STABLE_AFTER_S", "RestartSchedule"]

FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 30.0
STABLE_AFTER_S = 60.0
"""A child up this long is healthy again: its next crash waits the first pause."""


@dataclass
class _Child:
    crashes: int = 0
    started_at: float = 0.0
    due_at: float | None = None  # when to start it again; None: running


@dataclass
class RestartSchedule:
    """Crashes and restart times of the stack's children, by name."""

    children: dict[str, _Child] = field(default_factory=dict)

    def started(self, name: str, now: float) -> None:
        """``name`` (re)started at ``now``."""
        child = self.children.setdefault(name, _Child())
        child.started_at, child.due_at = now, None

    def crashed(self, name: str, now: float) -> float:
        """``name`` was found dead at ``now``; returns the pause before its restart."""
        child = self.children.setdefault(name, _Child(started_at=now))
        if child.due_at is not None:  # already waiting for its restart
            return child.due_at - now
        if now - child.started_at >= STABLE_AFTER_S:
            child.crashes = 0
        pause: float = min(FIRST_PAUSE_S * float(2**child.crashes), LONGEST_PAUSE_S)
        child.crashes += 1
        child.due_at = now + pause
        return pause

    def waiting(self, name: str) -> bool:
        """True when ``name`` crashed and has not been started again yet."""
        child = self.children.get(name)
        return child is not None and child.due_at is not None

    def due(self, name: str, now: float) -> bool:
        """True when ``name`` crashed and its pause is over."""
        child = self.children.get(name)
        return child is not None and child.due_at is not None and now >= child.due_at

    def crashes(self, name: str) -> int:
        """Crashes in a row (reset after a stable run)."""
        child = self.children.get(name)
        return 0 if child is None else child.crashes
