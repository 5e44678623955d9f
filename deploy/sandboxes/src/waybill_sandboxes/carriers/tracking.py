"""Tracking progression after a label is bought: a scripted, deterministic timeline.

Every outbound label walks label_created → in_transit → out_for_delivery →
delivered with configurable delays. A return label is different: it sits at
label_created until the customer hands the parcel in (:meth:`TrackingTimeline.drop_off`),
then walks picked up → in transit → delivered to the warehouse. A customer who
never sends the parcel is simply a return label nobody drops off. An exception
or a return to sender can be forced for a tracking number or a caller's
reference; it replaces the next milestone and ends the walk. Each carrier maps
these milestones to its own vocabulary.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import msgspec

__all__ = [
    "FORCEABLE",
    "OUTBOUND_ROUTE",
    "RETURN_ROUTE",
    "Milestone",
    "Route",
    "Step",
    "TrackingEvent",
    "TrackingTimeline",
]

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


class Step(msgspec.Struct, frozen=True):
    """One scan on a route: the milestone and how the carrier words it."""

    milestone: Milestone
    message: str
    city: str


Route = tuple[Step, ...]


def _step(milestone: Milestone) -> Step:
    return Step(milestone, *_WHAT_HAPPENED[milestone])


#: After label_created: a parcel going from the warehouse to the customer.
OUTBOUND_ROUTE: Route = tuple(
    _step(m) for m in (Milestone.IN_TRANSIT, Milestone.OUT_FOR_DELIVERY, Milestone.DELIVERED)
)
#: After the customer drops a return off: the parcel going back to the warehouse.
#: Carriers report the pick-up as in transit too; only the wording tells them apart.
RETURN_ROUTE: Route = (
    Step(Milestone.IN_TRANSIT, "Picked up at the customer's drop-off point", "Amsterdam"),
    Step(Milestone.IN_TRANSIT, "Arrived at sort facility", "Utrecht"),
    Step(Milestone.DELIVERED, "Delivered to the warehouse dock", "Rotterdam"),
)


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
        self._awaiting_drop_off: dict[str, Route] = {}

    def begin(
        self,
        tracking_number: str,
        reference: str | None,
        *,
        route: Route = OUTBOUND_ROUTE,
        wait_for_drop_off: bool = False,
    ) -> None:
        """Record the label_created scan now, then walk ``route`` (at once or after drop-off)."""
        self._references[tracking_number] = reference
        self._nudges[tracking_number] = asyncio.Event()
        self._scan(tracking_number, _step(Milestone.LABEL_CREATED))
        if wait_for_drop_off:
            self._awaiting_drop_off[tracking_number] = route
        else:
            self._start_walk(tracking_number, route)

    def drop_off(self, key: str) -> list[str]:
        """The customer hands in the parcel(s) of a tracking number or reference: start walking.

        Returns the tracking numbers now on their way; ValueError when none was
        waiting (unknown, voided, already dropped off, or not a return label).
        """
        numbers = [
            number
            for number, reference in self._references.items()
            if key in (number, reference) and number in self._awaiting_drop_off
        ]
        if not numbers:
            raise ValueError(
                f"no return label waiting for drop-off under {key!r} "
                "(unknown, voided, already on its way, or an outbound label)"
            )
        for number in numbers:
            self._start_walk(number, self._awaiting_drop_off.pop(number))
        return numbers

    def _start_walk(self, tracking_number: str, route: Route) -> None:
        task = asyncio.create_task(
            self._walk(tracking_number, route), name=f"tracking-{tracking_number}"
        )
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
        self._awaiting_drop_off.pop(tracking_number, None)
        self._scan(tracking_number, _step(Milestone.CANCELLED))

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

    async def _walk(self, tracking_number: str, route: Route) -> None:
        nudge = self._nudges[tracking_number]
        for index, step in enumerate(route):
            delay = self.delays_s[min(index, len(self.delays_s) - 1)]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(nudge.wait(), delay)
            nudge.clear()
            forced = self._pop_forced(tracking_number)
            self._scan(tracking_number, _step(forced) if forced else step)
            if forced is not None:
                return

    def _scan(self, tracking_number: str, step: Step) -> None:
        event = TrackingEvent(
            milestone=step.milestone,
            occurred_at=datetime.now(UTC),
            message=step.message,
            city=step.city,
        )
        self.history.setdefault(tracking_number, []).append(event)
        self._on_update(tracking_number, event)
