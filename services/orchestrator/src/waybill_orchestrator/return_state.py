"""What the orchestrator remembers about one return: the value stored in the workflow bucket.

The request itself is kept whole (customer, address, lines), so every
command of the return can be built again from this value alone: a deadline
or an operator re-sends without asking anyone.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from waybill_contracts import Lane
from waybill_contracts.events import ReturnRequested
from waybill_contracts.model import Money, Shipment
from waybill_contracts.returns import InspectedLine
from waybill_orchestrator.state import PendingMessage


class ReturnStage(StrEnum):
    """Where a return is; each main-line stage names what it waits for."""

    REQUESTED = "requested"
    """BookReturnLabel sent; no label yet."""
    LABEL_BOOKED = "label_booked"
    """A label was bought (passed within one step: ExpectReturn goes out with it)."""
    AWAITING_PARCEL = "awaiting_parcel"
    """The customer has the label, the warehouse expects the parcel."""
    RECEIVED = "received"
    """At the warehouse's dock; inspection not reported yet."""
    INSPECTED = "inspected"
    """ReceiveReturnInOdoo sent; Odoo has not posted the stock yet."""
    STOCK_POSTED = "stock_posted"
    """Stock back (or scrapped) in Odoo; IssueCreditNoteInOdoo sent, no credit note yet."""
    CREDITED = "credited"
    """The credit note is issued (passed within one step: the return completes with it)."""
    COMPLETED = "completed"
    """Over (final)."""
    CANCELLED = "cancelled"
    """Cancelled before receipt; the label voided and the warehouse told (final)."""
    EXCEPTION = "exception"
    """Waiting for a person (customer service); RetryReturnStep goes on from ``problem``."""


FINAL_RETURN_STAGES = frozenset({ReturnStage.COMPLETED, ReturnStage.CANCELLED})
"""Stages a return never leaves."""

BEFORE_RECEIPT = frozenset(
    {ReturnStage.REQUESTED, ReturnStage.LABEL_BOOKED, ReturnStage.AWAITING_PARCEL}
)
"""Stages in which a return can still be cancelled."""


class ReturnStep(msgspec.Struct, frozen=True, kw_only=True):
    """One transition of the return, for its timeline."""

    at: datetime
    from_stage: ReturnStage | None
    to_stage: ReturnStage
    cause_id: str | None
    cause_type: str
    note: str | None = None


class ReturnProblem(msgspec.Struct, frozen=True, kw_only=True):
    """Why a return waits for a person, and where it stopped."""

    code: str
    exception_id: str
    stopped_in: ReturnStage


class ReturnState(msgspec.Struct, frozen=True, kw_only=True):
    """One return's place in the return workflow."""

    return_id: str
    order_ref: str
    stage: ReturnStage
    seq: int = 0
    request: ReturnRequested
    created_at: datetime
    updated_at: datetime
    stage_since: datetime
    deadline_at: datetime | None = None
    deadline_resends: int = 0
    reminders: int = 0
    label_attempt: int = 1
    label: Shipment | None = None
    label_voided: tuple[str, ...] = ()
    """Label ids voided (or being voided)."""
    expected_in_warehouse: bool = False
    warehouse_return_id: str | None = None
    inspected: tuple[InspectedLine, ...] = ()
    credit_attempt: int = 1
    credit_note_ref: str | None = None
    credited: Money | None = None
    problem: ReturnProblem | None = None
    exceptions_raised: int = 0
    timeline: tuple[ReturnStep, ...] = ()
    outbox: tuple[PendingMessage, ...] = ()
    operator_actions: tuple[str, ...] = ()
    lane: Lane = Lane.STANDARD

    @property
    def workflow_ref(self) -> str:
        """What the outbox names its messages by (and correlates them by): the return."""
        return self.return_id


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(ReturnState)


def encode_return(state: ReturnState) -> bytes:
    """The bucket value of ``state``."""
    return _ENCODER.encode(state)


def decode_return(value: bytes) -> ReturnState:
    """The state stored as ``value``; ``msgspec.ValidationError``/``DecodeError`` if corrupt."""
    return _DECODER.decode(value)
