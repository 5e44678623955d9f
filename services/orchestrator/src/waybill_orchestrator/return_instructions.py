"""The commands and events the orchestrator sends for a return, built from its state.

Pure functions, as :mod:`~waybill_orchestrator.instructions` is for orders:
the same state gives the same message, so a re-sent command carries the
business key its owner recognises.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from waybill_contracts.commands import PostExceptionInOdoo
from waybill_contracts.events import ExceptionRaised, ReturnCompleted, ReturnParcelOverdue
from waybill_contracts.model import Parcel, ParcelItem, Quantity, Shipment
from waybill_contracts.return_commands import (
    BookReturnLabel,
    CancelExpectedReturn,
    CreateReturnInOdoo,
    ExpectReturn,
    IssueCreditNoteInOdoo,
    ReceiveReturnInOdoo,
    VoidReturnLabel,
)
from waybill_contracts.returns import CreditedLine
from waybill_orchestrator.instructions import MissingOrderData, shipment_id_for
from waybill_orchestrator.return_state import ReturnState


def label_id_for(return_id: str, attempt: int) -> str:
    """The id of return label purchase ``attempt`` (from 1), e.g. ``ret-WH-RET-00007-1``."""
    return shipment_id_for(return_id, attempt, kind="ret")


def exception_id_for(return_id: str, number: int) -> str:
    """The id of the ``number``-th exception raised about a return."""
    return f"exc-{return_id}-{number}"


def label_of(state: ReturnState) -> Shipment:
    if state.label is None:
        raise MissingOrderData(f"return {state.return_id} has no label")
    return state.label


def book_label(state: ReturnState) -> BookReturnLabel:
    """Buy the return label of the current attempt."""
    request = state.request
    label_id = label_id_for(state.return_id, state.label_attempt)
    contents = tuple(ParcelItem(sku=line.sku, quantity=line.quantity) for line in request.lines)
    return BookReturnLabel(
        return_id=state.return_id,
        label_id=label_id,
        order_ref=state.order_ref,
        customer=request.customer,
        pickup_address=request.pickup_address,
        warehouse=request.warehouse,
        parcels=(Parcel(reference=label_id[:64], weight_kg=request.weight_kg, contents=contents),),
        carrier=request.carrier,
    )


def create_in_odoo(state: ReturnState) -> CreateReturnInOdoo:
    """Make the Odoo return picking of an RMA (a return requested in Odoo has one)."""
    request = state.request
    return CreateReturnInOdoo(
        return_id=state.return_id,
        order_ref=state.order_ref,
        odoo_picking_id=request.odoo_picking_id,
        lines=request.lines,
    )


def expect(state: ReturnState) -> ExpectReturn:
    """Announce the parcel to the warehouse, with the label's tracking number."""
    label = label_of(state)
    return ExpectReturn(
        return_id=state.return_id,
        order_ref=state.order_ref,
        warehouse=state.request.warehouse,
        lines=state.request.lines,
        tracking_number=label.tracking_number,
        carrier=label.carrier,
    )


def void_label(state: ReturnState, reason: str) -> VoidReturnLabel:
    """Void the return label (compensation)."""
    label = label_of(state)
    return VoidReturnLabel(
        return_id=state.return_id,
        label_id=label.shipment_id,
        carrier=label.carrier,
        tracking_number=label.tracking_number,
        carrier_reference=label.carrier_reference,
        reason=reason,
    )


def cancel_expected(state: ReturnState, reason: str) -> CancelExpectedReturn:
    """Tell the warehouse to stop expecting the parcel (compensation)."""
    return CancelExpectedReturn(return_id=state.return_id, reason=reason)


def receive_in_odoo(state: ReturnState) -> ReceiveReturnInOdoo:
    """Post what inspection found in Odoo: resellable to stock, damaged to scrap."""
    if not state.inspected:
        raise MissingOrderData(f"return {state.return_id} has no inspection")
    return ReceiveReturnInOdoo(
        return_id=state.return_id,
        order_ref=state.order_ref,
        odoo_picking_id=state.request.odoo_picking_id,
        odoo_return_picking_id=state.request.odoo_return_picking_id,
        lines=state.inspected,
    )


def credited_lines(state: ReturnState) -> tuple[CreditedLine, ...]:
    """The accepted (resellable) quantities, on the delivered lines they came from."""
    moves = {line.line_no: line.odoo_move_id for line in state.request.lines}
    return tuple(
        CreditedLine(
            sku=line.sku,
            quantity=Quantity(value=line.accepted, uom=line.resellable.uom),
            odoo_move_id=moves.get(line.line_no),
        )
        for line in state.inspected
        if line.accepted > Decimal(0)
    )


def issue_credit_note(state: ReturnState) -> IssueCreditNoteInOdoo:
    """Credit the accepted lines (the attempt tells a retry after a refusal from a redelivery)."""
    lines = credited_lines(state)
    if not lines:
        raise MissingOrderData(f"return {state.return_id} has nothing accepted to credit")
    return IssueCreditNoteInOdoo(
        return_id=state.return_id,
        order_ref=state.order_ref,
        odoo_sale_order_id=state.request.odoo_sale_order_id,
        attempt=state.credit_attempt,
        lines=lines,
    )


def parcel_overdue(state: ReturnState, at: datetime) -> ReturnParcelOverdue:
    """Remind the customer (through the notifier) that the parcel has not arrived."""
    return ReturnParcelOverdue(
        return_id=state.return_id,
        order_ref=state.order_ref,
        label=label_of(state),
        reminder=state.reminders + 1,
        overdue_at=at,
    )


def completed(state: ReturnState, at: datetime) -> ReturnCompleted:
    """The return is over."""
    return ReturnCompleted(
        return_id=state.return_id,
        order_ref=state.order_ref,
        lines=state.inspected,
        credit_note_ref=state.credit_note_ref,
        credited=state.credited,
        completed_at=at,
    )


def exception_raised(
    state: ReturnState,
    *,
    exception_id: str,
    code: str,
    summary: str,
    detail: str | None,
    at: datetime,
) -> ExceptionRaised:
    """A problem for customer service; the order itself is not held (it was delivered)."""
    return ExceptionRaised(
        exception_id=exception_id,
        order_ref=state.order_ref,
        stage=f"return_{state.stage}",
        code=code,
        summary=summary,
        detail=detail,
        order_held=False,
        raised_at=at,
    )


def odoo_activity(
    state: ReturnState, *, exception_id: str, summary: str, detail: str | None, assignee: str | None
) -> PostExceptionInOdoo:
    """An activity for customer service on the delivered picking."""
    return PostExceptionInOdoo(
        exception_id=exception_id,
        order_ref=state.order_ref,
        odoo_picking_id=state.request.odoo_picking_id,
        odoo_sale_order_id=state.request.odoo_sale_order_id,
        summary=summary,
        detail=detail,
        assignee_login=assignee,
    )
