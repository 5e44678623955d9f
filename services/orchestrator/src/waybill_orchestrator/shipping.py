"""What the carrier's facts do to an order: a label bought (or not), tracking milestones.

Part of the pure state machine (see :mod:`waybill_orchestrator.process`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from waybill_contracts.events import MilestoneReached, ShipmentBooked, ShipmentBookingFailed
from waybill_contracts.model import MilestoneCode
from waybill_orchestrator import instructions
from waybill_orchestrator.changes import (
    BOOKING_FAILED,
    Decision,
    NotYet,
    Observed,
    Policy,
    Problem,
    hold,
    ignore,
    move,
    then,
    update,
)
from waybill_orchestrator.compensation import confirm
from waybill_orchestrator.stages import Stage
from waybill_orchestrator.state import OrderState


def booked(
    state: OrderState, at: Stage, observed: Observed, event: ShipmentBooked, policy: Policy
) -> Decision:
    shipment = event.shipment
    if at in (Stage.CANCELLING, Stage.CANCELLED):
        return _booked_after_cancel(state, at, observed, event, policy)
    if state.shipment is not None:
        if state.shipment.shipment_id == shipment.shipment_id:
            return ignore(state, "booking already known")
        # A second label for one order: keep the first, give the second back.
        return update(
            state,
            observed,
            messages=(instructions.void(shipment, "second label for one order"),),
            note=f"voiding extra label {shipment.tracking_number}",
            step=True,
        )
    if at != Stage.BOOKING:
        return ignore(state, f"booked before packed was seen (stage {at})")
    booked = msgspec.structs.replace(state, shipment=shipment)
    return move(
        booked,
        Stage.RECORDING,
        observed,
        policy,
        messages=(instructions.record_shipment(booked),),
        note=f"booked with {shipment.carrier}: {shipment.tracking_number}",
    )


def _booked_after_cancel(
    state: OrderState, at: Stage, observed: Observed, event: ShipmentBooked, policy: Policy
) -> Decision:
    shipment = event.shipment
    cancellation = state.cancellation
    if state.shipment is not None and state.shipment.shipment_id == shipment.shipment_id:
        return ignore(state, "booking already known")
    void = instructions.void(shipment, "order cancelled")
    if at == Stage.CANCELLED or cancellation is None:
        # Kept (when it is the order's only label) so a repeat of this event is recognised.
        kept = {"shipment": shipment} if state.shipment is None else {}
        return update(
            state,
            observed,
            messages=(void,),
            note=f"label {shipment.tracking_number} bought after the cancellation: voiding",
            step=True,
            **kept,
        )
    awaiting = msgspec.structs.replace(cancellation, awaiting_booking=False, awaiting_void=True)
    return update(
        state,
        observed,
        messages=(void,),
        note=f"label {shipment.tracking_number} bought during the cancellation: voiding",
        step=True,
        shipment=shipment,
        cancellation=awaiting,
    )


def booking_failed(
    state: OrderState,
    at: Stage,
    observed: Observed,
    event: ShipmentBookingFailed,
    policy: Policy,
) -> Decision:
    current = instructions.shipment_id_for(state.order_ref, max(state.booking_attempt, 1))
    if event.shipment_id != current or state.shipment is not None:
        return ignore(state, f"failure of {event.shipment_id} is not the current booking")
    if at == Stage.CANCELLING:
        return confirm(state, observed, policy, awaiting_booking=False)
    if at != Stage.BOOKING:
        return ignore(state, f"booking failure not awaited (stage {at})")
    tried = ", ".join(event.carriers_tried) or "none"
    if event.retryable and state.booking_attempt < policy.booking_attempts:
        again = msgspec.structs.replace(state, booking_attempt=state.booking_attempt + 1)
        # People in Odoo see why the label is late, without a to-do: the process goes on.
        note = instructions.odoo_plain_note(
            again,
            note_id=instructions.booking_retry_note_id(event.shipment_id),
            text=f"Booking a label for {state.order_ref} failed (tried {tried}: {event.reason}); "
            f"booking again (attempt {again.booking_attempt} of {policy.booking_attempts}).",
        )
        return move(
            again,
            Stage.BOOKING,
            observed,
            policy,
            messages=(instructions.book(again), note),
            note=f"booking failed ({event.reason}; tried {tried}); booking again",
        )
    problem = Problem(
        code=BOOKING_FAILED,
        summary=f"No carrier could book order {state.order_ref} (tried {tried})",
        detail=event.reason,
        stage=Stage.BOOKING,
    )
    return hold(state, problem, observed, policy, resumable=True)


def milestone(
    state: OrderState, at: Stage, observed: Observed, event: MilestoneReached, policy: Policy
) -> Decision:
    shipment = state.shipment
    if shipment is None or shipment.shipment_id != event.shipment_id:
        if at == Stage.BOOKING:
            if _label_of_the_booking_under_way(state, event):
                # Lasting: a later state can only have the booking, where the label
                # would be the last milestone until the first scan, which settling it
                # gives up anyway, or a cancellation voiding the label.
                return ignore(
                    state,
                    f"label_created of {event.shipment_id}: its ShipmentBooked follows",
                    routine=True,
                    lasting=True,
                )
            raise NotYet(f"milestone of {event.shipment_id} before its booking was seen")
        return ignore(state, f"milestone of unknown shipment {event.shipment_id}")
    milestone = event.milestone
    last = state.last_milestone
    changes: dict[str, Any] = {}
    # Carriers send late and repeated updates: only a newer milestone replaces the last.
    if last is None or milestone.occurred_at > last.occurred_at:
        changes["last_milestone"] = milestone
    if milestone.code == MilestoneCode.DELIVERED and state.delivered_at is None:
        changes["delivered_at"] = milestone.occurred_at
    if not changes:
        # Carriers repeat their scans (each webhook carries the ones before): routine.
        # Lasting, as an order's shipment is kept once known (only a second label
        # bought while cancelling replaces it, and then this milestone is an unknown
        # shipment's), its last milestone only gives way to a newer one and its
        # delivery time is never taken back.
        return ignore(
            state,
            f"milestone {milestone.code} already known or older",
            routine=True,
            lasting=True,
        )
    updated = update(state, observed, note=f"milestone {milestone.code}", **changes)
    assert updated.state is not None
    if at == Stage.SHIPPED and updated.state.delivered_at is not None:
        return then(updated, record_delivery(updated.state, observed, policy))
    return updated


def _label_of_the_booking_under_way(state: OrderState, event: MilestoneReached) -> bool:
    """True for the label_created of the shipment the order is booking now.

    The carrier reports it with the purchase's answer, so the carrier-router often
    publishes it before the ShipmentBooked that must follow (the label is bought).
    Asked again later, it found the booking and, as a rule, newer milestones
    already in (more than half the orders of a burst paid a retry, a warning and a
    redelivery for it). The booking says all it says but the carrier's time; it
    is settled instead. Any other milestone before its booking is asked again.
    """
    return (
        event.milestone.code == MilestoneCode.LABEL_CREATED
        and state.shipment is None
        and event.shipment_id
        == instructions.shipment_id_for(state.order_ref, max(state.booking_attempt, 1))
    )


def record_delivery(state: OrderState, observed: Observed, policy: Policy) -> Decision:
    return move(
        state,
        Stage.RECORDING_DELIVERY,
        observed,
        policy,
        messages=(instructions.record_delivery(state),),
        note="delivered",
    )
