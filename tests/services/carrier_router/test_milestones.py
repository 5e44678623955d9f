"""The rules that keep a shipment from moving backwards, whatever order scans arrive in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from waybill_carrier_router.milestones import Progress, advance
from waybill_contracts.model import Milestone, MilestoneCode

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
C = MilestoneCode


def scan(code: MilestoneCode, minutes: int) -> Milestone:
    return Milestone(code=code, raw_status=code.value, occurred_at=T0 + timedelta(minutes=minutes))


def replay(*scans: Milestone) -> list[MilestoneCode]:
    """Feed scans in arrival order; returns the milestones announced."""
    progress: Progress | None = None
    announced = []
    for event in scans:
        moved = advance(progress, event)
        if moved is not None:
            progress = moved
            announced.append(event.code)
    return announced


def test_scans_in_order_are_all_announced() -> None:
    walk = [C.LABEL_CREATED, C.IN_TRANSIT, C.OUT_FOR_DELIVERY, C.DELIVERED]
    assert replay(*(scan(code, n) for n, code in enumerate(walk))) == walk


def test_repeated_scan_is_announced_once() -> None:
    assert replay(scan(C.IN_TRANSIT, 5), scan(C.IN_TRANSIT, 5)) == [C.IN_TRANSIT]


def test_later_scan_of_the_same_milestone_is_not_a_new_milestone() -> None:
    assert replay(scan(C.IN_TRANSIT, 5), scan(C.IN_TRANSIT, 9)) == [C.IN_TRANSIT]


def test_scan_older_than_the_latest_is_not_announced() -> None:
    assert replay(scan(C.OUT_FOR_DELIVERY, 10), scan(C.IN_TRANSIT, 5)) == [C.OUT_FOR_DELIVERY]
    assert replay(scan(C.IN_TRANSIT, 10), scan(C.EXCEPTION, 5)) == [C.IN_TRANSIT]


def test_newer_scan_of_an_earlier_phase_would_move_backwards_and_is_not_announced() -> None:
    assert replay(scan(C.OUT_FOR_DELIVERY, 5), scan(C.IN_TRANSIT, 9)) == [C.OUT_FOR_DELIVERY]


@pytest.mark.parametrize("final", [C.DELIVERED, C.RETURNED_TO_SENDER, C.CANCELLED])
def test_terminal_milestone_is_final(final: MilestoneCode) -> None:
    after = [scan(C.IN_TRANSIT, 20), scan(C.EXCEPTION, 21), scan(C.DELIVERED, 22)]
    assert replay(scan(final, 10), *after) == [final]


def test_milestones_of_one_phase_may_follow_each_other() -> None:
    announced = replay(
        scan(C.OUT_FOR_DELIVERY, 1),
        scan(C.DELIVERY_ATTEMPT_FAILED, 2),
        scan(C.OUT_FOR_DELIVERY, 3),
        scan(C.AVAILABLE_FOR_PICKUP, 4),
        scan(C.DELIVERED, 5),
    )
    assert announced == [
        C.OUT_FOR_DELIVERY,
        C.DELIVERY_ATTEMPT_FAILED,
        C.OUT_FOR_DELIVERY,
        C.AVAILABLE_FOR_PICKUP,
        C.DELIVERED,
    ]


def test_exception_strikes_in_any_phase_and_the_journey_resumes() -> None:
    announced = replay(
        scan(C.OUT_FOR_DELIVERY, 1),
        scan(C.EXCEPTION, 2),
        scan(C.IN_TRANSIT, 3),  # still backwards: the exception kept the phase
        scan(C.OUT_FOR_DELIVERY, 4),
        scan(C.DELIVERED, 5),
    )
    assert announced == [C.OUT_FOR_DELIVERY, C.EXCEPTION, C.OUT_FOR_DELIVERY, C.DELIVERED]


def test_a_run_of_exception_scans_is_one_milestone_until_the_parcel_moves_on() -> None:
    announced = replay(
        scan(C.IN_TRANSIT, 1),
        scan(C.EXCEPTION, 2),
        scan(C.EXCEPTION, 3),  # the same milestone again, as a later in_transit would be
        scan(C.OUT_FOR_DELIVERY, 4),
        scan(C.EXCEPTION, 5),  # a new run of exceptions
    )
    assert announced == [C.IN_TRANSIT, C.EXCEPTION, C.OUT_FOR_DELIVERY, C.EXCEPTION]


def test_exception_as_the_first_scan_starts_at_the_beginning() -> None:
    assert replay(scan(C.EXCEPTION, 1), scan(C.LABEL_CREATED, 2)) == [
        C.EXCEPTION,
        C.LABEL_CREATED,
    ]


def test_unknown_status_is_never_announced() -> None:
    assert replay(scan(C.UNKNOWN, 1), scan(C.LABEL_CREATED, 2), scan(C.UNKNOWN, 3)) == [
        C.LABEL_CREATED
    ]


def test_scans_with_the_same_time_are_ordered_by_phase() -> None:
    assert replay(scan(C.IN_TRANSIT, 5), scan(C.LABEL_CREATED, 5)) == [C.IN_TRANSIT]
    assert replay(scan(C.LABEL_CREATED, 5), scan(C.IN_TRANSIT, 5)) == [
        C.LABEL_CREATED,
        C.IN_TRANSIT,
    ]
    assert replay(scan(C.OUT_FOR_DELIVERY, 5), scan(C.DELIVERY_ATTEMPT_FAILED, 5)) == [
        C.OUT_FOR_DELIVERY
    ]


def test_progress_remembers_the_phase_reached() -> None:
    moved = advance(None, scan(C.OUT_FOR_DELIVERY, 1))
    assert moved is not None and moved.phase == 2
    after_exception = advance(moved, scan(C.EXCEPTION, 2))
    assert after_exception is not None
    assert (after_exception.milestone.code, after_exception.phase) == (C.EXCEPTION, 2)
