"""What happens to a return that stopped: its deadline passed, or a person retries it.

A late parcel is reminded once, then its label voided and customer service
told; a late step's command is re-sent once, then raised. ``RetryReturnStep``
goes on from where the return stopped for a person. Pure, like
:mod:`~waybill_orchestrator.return_process`.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec

from waybill_contracts import Message
from waybill_contracts.operations import RetryReturnStep
from waybill_orchestrator import return_instructions as do
from waybill_orchestrator.changes import DeadlineCheck, Decision, Requested, ignore
from waybill_orchestrator.return_changes import (
    CREDIT_NOTE_REFUSED,
    LABEL_FAILED,
    PARCEL_NEVER_ARRIVED,
    REMEMBERED_ACTIONS,
    ReturnPolicy,
    move,
    raise_exception,
    update,
)
from waybill_orchestrator.return_state import ReturnStage, ReturnState


def deadline_passed(state: ReturnState, check: DeadlineCheck, policy: ReturnPolicy) -> Decision:
    if state.deadline_at is None or check.at < state.deadline_at:
        return ignore(state, "not late")  # type: ignore[arg-type]
    seconds = policy.deadline_s(state.stage) or 0.0
    again = check.at + timedelta(seconds=seconds)
    if state.stage == ReturnStage.AWAITING_PARCEL:
        if state.reminders == 0:
            return update(
                state,
                check,
                messages=(do.parcel_overdue(state, check.at),),
                note="parcel overdue: customer reminded",
                reminders=1,
                deadline_at=again,
            )
        # The label is voided; the warehouse keeps expecting the return (by its ref), so a
        # parcel that turns up after all is still received, and a new label after an
        # operator's retry needs no new announcement (the WMS refuses one ref announced twice
        # with other content).
        label = do.label_of(state)
        decision = raise_exception(
            state,
            check,
            policy,
            code=PARCEL_NEVER_ARRIVED,
            summary=f"Return {state.return_id}: the parcel never arrived; label voided",
            detail=f"Reminded once; due since {state.stage_since.isoformat()}.",
            messages=(do.void_label(state, "the parcel never arrived"),),
        )
        assert decision.state is not None
        stopped = msgspec.structs.replace(
            decision.state, label_voided=(*state.label_voided, label.shipment_id)
        )
        return Decision(
            state=stopped, messages=decision.messages, notes=decision.notes, changed=True
        )
    if state.deadline_resends == 0:
        commands = _stage_commands(state)
        return update(
            state,
            check,
            messages=commands,
            note=f"{state.stage} past its deadline: sent again",
            deadline_resends=1,
            deadline_at=again,
        )
    return raise_exception(
        state,
        check,
        policy,
        code=f"return_deadline_{state.stage}",
        summary=f"Return {state.return_id} is stuck in {state.stage}",
        detail="The step passed its deadline twice; its command was re-sent once.",
    )


def _stage_commands(state: ReturnState) -> tuple[Message, ...]:
    """What the return's stage waits on, to send again."""
    if state.stage == ReturnStage.REQUESTED:
        return (do.book_label(state),)
    if state.stage == ReturnStage.INSPECTED:
        return (do.receive_in_odoo(state),)
    if state.stage == ReturnStage.STOCK_POSTED:
        return (do.issue_credit_note(state),)
    return ()


def operator_retry(state: ReturnState, requested: Requested, policy: ReturnPolicy) -> Decision:
    action = requested.command
    if not isinstance(action, RetryReturnStep):
        return ignore(state, f"{type(action).__name__} is not a return action")  # type: ignore[arg-type]
    if action.action_id in state.operator_actions:
        return ignore(state, f"action {action.action_id} already applied")  # type: ignore[arg-type]
    seen = (*state.operator_actions, action.action_id)[-REMEMBERED_ACTIONS:]
    problem = state.problem
    if state.stage != ReturnStage.EXCEPTION or problem is None:
        return update(
            state, requested, note=f"nothing to retry in {state.stage}", operator_actions=seen
        )
    by = f"retried by {action.operator}"
    if problem.code == CREDIT_NOTE_REFUSED or (
        problem.code.startswith("return_deadline_")
        and problem.stopped_in == ReturnStage.STOCK_POSTED
    ):
        again = msgspec.structs.replace(state, credit_attempt=state.credit_attempt + 1)
        return move(
            again,
            ReturnStage.STOCK_POSTED,
            requested,
            policy,
            messages=(do.issue_credit_note(again),),
            note=f"credit note {by}",
            problem=None,
            operator_actions=seen,
        )
    if (
        problem.code in (LABEL_FAILED, PARCEL_NEVER_ARRIVED)
        or problem.stopped_in == ReturnStage.REQUESTED
    ):
        # A new label under the next attempt (the old one, if any, is void).
        again = msgspec.structs.replace(state, label_attempt=state.label_attempt + 1, label=None)
        return move(
            again,
            ReturnStage.REQUESTED,
            requested,
            policy,
            messages=(do.book_label(again),),
            note=f"new return label {by}",
            problem=None,
            reminders=0,
            operator_actions=seen,
        )
    if problem.stopped_in == ReturnStage.INSPECTED:
        return move(
            state,
            ReturnStage.INSPECTED,
            requested,
            policy,
            messages=(do.receive_in_odoo(state),),
            note=f"stock posting {by}",
            problem=None,
            operator_actions=seen,
        )
    # Nothing to send again (inspection accepted nothing): customer service closes it.
    return move(
        state,
        ReturnStage.COMPLETED,
        requested,
        policy,
        messages=(do.completed(state, requested.at),),
        note=f"closed by {action.operator}",
        problem=None,
        operator_actions=seen,
    )
