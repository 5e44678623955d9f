"""Whether a tracking event moves a shipment forward: pure rules, no I/O.

Carriers send scans late, twice and out of order. A shipment keeps its latest
milestone (event time + phase); a scan is announced only when it moves the
shipment forward:

- older than the latest, or the same milestone again → nothing new;
- a terminal milestone (delivered, returned to sender, cancelled) is final;
- a newer scan of an earlier phase (in transit after out for delivery) would
  move the shipment backwards → not announced;
- an exception is announced whenever it is newer than the latest milestone
  (it can strike in any phase) and leaves the phase where it was, so the
  journey can resume; like any milestone, a second exception scan while the
  latest is an exception is the same milestone again (one customer email per
  run of exceptions, until the parcel moves on);
- ``unknown`` says nothing about where the parcel is → never announced.

Scans with the same time are ordered by phase.
"""

from __future__ import annotations

import msgspec

from waybill_contracts.model import Milestone, MilestoneCode

__all__ = ["PHASES", "TERMINAL_PHASE", "Progress", "advance"]

TERMINAL_PHASE = 3

PHASES: dict[MilestoneCode, int] = {
    MilestoneCode.LABEL_CREATED: 0,
    MilestoneCode.IN_TRANSIT: 1,
    MilestoneCode.OUT_FOR_DELIVERY: 2,
    MilestoneCode.AVAILABLE_FOR_PICKUP: 2,
    MilestoneCode.DELIVERY_ATTEMPT_FAILED: 2,
    MilestoneCode.DELIVERED: TERMINAL_PHASE,
    MilestoneCode.RETURNED_TO_SENDER: TERMINAL_PHASE,
    MilestoneCode.CANCELLED: TERMINAL_PHASE,
}
"""How far along each milestone is; milestones of one phase may follow each other freely.

``exception`` has no phase of its own and ``unknown`` is no progress at all.
"""


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """Where a shipment stands: its latest announced milestone and the phase reached."""

    milestone: Milestone
    phase: int


def advance(current: Progress | None, event: Milestone) -> Progress | None:
    """The shipment's new progress if ``event`` moves it forward, else None."""
    if event.code is MilestoneCode.UNKNOWN:
        return None
    phase = PHASES.get(event.code)  # None: an exception
    if current is None:
        return Progress(milestone=event, phase=0 if phase is None else phase)
    latest = current.milestone
    if current.phase >= TERMINAL_PHASE or event.code is latest.code:
        return None
    if event.occurred_at < latest.occurred_at:
        return None
    if phase is None:
        return Progress(milestone=event, phase=current.phase)
    same_time = event.occurred_at == latest.occurred_at
    if phase < current.phase or (same_time and phase == current.phase):
        return None
    return Progress(milestone=event, phase=phase)
