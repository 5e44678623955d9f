"""One order's journey as events, and the orchestrator's states along it, for the tests.

Events are the contracts' examples re-addressed to an order ref of the
test's choosing, so every test can use its own orders.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from waybill_contracts import Message, new_context
from waybill_contracts.events import (
    DeliveryRecordedInOdoo,
    Event,
    MilestoneReached,
    OrderCancelled,
    OrderReleased,
    ShipmentBooked,
    ShipmentBookingFailed,
    ShipmentRecordedInOdoo,
    ShipmentVoided,
    ShipmentVoidRefused,
    WarehouseOrderAccepted,
    WarehouseOrderCancelled,
    WarehouseOrderCancelRefused,
    WarehouseOrderPacked,
    WarehouseOrderPicked,
    WarehouseOrderShortPicked,
)
from waybill_contracts.examples import example_of
from waybill_contracts.model import Milestone, MilestoneCode
from waybill_orchestrator.changes import DeadlineCheck, Decision, Observed, Policy
from waybill_orchestrator.instructions import shipment_id_for
from waybill_orchestrator.process import transition
from waybill_orchestrator.stages import Stage
from waybill_orchestrator.state import OrderState

T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


REF = "WH/OUT/00042"
DEADLINE_S = 60.0
POLICY = Policy(
    deadlines_s={
        stage: DEADLINE_S
        for stage in (
            Stage.IN_WAREHOUSE,
            Stage.ACCEPTED,
            Stage.PICKED,
            Stage.BOOKING,
            Stage.RECORDING,
            Stage.RECORDING_DELIVERY,
            Stage.CANCELLING,
        )
    },
    booking_attempts=2,
    ops_assignee_login="ops.lead",
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def names(messages: Iterable[Message]) -> list[str]:
    return [type(message).__name__ for message in messages]


# --- events of one order ------------------------------------------------------------


def released(ref: str = REF) -> OrderReleased:
    example = example_of(OrderReleased)
    return msgspec.structs.replace(example, order=msgspec.structs.replace(example.order, ref=ref))


def cancelled(ref: str = REF, reason: str | None = "customer changed their mind") -> OrderCancelled:
    return msgspec.structs.replace(example_of(OrderCancelled), order_ref=ref, reason=reason)


def accepted(ref: str = REF) -> WarehouseOrderAccepted:
    return msgspec.structs.replace(example_of(WarehouseOrderAccepted), order_ref=ref)


def picked(ref: str = REF) -> WarehouseOrderPicked:
    return msgspec.structs.replace(example_of(WarehouseOrderPicked), order_ref=ref)


def short_picked(ref: str = REF) -> WarehouseOrderShortPicked:
    return msgspec.structs.replace(example_of(WarehouseOrderShortPicked), order_ref=ref)


def packed(ref: str = REF) -> WarehouseOrderPacked:
    return msgspec.structs.replace(example_of(WarehouseOrderPacked), order_ref=ref)


def warehouse_cancelled(ref: str = REF) -> WarehouseOrderCancelled:
    return msgspec.structs.replace(example_of(WarehouseOrderCancelled), order_ref=ref)


def cancel_refused(ref: str = REF) -> WarehouseOrderCancelRefused:
    return msgspec.structs.replace(example_of(WarehouseOrderCancelRefused), order_ref=ref)


def booked(ref: str = REF, attempt: int = 1, tracking: str = "JD014600003828") -> ShipmentBooked:
    example = example_of(ShipmentBooked)
    shipment = msgspec.structs.replace(
        example.shipment,
        shipment_id=shipment_id_for(ref, attempt),
        order_ref=ref,
        tracking_number=tracking,
    )
    return msgspec.structs.replace(example, shipment=shipment)


def booking_failed(ref: str = REF, *, retryable: bool, attempt: int = 1) -> ShipmentBookingFailed:
    return msgspec.structs.replace(
        example_of(ShipmentBookingFailed),
        order_ref=ref,
        shipment_id=shipment_id_for(ref, attempt),
        retryable=retryable,
    )


def voided(ref: str = REF, attempt: int = 1) -> ShipmentVoided:
    return msgspec.structs.replace(
        example_of(ShipmentVoided), order_ref=ref, shipment_id=shipment_id_for(ref, attempt)
    )


def void_refused(ref: str = REF, attempt: int = 1) -> ShipmentVoidRefused:
    return msgspec.structs.replace(
        example_of(ShipmentVoidRefused), order_ref=ref, shipment_id=shipment_id_for(ref, attempt)
    )


def shipment_recorded(ref: str = REF, *, validated: bool = True) -> ShipmentRecordedInOdoo:
    return msgspec.structs.replace(
        example_of(ShipmentRecordedInOdoo), order_ref=ref, picking_validated=validated
    )


def milestone(
    code: MilestoneCode, minutes: float, ref: str = REF, attempt: int = 1
) -> MilestoneReached:
    example = example_of(MilestoneReached)
    reached = Milestone(code=code, raw_status=code.value, occurred_at=at(minutes))
    return msgspec.structs.replace(
        example, order_ref=ref, shipment_id=shipment_id_for(ref, attempt), milestone=reached
    )


def delivery_recorded(ref: str = REF) -> DeliveryRecordedInOdoo:
    return msgspec.structs.replace(example_of(DeliveryRecordedInOdoo), order_ref=ref)


def happy_path(ref: str = REF) -> list[Event]:
    """Every event of an order that goes well, in order."""
    return [
        released(ref),
        accepted(ref),
        picked(ref),
        packed(ref),
        booked(ref),
        shipment_recorded(ref),
        milestone(MilestoneCode.IN_TRANSIT, 50, ref),
        milestone(MilestoneCode.DELIVERED, 58, ref),
        delivery_recorded(ref),
    ]


# --- driving the state machine --------------------------------------------------------


def observe(event: Event, minutes: float = 0.0) -> Observed:
    return Observed(event=event, context=new_context(event, source="tests"), at=at(minutes))


def step(state: OrderState | None, event: Event | DeadlineCheck, minutes: float = 0.0) -> Decision:
    happening = event if isinstance(event, DeadlineCheck) else observe(event, minutes)
    return transition(state, happening, POLICY)


def run(*events: Event, state: OrderState | None = None) -> OrderState:
    """The state after ``events``, each applied a minute after the one before."""
    for minute, event in enumerate(events):
        state = step(state, event, minutes=float(minute)).state
    assert state is not None
    return state


def late(state: OrderState) -> DeadlineCheck:
    """A deadline check after the order's current deadline."""
    assert state.deadline_at is not None
    return DeadlineCheck(at=state.deadline_at + timedelta(seconds=1))
