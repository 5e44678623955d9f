"""The ways a return's state may change, and its rules from configuration.

Every change of a return goes through :func:`move` or :func:`update` (both bump
``seq``, the part of outgoing message ids that makes them unique per
transition, and keep the timeline); :func:`raise_exception` puts a problem in
front of customer service. The order's equivalents are in
:mod:`~waybill_orchestrator.changes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec

from waybill_contracts import Message
from waybill_orchestrator import return_instructions as do
from waybill_orchestrator.changes import Decision, Happening, cause_of
from waybill_orchestrator.return_state import ReturnProblem, ReturnStage, ReturnState, ReturnStep

# Problem codes (ExceptionRaised.code) of returns.
LABEL_FAILED = "return_label_failed"
PARCEL_NEVER_ARRIVED = "return_parcel_never_arrived"
REJECTED_IN_FULL = "return_rejected_in_full"
CREDIT_NOTE_REFUSED = "credit_note_refused"
CANCELLED_TOO_LATE = "return_cancelled_after_receipt"
REMEMBERED_ACTIONS = 20


@dataclass(frozen=True, kw_only=True)
class ReturnPolicy:
    """The rules of the return workflow that come from configuration."""

    parcel_deadline_s: float
    """How long the customer has to send the parcel before a reminder (and again, before
    the label is voided and customer service is told)."""
    step_deadline_s: float
    """How long a partner may take over a step (label, Odoo posting, credit) before the
    step's command is re-sent once, then customer service is told."""
    ops_assignee_login: str | None = None

    def deadline_s(self, stage: ReturnStage) -> float | None:
        if stage == ReturnStage.AWAITING_PARCEL:
            return self.parcel_deadline_s
        if stage in (ReturnStage.REQUESTED, ReturnStage.INSPECTED, ReturnStage.STOCK_POSTED):
            return self.step_deadline_s
        return None


def _step(
    state: ReturnState, to: ReturnStage, happening: Happening, note: str | None
) -> ReturnStep:
    cause_id, cause_type = cause_of(happening)
    return ReturnStep(
        at=happening.at,
        from_stage=state.stage if state.timeline else None,
        to_stage=to,
        cause_id=cause_id,
        cause_type=cause_type,
        note=note,
    )


def move(
    state: ReturnState,
    to: ReturnStage,
    happening: Happening,
    policy: ReturnPolicy,
    *,
    messages: tuple[Message, ...] = (),
    note: str | None = None,
    **changes: Any,
) -> Decision:
    """Move the return to stage ``to`` (its deadline starts again)."""
    seconds = policy.deadline_s(to)
    new = msgspec.structs.replace(
        state,
        stage=to,
        seq=state.seq + 1,
        updated_at=happening.at,
        stage_since=happening.at,
        deadline_at=happening.at + timedelta(seconds=seconds) if seconds else None,
        deadline_resends=0,
        timeline=(*state.timeline, _step(state, to, happening, note)),
        **changes,
    )
    return Decision(state=new, messages=messages, notes=(note,) if note else (), changed=True)  # type: ignore[arg-type]


def update(
    state: ReturnState,
    happening: Happening,
    *,
    messages: tuple[Message, ...] = (),
    note: str,
    **changes: Any,
) -> Decision:
    """Change the return without moving it (recorded in its timeline)."""
    new = msgspec.structs.replace(
        state,
        seq=state.seq + 1,
        updated_at=happening.at,
        timeline=(*state.timeline, _step(state, state.stage, happening, note)),
        **changes,
    )
    return Decision(state=new, messages=messages, notes=(note,), changed=True)  # type: ignore[arg-type]


def raise_exception(
    state: ReturnState,
    happening: Happening,
    policy: ReturnPolicy,
    *,
    code: str,
    summary: str,
    detail: str | None = None,
    messages: tuple[Message, ...] = (),
    stop: bool = True,
) -> Decision:
    """Tell customer service (event + Odoo activity); ``stop`` parks the return for them."""
    number = state.exceptions_raised + 1
    exception_id = do.exception_id_for(state.return_id, number)
    raised = (
        do.exception_raised(
            state,
            exception_id=exception_id,
            code=code,
            summary=summary,
            detail=detail,
            at=happening.at,
        ),
        do.odoo_activity(
            state,
            exception_id=exception_id,
            summary=summary,
            detail=detail,
            assignee=policy.ops_assignee_login,
        ),
    )
    if not stop:
        return update(
            state, happening, messages=(*messages, *raised), note=summary, exceptions_raised=number
        )
    problem = ReturnProblem(code=code, exception_id=exception_id, stopped_in=state.stage)
    return move(
        state,
        ReturnStage.EXCEPTION,
        happening,
        policy,
        messages=(*messages, *raised),
        note=summary,
        problem=problem,
        exceptions_raised=number,
    )


def waiting_in(state: ReturnState, stage: ReturnStage) -> bool:
    """In ``stage``, or stopped there for a person: the fact it waited for, arriving late,
    still lets the return go on (an operator's retry would only ask for it again)."""
    if state.stage == stage:
        return True
    return (
        state.stage == ReturnStage.EXCEPTION
        and state.problem is not None
        and state.problem.stopped_in == stage
    )


def compensations(state: ReturnState, reason: str) -> tuple[tuple[Message, ...], tuple[str, ...]]:
    """Void the label and un-announce the parcel, for what exists."""
    messages: list[Message] = []
    voided = state.label_voided
    if state.label is not None and state.label.shipment_id not in voided:
        messages.append(do.void_label(state, reason))
        voided = (*voided, state.label.shipment_id)
    if state.expected_in_warehouse:
        messages.append(do.cancel_expected(state, reason))
    return tuple(messages), voided
