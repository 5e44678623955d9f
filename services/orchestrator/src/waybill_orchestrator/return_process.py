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
from waybill_orchestrator import return_instructions as do
from waybill_orchestrator.changes import (
    DeadlineCheck,
    Decision,
    Happening,
    NotYet,
    Observed,
    Requested,
    ignore,
    then,
)
from waybill_orchestrator.return_changes import (
    CANCELLED_TOO_LATE,
    CREDIT_NOTE_REFUSED,
    LABEL_FAILED,
    PARCEL_NEVER_ARRIVED,
    REJECTED_IN_FULL,
    ReturnPolicy,
    compensations,
    move,
    raise_exception,
    update,
    waiting_in,
)
from waybill_orchestrator.return_recovery import deadline_passed, operator_retry
from waybill_orchestrator.return_state import (
    BEFORE_RECEIPT,
    FINAL_RETURN_STAGES,
    ReturnStage,
    ReturnState,
)

__all__ = [
    "CANCELLED_TOO_LATE",
    "CREDIT_NOTE_REFUSED",
    "LABEL_FAILED",
    "PARCEL_NEVER_ARRIVED",
    "REJECTED_IN_FULL",
    "ReturnPolicy",
    "return_transition",
]


def return_transition(
    state: ReturnState | None, happening: Happening, policy: ReturnPolicy
) -> Decision:
    """Apply one happening to a return (None: never seen)."""
    if isinstance(happening, Observed) and isinstance(happening.event, ReturnRequested):
        return _requested(state, happening.event, happening, policy)
    if state is None:
        raise NotYet("the return was not requested yet (ReturnRequested not seen)")
    if isinstance(happening, DeadlineCheck):
        return deadline_passed(state, happening, policy)
    if isinstance(happening, Requested):
        return operator_retry(state, happening, policy)
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
    if not waiting_in(state, ReturnStage.REQUESTED) or label.shipment_id != current:
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
    # Announced once: after a new label (an operator's retry) the warehouse still expects
    # the return under its ref.
    announce = () if state.expected_in_warehouse else (do.expect(booked.state),)  # type: ignore[arg-type]
    awaiting = move(
        booked.state,  # type: ignore[arg-type]
        ReturnStage.AWAITING_PARCEL,
        happening,
        policy,
        messages=announce,
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
    messages, voided = compensations(state, event.reason or "the return was cancelled")
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
    if not waiting_in(state, ReturnStage.INSPECTED):
        return ignore(state, f"stock posted in stage {state.stage}")  # type: ignore[arg-type]
    if not do.credited_lines(state):
        posted = move(
            state, ReturnStage.STOCK_POSTED, happening, policy, note="stock posted", problem=None
        )
        return then(
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


def _credited(
    state: ReturnState, event: CreditNoteIssued, happening: Observed, policy: ReturnPolicy
) -> Decision:
    if not waiting_in(state, ReturnStage.STOCK_POSTED):
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
    return then(
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
