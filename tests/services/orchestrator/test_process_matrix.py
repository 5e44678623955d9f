"""Every stage (held and cancelling variants included) against every event: the stage the
order ends in and the messages sent, written out in one table. Pairs not in the table
must change nothing at all."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta

import pytest

from tests.services.orchestrator.journey import (
    accepted,
    booked,
    booking_failed,
    cancel_refused,
    cancelled,
    delivery_recorded,
    late,
    milestone,
    names,
    packed,
    picked,
    released,
    run,
    shipment_recorded,
    short_picked,
    step,
    void_refused,
    voided,
    warehouse_cancelled,
)
from waybill_contracts.events import Event
from waybill_contracts.model import MilestoneCode
from waybill_orchestrator.changes import DeadlineCheck, NotYet
from waybill_orchestrator.stages import Stage
from waybill_orchestrator.state import OrderState

S = Stage
EXC = ["ExceptionRaised", "PostExceptionInOdoo"]
NOT_YET = "not yet"
# (stage after, or None for "unchanged"; the messages sent), or NOT_YET.
Outcome = tuple[Stage | None, list[str]] | str
Row = Mapping[str, Outcome]


def _twice_late(state: OrderState) -> OrderState:
    resent = step(state, late(state)).state
    assert resent is not None
    held = step(resent, late(resent)).state
    assert held is not None
    return held


STATES: dict[str, Callable[[], OrderState]] = {
    "in_warehouse": lambda: run(released()),
    "accepted": lambda: run(released(), accepted()),
    "picked": lambda: run(released(), accepted(), picked()),
    "booking": lambda: run(released(), accepted(), picked(), packed()),
    "recording": lambda: run(released(), packed(), booked()),
    "shipped": lambda: run(released(), packed(), booked(), shipment_recorded()),
    "recording_delivery": lambda: run(
        released(),
        packed(),
        booked(),
        shipment_recorded(),
        milestone(MilestoneCode.DELIVERED, 58),
    ),
    "delivered": lambda: run(
        released(),
        packed(),
        booked(),
        shipment_recorded(),
        milestone(MilestoneCode.DELIVERED, 58),
        delivery_recorded(),
    ),
    "held_short_pick": lambda: run(released(), accepted(), short_picked()),
    "held_booking_failed": lambda: run(released(), packed(), booking_failed(retryable=False)),
    "held_booking_deadline": lambda: _twice_late(run(released(), packed())),
    "cancelling": lambda: run(released(), packed(), booked(), cancelled()),
    "cancelled": lambda: run(released(), accepted(), cancelled(), warehouse_cancelled()),
}

EVENTS: dict[str, Callable[[OrderState], Event | DeadlineCheck]] = {
    "released": lambda s: released(),
    "cancelled": lambda s: cancelled(),
    "accepted": lambda s: accepted(),
    "picked": lambda s: picked(),
    "short_picked": lambda s: short_picked(),
    "packed": lambda s: packed(),
    "warehouse_cancelled": lambda s: warehouse_cancelled(),
    "cancel_refused": lambda s: cancel_refused(),
    "booked": lambda s: booked(),
    "booking_failed": lambda s: booking_failed(retryable=False),
    "booking_failed_retryable": lambda s: booking_failed(retryable=True),
    "voided": lambda s: voided(),
    "void_refused": lambda s: void_refused(),
    "shipment_recorded": lambda s: shipment_recorded(),
    "shipment_recorded_unvalidated": lambda s: shipment_recorded(validated=False),
    # Earlier than the delivered milestone of the states that have one.
    "in_transit": lambda s: milestone(MilestoneCode.IN_TRANSIT, 50),
    "delivered": lambda s: milestone(MilestoneCode.DELIVERED, 58),
    "delivery_recorded": lambda s: delivery_recorded(),
    "deadline": lambda s: late(s) if s.deadline_at else DeadlineCheck(at=s.updated_at),
    "deadline_not_due": lambda s: DeadlineCheck(at=s.stage_since + timedelta(seconds=1)),
}

_WAREHOUSE_STAGE: Row = {
    "cancelled": (S.CANCELLING, ["CancelWarehouseOrder"]),
    "short_picked": (S.HELD, EXC),
    "packed": (S.BOOKING, ["BookShipment"]),
    "warehouse_cancelled": (S.HELD, EXC),
    "deadline": (None, ["ReleaseToWarehouse"]),  # None: the stage does not change
}
_HELD_AT_BOOKING: Row = {
    "cancelled": (S.CANCELLING, ["CancelWarehouseOrder"]),
    "short_picked": (S.HELD, EXC),
    "warehouse_cancelled": (S.HELD, EXC),
    "booked": (S.RECORDING, ["RecordShipmentInOdoo"]),
    "in_transit": NOT_YET,
    "delivered": NOT_YET,
}
_TOO_LATE_TO_CANCEL: Row = {"cancelled": (None, EXC), "short_picked": (None, EXC)}

EXPECTED: dict[str, Row] = {
    "in_warehouse": {
        **_WAREHOUSE_STAGE,
        "accepted": (S.ACCEPTED, []),
        "picked": (S.PICKED, []),
    },
    "accepted": {**_WAREHOUSE_STAGE, "picked": (S.PICKED, [])},
    "picked": _WAREHOUSE_STAGE,
    "booking": {
        # The booking may still buy a label: the cancellation waits for its outcome.
        "cancelled": (S.CANCELLING, ["CancelWarehouseOrder"]),
        "short_picked": (None, EXC),
        "warehouse_cancelled": (S.HELD, EXC),
        "booked": (S.RECORDING, ["RecordShipmentInOdoo"]),
        "booking_failed": (S.HELD, EXC),
        "booking_failed_retryable": (None, ["BookShipment", "PostNoteInOdoo"]),
        "in_transit": NOT_YET,
        "delivered": NOT_YET,
        "deadline": (None, ["BookShipment"]),
    },
    "recording": {
        "cancelled": (S.CANCELLING, ["CancelWarehouseOrder", "VoidShipment"]),
        "short_picked": (None, EXC),
        "warehouse_cancelled": (S.HELD, EXC),
        "shipment_recorded": (S.SHIPPED, []),
        # Odoo has the tracking but left the transfer for a person: ops are told.
        "shipment_recorded_unvalidated": (S.SHIPPED, EXC),
        "in_transit": (None, []),
        "delivered": (None, []),
        "deadline": (None, ["RecordShipmentInOdoo"]),
    },
    "shipped": {
        **_TOO_LATE_TO_CANCEL,
        "in_transit": (None, []),
        "delivered": (S.RECORDING_DELIVERY, ["RecordDeliveryInOdoo"]),
    },
    "recording_delivery": {
        **_TOO_LATE_TO_CANCEL,
        "delivery_recorded": (S.DELIVERED, []),
        "deadline": (None, ["RecordDeliveryInOdoo"]),
    },
    "delivered": _TOO_LATE_TO_CANCEL,
    "held_short_pick": {
        "cancelled": (S.CANCELLING, ["CancelWarehouseOrder"]),
        # Kept for a later cancellation, without moving the order.
        "warehouse_cancelled": (None, []),
        "booked": (None, []),
    },
    "held_booking_failed": _HELD_AT_BOOKING,
    "held_booking_deadline": {
        **_HELD_AT_BOOKING,
        # Still waiting for the booking: it can be voided if it comes.
        "cancelled": (S.CANCELLING, ["CancelWarehouseOrder"]),
        "booking_failed": (S.HELD, EXC),
        "booking_failed_retryable": (S.BOOKING, ["BookShipment", "PostNoteInOdoo"]),
    },
    "cancelling": {
        "warehouse_cancelled": (None, []),
        "voided": (None, []),
        # A compensation refused: the order waits for a person.
        "cancel_refused": (S.HELD, EXC),
        "void_refused": (S.HELD, EXC),
        "in_transit": (None, []),
        "delivered": (None, []),
        "deadline": (None, ["CancelWarehouseOrder", "VoidShipment"]),
    },
    # A label bought after all: given back.
    "cancelled": {"booked": (None, ["VoidShipment"])},
}


# A label the carrier will not void is raised for ops whatever the stage (a second
# label given back, one bought after a cancellation); only the label of a
# cancellation in progress also holds the order (in the cancelling row above).
EXPECTED = {name: {"void_refused": (None, EXC), **row} for name, row in EXPECTED.items()}


def test_the_table_covers_every_state_and_only_known_events() -> None:
    assert set(EXPECTED) == set(STATES)
    for row in EXPECTED.values():
        assert set(row) <= set(EVENTS)


@pytest.mark.parametrize("event_name", list(EVENTS))
@pytest.mark.parametrize("state_name", list(STATES))
def test_stage_and_event(state_name: str, event_name: str) -> None:
    state = STATES[state_name]()
    event = EVENTS[event_name](state)
    expected = EXPECTED[state_name].get(event_name)
    if expected == NOT_YET:
        with pytest.raises(NotYet):
            step(state, event, minutes=30)
        return
    decision = step(state, event, minutes=30)
    if expected is None:
        assert not decision.changed, decision
        assert decision.state == state
        assert decision.messages == ()
        assert decision.notes, "an ignored event says why"
        return
    assert isinstance(expected, tuple)
    stage, sent = expected
    assert decision.changed
    assert decision.state is not None
    assert decision.state.stage == (stage or state.stage)
    assert names(decision.messages) == sent
    assert decision.state.seq > state.seq
    assert decision.state.updated_at >= state.updated_at
