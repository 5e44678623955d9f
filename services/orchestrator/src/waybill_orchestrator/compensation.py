"""Undoing and chasing: cancellation with its compensations, and stage deadlines.

Cancellation before booking cancels the warehouse order; once a label exists
(or may be bought any moment) the label is voided too; when every
compensation is confirmed, a note goes to Odoo. Once the parcel is with the
carrier it is too late, and ops are told instead. A compensation the partner
refuses (the warehouse has shipped, the carrier scanned the label) holds the
order for a person, with an exception for ops.

A stage past its deadline re-sends its command once (same business key, so
the adapter recognises it), and on the second expiry the order is held and
escalated.
"""

from __future__ import annotations

from typing import Any

import msgspec

from waybill_contracts import Message
from waybill_contracts.events import (
    OrderCancelled,
    ShipmentVoidRefused,
    WarehouseOrderCancelRefused,
)
from waybill_orchestrator import instructions
from waybill_orchestrator.changes import (
    BOOKING_FAILED,
    CANCELLED_TOO_LATE,
    VOID_REFUSED,
    WAREHOUSE_CANCEL_REFUSED,
    DeadlineCheck,
    Decision,
    Observed,
    Policy,
    Problem,
    deadline_for,
    flag,
    hold,
    ignore,
    move,
    update,
)
from waybill_orchestrator.stages import FINAL, Stage, handed_to_carrier
from waybill_orchestrator.state import Cancellation, OrderState, Step


def effective_stage(state: OrderState) -> Stage:
    """The stage that decides what applies: for a held order, where it was held."""
    return state.hold.held_from if state.hold is not None else state.stage


def cancel(
    state: OrderState | None, observed: Observed, event: OrderCancelled, policy: Policy
) -> Decision:
    """The order was cancelled in Odoo."""
    if state is None:
        return _cancelled_before_release(observed, event)
    if state.stage in (Stage.CANCELLING, Stage.CANCELLED):
        return ignore(state, "already cancelled")
    where = effective_stage(state)
    if where == Stage.CANCELLING:
        return ignore(state, "already cancelling")
    if handed_to_carrier(where):
        problem = Problem(
            code=CANCELLED_TOO_LATE,
            summary=f"Order {state.order_ref} was cancelled in Odoo after it shipped",
            detail="The parcel is with the carrier: intercept or return it by hand.",
            stage=where,
        )
        return flag(state, problem, observed, policy)
    reason = event.reason or "cancelled in Odoo"
    messages: list[Message] = []
    if not state.warehouse_cancelled:
        messages.append(instructions.cancel_in_warehouse(state, reason))
    if state.shipment is not None:
        messages.append(instructions.void(state.shipment, reason))
    cancellation = Cancellation(
        reason=reason,
        requested_at=observed.at,
        awaiting_warehouse=not state.warehouse_cancelled,
        awaiting_void=state.shipment is not None,
        awaiting_booking=_booking_under_way(state),
    )
    started = move(
        state,
        Stage.CANCELLING,
        observed,
        policy,
        messages=tuple(messages),
        note=f"cancelled in Odoo: {reason}",
        cancellation=cancellation,
    )
    assert started.state is not None
    return _complete_if_confirmed(started.state, observed, policy, started)


def _booking_under_way(state: OrderState) -> bool:
    # A booking under way may still buy a label, which must then be voided;
    # one that failed for good will not.
    if state.shipment is not None or effective_stage(state) != Stage.BOOKING:
        return False
    return state.hold is None or state.hold.code != BOOKING_FAILED


def _cancelled_before_release(observed: Observed, event: OrderCancelled) -> Decision:
    # The cancellation overtook the release: nothing was started, nothing to undo,
    # and the release, when it comes, finds the order cancelled.
    step = Step(
        at=observed.at,
        from_stage=None,
        to_stage=Stage.CANCELLED,
        cause_id=observed.context.id,
        cause_type=observed.context.type,
        note="cancelled before the release was seen",
    )
    state = OrderState(
        order_ref=event.order_ref,
        stage=Stage.CANCELLED,
        seq=1,
        odoo_picking_id=event.odoo_picking_id,
        odoo_sale_order_id=event.odoo_sale_order_id,
        created_at=observed.at,
        updated_at=observed.at,
        stage_since=observed.at,
        timeline=(step,),
    )
    return Decision(state=state, notes=(step.note or "",), changed=True)


def confirm(
    state: OrderState,
    observed: Observed,
    policy: Policy,
    **progress: bool,
) -> Decision:
    """A compensation was confirmed (``awaiting_warehouse=False`` and the like)."""
    cancellation = state.cancellation
    if cancellation is None:
        return ignore(state, "no cancellation in progress")
    if all(getattr(cancellation, name) == value for name, value in progress.items()):
        return ignore(state, "compensation already confirmed")
    updated = msgspec.structs.replace(cancellation, **progress)
    changes: dict[str, Any] = {"cancellation": updated}
    if "awaiting_warehouse" in progress:
        changes["warehouse_cancelled"] = True
    step = update(state, observed, note="compensation confirmed", **changes)
    assert step.state is not None
    return _complete_if_confirmed(step.state, observed, policy, step)


def _complete_if_confirmed(
    state: OrderState, observed: Observed, policy: Policy, so_far: Decision
) -> Decision:
    cancellation = state.cancellation
    assert cancellation is not None
    if cancellation.awaiting_warehouse or cancellation.awaiting_void:
        return so_far
    if cancellation.awaiting_booking:
        return so_far
    done = ["warehouse order cancelled"]
    if state.shipment is not None:
        done.append(f"label {state.shipment.tracking_number} ({state.shipment.carrier}) voided")
    # For the record only: everything is undone, nobody has to act (no activity).
    note = instructions.odoo_plain_note(
        state,
        note_id=instructions.cancellation_note_id(state.order_ref),
        text=f"Order {state.order_ref} cancelled: {'; '.join(done)}. Reason: {cancellation.reason}",
    )
    finished = move(state, Stage.CANCELLED, observed, policy, messages=(note,), note="compensated")
    return Decision(
        state=finished.state,
        messages=so_far.messages + finished.messages,
        notes=so_far.notes + finished.notes,
        changed=True,
    )


def warehouse_refused(
    state: OrderState, observed: Observed, event: WarehouseOrderCancelRefused, policy: Policy
) -> Decision:
    """The warehouse will not cancel: the goods are gone, a person must stop them."""
    cancellation = state.cancellation
    awaited = (
        effective_stage(state) == Stage.CANCELLING
        and cancellation is not None
        and cancellation.awaiting_warehouse
    )
    if not awaited or cancellation is None:
        return ignore(state, "warehouse cancel refusal not awaited")
    problem = Problem(
        code=WAREHOUSE_CANCEL_REFUSED,
        summary=f"The warehouse refused to cancel order {state.order_ref}",
        detail=f"{event.reason}. The order is cancelled in Odoo: stop or recall the goods by hand.",
        stage=Stage.CANCELLING,
    )
    # No longer awaited (the answer is in), so a deadline does not re-send it.
    answered = msgspec.structs.replace(cancellation, awaiting_warehouse=False)
    return _refused(state, problem, observed, policy, cancellation=answered)


def void_refused(
    state: OrderState, observed: Observed, event: ShipmentVoidRefused, policy: Policy
) -> Decision:
    """The carrier will not void a label: it stays bought; ops must sort it out.

    The label of a cancellation holds the order; any other (a second label
    given back, a label bought after the cancellation) is raised for ops and
    the order goes on.
    """
    problem = Problem(
        code=VOID_REFUSED,
        summary=f"{event.carrier} refused to void label {event.tracking_number} "
        f"of order {state.order_ref}",
        detail=f"{event.reason}. The label stays bought: intercept the parcel or claim the "
        "label cost by hand.",
        stage=effective_stage(state),
    )
    cancellation = state.cancellation
    ours = state.shipment is not None and state.shipment.shipment_id == event.shipment_id
    if (
        ours
        and effective_stage(state) == Stage.CANCELLING
        and cancellation is not None
        and cancellation.awaiting_void
    ):
        answered = msgspec.structs.replace(cancellation, awaiting_void=False)
        return _refused(state, problem, observed, policy, cancellation=answered)
    return flag(state, problem, observed, policy)


def _refused(
    state: OrderState,
    problem: Problem,
    observed: Observed,
    policy: Policy,
    *,
    cancellation: Cancellation,
) -> Decision:
    """A compensation of a cancellation refused: hold the order; held already (the other
    compensation was refused first), raise this one all the same."""
    if state.stage == Stage.HELD:
        return flag(state, problem, observed, policy, cancellation=cancellation)
    return hold(state, problem, observed, policy, resumable=False, cancellation=cancellation)


def stage_commands(state: OrderState) -> tuple[Message, ...]:
    """What the order's stage is waiting on, as the command(s) to send again."""
    stage = state.stage
    if stage in (Stage.IN_WAREHOUSE, Stage.ACCEPTED, Stage.PICKED):
        return (instructions.release(state),)
    if stage == Stage.BOOKING:
        return (instructions.book(state),)
    if stage == Stage.RECORDING:
        return (instructions.record_shipment(state),)
    if stage == Stage.RECORDING_DELIVERY:
        return (instructions.record_delivery(state),)
    if stage == Stage.CANCELLING and state.cancellation is not None:
        reason = state.cancellation.reason
        messages: list[Message] = []
        if state.cancellation.awaiting_warehouse:
            messages.append(instructions.cancel_in_warehouse(state, reason))
        if state.cancellation.awaiting_void and state.shipment is not None:
            messages.append(instructions.void(state.shipment, reason))
        return tuple(messages)
    return ()


def check_deadline(state: OrderState, check: DeadlineCheck, policy: Policy) -> Decision:
    """Re-send the stage's command at the first expiry; hold and escalate at the second."""
    if state.stage in FINAL or state.stage == Stage.HELD:
        return ignore(state, f"no deadline in stage {state.stage}")
    if state.deadline_at is None or check.at < state.deadline_at:
        return ignore(state, "not late")
    if state.deadline_resends == 0:
        commands = stage_commands(state)
        names = ", ".join(type(c).__name__ for c in commands) or "nothing to re-send"
        return update(
            state,
            check,
            messages=commands,
            note=f"{state.stage} past its deadline: {names}",
            step=True,
            deadline_resends=1,
            deadline_at=deadline_for(state.stage, check.at, policy),
        )
    late_since = state.stage_since.isoformat()
    problem = Problem(
        code=f"deadline_{state.stage}",
        summary=f"Order {state.order_ref} is stuck in {state.stage} since {late_since}",
        detail="The stage passed its deadline twice; its command was re-sent once.",
        stage=state.stage,
    )
    return hold(state, problem, check, policy, resumable=True)
