"""The return state machine: ``return_transition(state, happening, policy) -> Decision``.

Pure, like the order's (:mod:`~waybill_orchestrator.process`): no clock, no
I/O. Forward only: a fact that belongs to an earlier stage, or repeats one,
changes nothing and is logged with the reason.

    requested -> (label_booked) -> awaiting_parcel -> received -> inspected
      -> stock_posted -> (credited) -> completed;  cancelled; exception

Exceptions go to customer service as ``ExceptionRaised`` (the order is not
held: it was delivered) and an Odoo activity on the delivered picking; the
return waits in ``exception`` until an operator's ``RetryReturnStep``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec

from waybill_contracts import Message
from waybill_contracts.events import (
    CreditNoteIssued,
    CreditNoteRefused,
    ReturnCancelled,
    ReturnInspected,
    ReturnLabelBooked,
    ReturnLabelBookingFailed,
    ReturnLabelVoided,
    ReturnReceived,
    ReturnRequested,
    ReturnStockPosted,
)
from waybill_contracts.operations import RetryReturnStep
from waybill_orchestrator import return_instructions as do
from waybill_orchestrator.changes import (
    DEADLINE_CAUSE,
    DeadlineCheck,
    Decision,
    Happening,
    NotYet,
    Observed,
    Requested,
    ignore,
)
from waybill_orchestrator.return_state import (
    BEFORE_RECEIPT,
    FINAL_RETURN_STAGES,
    ReturnProblem,
    ReturnStage,
    ReturnState,
    ReturnStep,
)

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


def _cause(happening: Happening) -> tuple[str | None, str]:
    if isinstance(happening, Observed | Requested):
        return happening.context.id, happening.context.type
    return None, DEADLINE_CAUSE


def _step(
    state: ReturnState, to: ReturnStage, happening: Happening, note: str | None
) -> ReturnStep:
    cause_id, cause_type = _cause(happening)
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


def _waiting_in(state: ReturnState, stage: ReturnStage) -> bool:
    """In ``stage``, or stopped there for a person: the fact it waited for, arriving late,
    still lets the return go on (an operator's retry would only ask for it again)."""
    if state.stage == stage:
        return True
    return (
        state.stage == ReturnStage.EXCEPTION
        and state.problem is not None
        and state.problem.stopped_in == stage
    )


def return_transition(
    state: ReturnState | None, happening: Happening, policy: ReturnPolicy
) -> Decision:
    """Apply one happening to a return (None: never seen)."""
    if isinstance(happening, Observed) and isinstance(happening.event, ReturnRequested):
        return _requested(state, happening.event, happening, policy)
    if state is None:
        raise NotYet("the return was not requested yet (ReturnRequested not seen)")
    if isinstance(happening, DeadlineCheck):
        return _deadline(state, happening, policy)
    if isinstance(happening, Requested):
        return _operator(state, happening, policy)
    event = happening.event
    if isinstance(event, ReturnLabelBooked):
        return _label_booked(state, event, happening, policy)
    if isinstance(event, ReturnLabelBookingFailed):
        return _label_failed(state, event, happening, policy)
    if isinstance(event, ReturnLabelVoided):
        return ignore(state, f"label {event.label_id} voided")  # type: ignore[arg-type]
    if isinstance(event, ReturnCancelled):
        return _cancelled(state, event, happening, policy)
    if isinstance(event, ReturnReceived):
        return _received(state, event, happening, policy)
    if isinstance(event, ReturnInspected):
        return _inspected(state, event, happening, policy)
    if isinstance(event, ReturnStockPosted):
        return _stock_posted(state, happening, policy)
    if isinstance(event, CreditNoteIssued):
        return _credited(state, event, happening, policy)
    if isinstance(event, CreditNoteRefused):
        return _credit_refused(state, event, happening, policy)
    return ignore(state, f"{type(event).__name__} does not move a return")  # type: ignore[arg-type]


def _requested(
    state: ReturnState | None, event: ReturnRequested, happening: Observed, policy: ReturnPolicy
) -> Decision:
    if state is not None:
        return ignore(state, "return already requested")  # type: ignore[arg-type]
    first = ReturnState(
        return_id=event.return_id,
        order_ref=event.order_ref,
        stage=ReturnStage.REQUESTED,
        request=event,
        created_at=happening.at,
        updated_at=happening.at,
        stage_since=happening.at,
        lane=happening.context.lane,
    )
    messages: list[Message] = [do.book_label(first)]
    if event.odoo_return_picking_id is None:
        messages.append(do.create_in_odoo(first))  # an RMA: Odoo gets its return picking
    decision = move(first, ReturnStage.REQUESTED, happening, policy, messages=tuple(messages))
    return decision


def _label_booked(
    state: ReturnState, event: ReturnLabelBooked, happening: Observed, policy: ReturnPolicy
) -> Decision:
    label = event.label
    current = do.label_id_for(state.return_id, state.label_attempt)
    if state.label is not None and state.label.shipment_id == label.shipment_id:
        return ignore(state, f"label {label.shipment_id} already recorded")  # type: ignore[arg-type]
    if not _waiting_in(state, ReturnStage.REQUESTED) or label.shipment_id != current:
        # A label nobody needs (cancelled meanwhile, or an earlier attempt's): void it.
        void = msgspec.structs.replace(state, label=label)
        return update(
            state,
            happening,
            messages=(do.void_label(void, "label not needed: the return moved on"),),
            note=f"label {label.shipment_id} not needed in stage {state.stage}: voided",
            label_voided=(*state.label_voided, label.shipment_id),
        )
    booked = move(
        state,
        ReturnStage.LABEL_BOOKED,
        happening,
        policy,
        note="label bought",
        label=label,
        problem=None,
    )
    assert booked.state is not None
    awaiting = move(
        booked.state,  # type: ignore[arg-type]
        ReturnStage.AWAITING_PARCEL,
        happening,
        policy,
        messages=(do.expect(booked.state),),  # type: ignore[arg-type]
        expected_in_warehouse=True,
    )
    return Decision(
        state=awaiting.state, messages=awaiting.messages, notes=booked.notes, changed=True
    )


def _label_failed(
    state: ReturnState, event: ReturnLabelBookingFailed, happening: Observed, policy: ReturnPolicy
) -> Decision:
    if state.stage != ReturnStage.REQUESTED or event.label_id != do.label_id_for(
        state.return_id, state.label_attempt
    ):
        return ignore(state, f"booking failure of {event.label_id} is stale")  # type: ignore[arg-type]
    return raise_exception(
        state,
        happening,
        policy,
        code=LABEL_FAILED,
        summary=f"Return {state.return_id}: no carrier sold a return label",
        detail=event.reason,
    )


def _compensations(state: ReturnState, reason: str) -> tuple[tuple[Message, ...], tuple[str, ...]]:
    """Void the label and un-announce the parcel, for what exists."""
    messages: list[Message] = []
    voided = state.label_voided
    if state.label is not None and state.label.shipment_id not in voided:
        messages.append(do.void_label(state, reason))
        voided = (*voided, state.label.shipment_id)
    if state.expected_in_warehouse:
        messages.append(do.cancel_expected(state, reason))
    return tuple(messages), voided


def _cancelled(
    state: ReturnState, event: ReturnCancelled, happening: Observed, policy: ReturnPolicy
) -> Decision:
    if state.stage in FINAL_RETURN_STAGES:
        return ignore(state, f"return already {state.stage}")  # type: ignore[arg-type]
    before_receipt = state.stage in BEFORE_RECEIPT or (
        state.stage == ReturnStage.EXCEPTION
        and state.problem is not None
        and state.problem.stopped_in in BEFORE_RECEIPT
    )
    if not before_receipt:
        return raise_exception(
            state,
            happening,
            policy,
            code=CANCELLED_TOO_LATE,
            summary=f"Return {state.return_id} cancelled after the parcel was received",
            detail=event.reason,
            stop=False,
        )
    messages, voided = _compensations(state, event.reason or "the return was cancelled")
    return move(
        state,
        ReturnStage.CANCELLED,
        happening,
        policy,
        messages=messages,
        note="cancelled before receipt",
        label_voided=voided,
        expected_in_warehouse=False,
        problem=None,
    )


def _received(
    state: ReturnState, event: ReturnReceived, happening: Observed, policy: ReturnPolicy
) -> Decision:
    late = state.stage == ReturnStage.EXCEPTION and (
        state.problem is not None and state.problem.code == PARCEL_NEVER_ARRIVED
    )
    if state.stage != ReturnStage.AWAITING_PARCEL and not late:
        if state.stage == ReturnStage.REQUESTED:
            raise NotYet("the parcel was received before its label was recorded")
        return ignore(state, f"received in stage {state.stage}")  # type: ignore[arg-type]
    return move(
        state,
        ReturnStage.RECEIVED,
        happening,
        policy,
        note="received at the dock" + (" after all" if late else ""),
        warehouse_return_id=event.warehouse_return_id,
        problem=None,
    )


def _inspected(
    state: ReturnState, event: ReturnInspected, happening: Observed, policy: ReturnPolicy
) -> Decision:
    if state.stage in (ReturnStage.REQUESTED, ReturnStage.AWAITING_PARCEL):
        # Inspection overtook the receipt: the receipt is implied.
        state = msgspec.structs.replace(state, warehouse_return_id=event.warehouse_return_id)
    elif state.stage != ReturnStage.RECEIVED:
        return ignore(state, f"inspected in stage {state.stage}")  # type: ignore[arg-type]
    inspected = msgspec.structs.replace(state, inspected=event.lines)
    return move(
        inspected,
        ReturnStage.INSPECTED,
        happening,
        policy,
        messages=(do.receive_in_odoo(inspected),),
        note="inspected: " + _summary(inspected),
    )


def _summary(state: ReturnState) -> str:
    parts = [
        f"{line.sku} {line.resellable.value} resellable, {line.damaged.value} damaged, "
        f"{line.missing.value} missing"
        for line in state.inspected
    ]
    return "; ".join(parts)


def _stock_posted(state: ReturnState, happening: Observed, policy: ReturnPolicy) -> Decision:
    if not _waiting_in(state, ReturnStage.INSPECTED):
        return ignore(state, f"stock posted in stage {state.stage}")  # type: ignore[arg-type]
    if not do.credited_lines(state):
        posted = move(
            state, ReturnStage.STOCK_POSTED, happening, policy, note="stock posted", problem=None
        )
        return _then(
            posted,
            raise_exception(
                posted.state,  # type: ignore[arg-type]
                happening,
                policy,
                code=REJECTED_IN_FULL,
                summary=f"Return {state.return_id}: inspection accepted nothing, no credit note",
                detail=_summary(state),
            ),
        )
    return move(
        state,
        ReturnStage.STOCK_POSTED,
        happening,
        policy,
        messages=(do.issue_credit_note(state),),
        note="stock posted; credit note asked",
        problem=None,
    )


def _then(first: Decision, second: Decision) -> Decision:
    return Decision(
        state=second.state,
        messages=first.messages + second.messages,
        notes=first.notes + second.notes,
        changed=True,
    )


def _credited(
    state: ReturnState, event: CreditNoteIssued, happening: Observed, policy: ReturnPolicy
) -> Decision:
    if not _waiting_in(state, ReturnStage.STOCK_POSTED):
        return ignore(state, f"credit note in stage {state.stage}")  # type: ignore[arg-type]
    credited = move(
        state,
        ReturnStage.CREDITED,
        happening,
        policy,
        note=f"credit note {event.credit_note_ref}",
        credit_note_ref=event.credit_note_ref,
        credited=event.amount,
        problem=None,
    )
    done = credited.state
    return _then(
        credited,
        move(
            done,  # type: ignore[arg-type]
            ReturnStage.COMPLETED,
            happening,
            policy,
            messages=(do.completed(done, happening.at),),  # type: ignore[arg-type]
        ),
    )


def _credit_refused(
    state: ReturnState, event: CreditNoteRefused, happening: Observed, policy: ReturnPolicy
) -> Decision:
    if state.stage != ReturnStage.STOCK_POSTED:
        return ignore(state, f"credit note refusal in stage {state.stage}")  # type: ignore[arg-type]
    return raise_exception(
        state,
        happening,
        policy,
        code=CREDIT_NOTE_REFUSED,
        summary=f"Return {state.return_id}: Odoo refused the credit note",
        detail=event.reason,
    )


def _deadline(state: ReturnState, check: DeadlineCheck, policy: ReturnPolicy) -> Decision:
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
        messages, voided = _compensations(state, "the parcel never arrived")
        decision = raise_exception(
            state,
            check,
            policy,
            code=PARCEL_NEVER_ARRIVED,
            summary=f"Return {state.return_id}: the parcel never arrived; label voided",
            detail=f"Reminded once; due since {state.stage_since.isoformat()}.",
            messages=messages,
        )
        assert decision.state is not None
        stopped = msgspec.structs.replace(
            decision.state, label_voided=voided, expected_in_warehouse=False
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


def _operator(state: ReturnState, requested: Requested, policy: ReturnPolicy) -> Decision:
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
