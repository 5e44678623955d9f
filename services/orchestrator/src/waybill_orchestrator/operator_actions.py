"""Operator actions from the control tower: retry a stage, release a hold, cancel a shipment,
resolve an exception. Pure, like the rest of the state machine.

Each action names its operator; the order's timeline step and the chatter
note in Odoo say who did what. An action that does not fit the order's state
(releasing an order that is not held) changes nothing and says why in the
log; the audit trail keeps the request either way. A redelivered action is
recognised by its id and applied once.
"""

from __future__ import annotations

import msgspec

from waybill_contracts.operations import (
    CancelOrderShipment,
    ReleaseHeldOrder,
    ResolveException,
    RetryOrderStage,
)
from waybill_orchestrator import instructions
from waybill_orchestrator.changes import (
    Decision,
    Policy,
    Problem,
    Requested,
    deadline_for,
    hold,
    ignore,
    move,
    update,
)
from waybill_orchestrator.compensation import stage_commands
from waybill_orchestrator.stages import FINAL, Stage, handed_to_carrier
from waybill_orchestrator.state import Hold, OrderState

REMEMBERED_ACTIONS = 32
"""Action ids kept per order: enough to recognise any redelivery of a recent click."""

SHIPMENT_CANCELLED = "shipment_cancelled"
"""Problem code of a hold made by cancelling the shipment."""


def _said(requested: Requested) -> str:
    action = requested.command
    note = f": {action.note}" if action.note else ""
    return f"{type(action).__name__} by {action.operator}{note}"


def _remembered(decision: Decision, action_id: str) -> Decision:
    state = decision.state
    if not decision.changed or state is None:
        return decision
    kept = (*state.operator_actions, action_id)[-REMEMBERED_ACTIONS:]
    return Decision(
        state=msgspec.structs.replace(state, operator_actions=kept),
        messages=decision.messages,
        notes=decision.notes,
        changed=True,
    )


def act(state: OrderState | None, requested: Requested, policy: Policy) -> Decision:
    """What an operator's action does to the order."""
    action = requested.command
    if state is None:
        return ignore(None, f"{type(action).__name__}: no order {action.order_ref} here")
    if action.action_id in state.operator_actions:
        return ignore(state, f"action {action.action_id} was applied already")
    if isinstance(action, RetryOrderStage):
        decision = _retry(state, requested, policy)
    elif isinstance(action, ReleaseHeldOrder):
        decision = _release(state, requested, policy)
    elif isinstance(action, CancelOrderShipment):
        decision = _cancel_shipment(state, requested, policy)
    elif isinstance(action, ResolveException):
        decision = _resolve(state, requested, action, policy)
    else:
        decision = ignore(state, f"no operator action {type(action).__name__}")
    return _remembered(decision, action.action_id)


def _retry(state: OrderState, requested: Requested, policy: Policy) -> Decision:
    if state.stage == Stage.HELD:
        return ignore(state, "the order is held: release it instead of retrying")
    commands = stage_commands(state)
    if state.stage in FINAL or not commands:
        return ignore(state, f"stage {state.stage} waits on no command to send again")
    # As a deadline's re-send, with a fresh deadline: a retry is not held against the stage.
    return update(
        state,
        requested,
        messages=commands,
        note=_said(requested),
        step=True,
        deadline_at=deadline_for(state.stage, requested.at, policy),
        deadline_resends=0,
    )


def _resume(state: OrderState, held: Hold, requested: Requested, policy: Policy) -> Decision:
    """Back to where the order stopped, sending that stage's command afresh."""
    attempt = state.booking_attempt
    if held.held_from == Stage.BOOKING:
        # A new attempt: a new shipment id, so the carrier router books again rather than
        # answering with the failure it remembers.
        attempt += 1
    with_attempt = msgspec.structs.replace(state, booking_attempt=attempt)
    commands = stage_commands(msgspec.structs.replace(with_attempt, stage=held.held_from))
    return move(
        with_attempt,
        held.held_from,
        requested,
        policy,
        messages=commands,
        note=_said(requested),
        hold=None,
    )


def _release(state: OrderState, requested: Requested, policy: Policy) -> Decision:
    if state.stage != Stage.HELD or state.hold is None:
        return ignore(state, f"the order is not held (stage {state.stage})")
    return _resume(state, state.hold, requested, policy)


def _cancel_shipment(state: OrderState, requested: Requested, policy: Policy) -> Decision:
    shipment = state.shipment
    if shipment is None:
        return ignore(state, "the order has no booked shipment to cancel")
    if handed_to_carrier(state.stage) or state.stage in FINAL or state.cancellation is not None:
        return ignore(state, f"too late to cancel the shipment (stage {state.stage})")
    if state.hold is not None and state.hold.code == SHIPMENT_CANCELLED:
        return ignore(state, f"shipment {shipment.shipment_id} is cancelled already")
    action = requested.command
    problem = Problem(
        code=SHIPMENT_CANCELLED,
        summary=f"Shipment {shipment.shipment_id} of {state.order_ref} cancelled by "
        f"{action.operator}",
        detail=action.note,
        stage=state.stage,
    )
    decision = hold(state, problem, requested, policy, resumable=False)
    assert decision.state is not None and decision.state.hold is not None
    # Releasing it books a new label: the hold resumes at booking.
    rebooking = msgspec.structs.replace(decision.state.hold, held_from=Stage.BOOKING)
    reason = f"cancelled by {action.operator}" + (f": {action.note}" if action.note else "")
    return Decision(
        state=msgspec.structs.replace(decision.state, hold=rebooking),
        messages=(instructions.void(shipment, reason), *decision.messages),
        notes=decision.notes,
        changed=True,
    )


def _resolve(
    state: OrderState, requested: Requested, action: ResolveException, policy: Policy
) -> Decision:
    if not any(e.exception_id == action.exception_id for e in state.open_exceptions):
        return ignore(state, f"exception {action.exception_id} is not open")
    note = instructions.odoo_plain_note(
        state,
        note_id=f"{action.exception_id}-resolved-{action.action_id}",
        text=f"Exception {action.exception_id} resolved by {action.operator}: {action.note}",
    )
    if state.hold is not None and state.hold.exception_id == action.exception_id:
        resumed = _resume(state, state.hold, requested, policy)
        return Decision(
            state=resumed.state,
            messages=(*resumed.messages, note),
            notes=resumed.notes,
            changed=True,
        )
    return update(
        state,
        requested,
        messages=(note,),
        note=_said(requested),
        step=True,
        open_exceptions=tuple(
            e for e in state.open_exceptions if e.exception_id != action.exception_id
        ),
    )
