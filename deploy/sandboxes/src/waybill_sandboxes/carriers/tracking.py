"""Tracking progression after a label is bought: a scripted, deterministic timeline.

Every label walks label_created → in_transit → out_for_delivery → delivered
with configurable delays. An exception or a return can be forced for a
tracking number or a caller's reference; it replaces the next milestone and
ends the walk. Each carrier maps these milestones to its own vocabulary.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import msgspec

__all__ = ["FORCEABLE", "Milestone", "TrackingEvent", "TrackingTimeline"]

_log = logging.getLogger(__name__)


class Milestone(enum.StrEnum):
    """Waybill's canonical milestones, as far as the sandboxes produce them."""

    LABEL_CREATED = "label_created"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    RETURNED_TO_SENDER = "returned_to_sender"
    CANCELLED = "cancelled"


_ROUTE = (Milestone.IN_TRANSIT, Milestone.OUT_FOR_DELIVERY, Milestone.DELIVERED)
#: Outcomes a test may force instead of the next milestone.
FORCEABLE = (Milestone.EXCEPTION, Milestone.RETURNED_TO_SENDER)

_WHAT_HAPPENED = {
    Milestone.LABEL_CREATED: ("Shipping label created", "Rotterdam"),
    Milestone.IN_TRANSIT: ("Arrived at sort facility", "Utrecht"),
    Milestone.OUT_FOR_DELIVERY: ("Out for delivery", "Amsterdam"),
    Milestone.DELIVERED: ("Delivered, front door", "Amsterdam"),
    Milestone.EXCEPTION: ("Delivery exception: address not found", "Amsterdam"),
    Milestone.RETURNED_TO_SENDER: ("Returned to sender", "Utrecht"),
    Milestone.CANCELLED: ("Label voided", "Rotterdam"),
}


class TrackingEvent(msgspec.Struct, kw_only=True, frozen=True):
    """One scan: what happened, when (event time, not delivery time) and where."""

    milestone: Milestone
    occurred_at: datetime
    message: str
    city: str


OnUpdate = Callable[[str, TrackingEvent], None]


class TrackingTimeline:
    """Runs the scans of every bought label and calls ``on_update(tracking_number, event)``.

    ``delays_s`` are the waits before in_transit, out_for_delivery and
    delivered; the last one repeats if fewer are given.
    """

    def __init__(self, *, delays_s: Sequence[float], on_update: OnUpdate) -> None:
        if any(delay < 0 for delay in delays_s):
            raise ValueError(f"tracking delays must be 0 or more, got {list(delays_s)}")
        self.delays_s = list(delays_s) or [0.0]
        self.history: dict[str, list[TrackingEvent]] = {}
        self._on_update = on_update
        self._references: dict[str, str | None] = {}
        self._forced: dict[str, Milestone] = {}
        self._nudges: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def begin(self, tracking_number: str, reference: str | None) -> None:
        """Record the label_created scan now and start walking the route."""
        self._references[tracking_number] = reference
        self._nudges[tracking_number] = asyncio.Event()
        self._scan(tracking_number, Milestone.LABEL_CREATED)
        task = asyncio.create_task(self._walk(tracking_number), name=f"tracking-{tracking_number}")
        self._tasks[tracking_number] = task
        task.add_done_callback(lambda done: self._finished(tracking_number, done))

    def force(self, key: str, outcome: Milestone | str) -> Milestone:
        """Make the next scan of a tracking number (or of a reference) ``outcome``.

        A label already on its way gets that scan at once rather than after
        the current delay; for a reference not bought yet, it applies to the
        first scan after label_created.
        """
        try:
            milestone = Milestone(outcome)
        except ValueError:
            milestone = None
        if milestone not in FORCEABLE:
            allowed = ", ".join(FORCEABLE)
            raise ValueError(f"cannot force {outcome!r}: use one of {allowed}")
        self._forced[key] = milestone
        for tracking_number, reference in self._references.items():
            if key in (tracking_number, reference) and tracking_number in self._nudges:
                self._nudges[tracking_number].set()
        return milestone

    def latest(self, tracking_number: str) -> TrackingEvent | None:
        """The newest scan of a tracking number."""
        events = self.history.get(tracking_number)
        return events[-1] if events else None

    def cancel(self, tracking_number: str) -> None:
        """Stop the walk of a voided label and record its cancelled scan."""
        task = self._tasks.pop(tracking_number, None)
        if task is not None:
            task.cancel()
        self._scan(tracking_number, Milestone.CANCELLED)

    async def idle(self, timeout_s: float = 10.0) -> None:
        """Wait until every walk has ended."""
        async with asyncio.timeout(timeout_s):
            while self._tasks:
                await asyncio.wait(set(self._tasks.values()))

    async def close(self) -> None:
        """Stop every walk where it is."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _finished(self, tracking_number: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(tracking_number) is task:
            del self._tasks[tracking_number]
        if not task.cancelled() and task.exception() is not None:
            _log.error("tracking walk crashed", exc_info=task.exception())

    def _pop_forced(self, tracking_number: str) -> Milestone | None:
        reference = self._references.get(tracking_number)
        forced = self._forced.pop(tracking_number, None)
        if forced is None and reference is not None:
            forced = self._forced.pop(reference, None)
        return forced

    async def _walk(self, tracking_number: str) -> None:
        nudge = self._nudges[tracking_number]
        for step, milestone in enumerate(_ROUTE):
            delay = self.delays_s[min(step, len(self.delays_s) - 1)]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(nudge.wait(), delay)
            nudge.clear()
            forced = self._pop_forced(tracking_number)
            self._scan(tracking_number, forced or milestone)
            if forced is not None:
                return

    def _scan(self, tracking_number: str, milestone: Milestone) -> None:
        message, city = _WHAT_HAPPENED[milestone]
        event = TrackingEvent(
            milestone=milestone, occurred_at=datetime.now(UTC), message=message, city=city
        )
        self.history.setdefault(tracking_number, []).append(event)
        self._on_update(tracking_number, event)
