"""One return's journey as events, for the orchestrator's return tests.

Events are the contracts' examples re-addressed to a return id of the
test's choosing, so every test has returns of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec

from waybill_contracts import new_context
from waybill_contracts.events import (
    CreditNoteIssued,
    CreditNoteRefused,
    Event,
    ReturnCancelled,
    ReturnInspected,
    ReturnLabelBooked,
    ReturnLabelBookingFailed,
    ReturnReceived,
    ReturnRequested,
    ReturnStockPosted,
)
from waybill_contracts.examples import example_of
from waybill_contracts.model import Quantity
from waybill_contracts.operations import RetryReturnStep
from waybill_contracts.returns import InspectedLine
from waybill_orchestrator.changes import Observed, Requested
from waybill_orchestrator.return_instructions import label_id_for
from waybill_orchestrator.return_process import ReturnPolicy

T0 = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
PARCEL_DEADLINE_S = 3600.0
STEP_DEADLINE_S = 60.0
RETURN_POLICY = ReturnPolicy(
    parcel_deadline_s=PARCEL_DEADLINE_S,
    step_deadline_s=STEP_DEADLINE_S,
    ops_assignee_login="service.desk",
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def observe(event: Event, minutes: float = 0.0) -> Observed:
    return Observed(event=event, context=new_context(event, source="tests"), at=at(minutes))


def retry(return_id: str, action_id: str, minutes: float = 0.0) -> Requested:
    action = RetryReturnStep(action_id=action_id, operator="dana", return_id=return_id)
    return Requested(command=action, context=new_context(action, source="tests"), at=at(minutes))  # type: ignore[arg-type]


def requested(return_id: str, *, rma: bool = False) -> ReturnRequested:
    base = example_of(ReturnRequested)
    return msgspec.structs.replace(
        base,
        return_id=return_id,
        order_ref=f"OUT-{return_id}",
        odoo_return_picking_id=None if rma else base.odoo_return_picking_id,
    )


def label_booked(return_id: str, attempt: int = 1) -> ReturnLabelBooked:
    base = example_of(ReturnLabelBooked)
    label = msgspec.structs.replace(
        base.label,
        shipment_id=label_id_for(return_id, attempt),
        tracking_number=f"RT{attempt}-{abs(hash(return_id)) % 10**8}",
    )
    return msgspec.structs.replace(base, return_id=return_id, label=label)


def label_failed(return_id: str) -> ReturnLabelBookingFailed:
    return msgspec.structs.replace(
        example_of(ReturnLabelBookingFailed),
        return_id=return_id,
        label_id=label_id_for(return_id, 1),
    )


def received(return_id: str) -> ReturnReceived:
    return msgspec.structs.replace(example_of(ReturnReceived), return_id=return_id)


def _units(value: str) -> Quantity:
    return Quantity(value=Decimal(value), uom="Units")


def inspected(return_id: str, *, resellable: str = "1", damaged: str = "1") -> ReturnInspected:
    missing = Decimal(2) - Decimal(resellable) - Decimal(damaged)
    line = InspectedLine(
        line_no=1,
        sku="MUG-BLUE",
        resellable=_units(resellable),
        damaged=_units(damaged),
        missing=_units(str(missing)),
    )
    return msgspec.structs.replace(example_of(ReturnInspected), return_id=return_id, lines=(line,))


def stock_posted(return_id: str) -> ReturnStockPosted:
    return msgspec.structs.replace(
        example_of(ReturnStockPosted), return_id=return_id, order_ref=f"OUT-{return_id}"
    )


def credit_note_issued(return_id: str) -> CreditNoteIssued:
    return msgspec.structs.replace(
        example_of(CreditNoteIssued), return_id=return_id, order_ref=f"OUT-{return_id}"
    )


def credit_note_refused(return_id: str) -> CreditNoteRefused:
    return msgspec.structs.replace(
        example_of(CreditNoteRefused), return_id=return_id, order_ref=f"OUT-{return_id}"
    )


def cancelled(return_id: str) -> ReturnCancelled:
    return msgspec.structs.replace(
        example_of(ReturnCancelled), return_id=return_id, order_ref=f"OUT-{return_id}"
    )
