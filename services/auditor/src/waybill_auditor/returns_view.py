"""Returns as the control tower lists them: where each stands, from its latest step.

Every return event (``waybill.evt.return.*``) is keyed by the return id and
names the order; the latest recorded step of each return is where it stands.
A return whose latest step wants a person (no carrier sold a label, Odoo
refused the credit note, the parcel is late) is troubled, listed first, and
an operator may have its step tried again (``RetryReturnStep``).
"""

from __future__ import annotations

import logging
from datetime import datetime

import msgspec

from waybill_auditor.store import AuditStore
from waybill_contracts import SubjectMap
from waybill_contracts.events.returns import (
    CreditNoteIssued,
    CreditNoteRefused,
    ReturnCancelled,
    ReturnCompleted,
    ReturnInspected,
    ReturnLabelBooked,
    ReturnLabelBookingFailed,
    ReturnLabelVoided,
    ReturnParcelOverdue,
    ReturnReceived,
    ReturnRequested,
    ReturnStockPosted,
)
from waybill_contracts.messages import Event

__all__ = ["ReturnRow", "latest_returns"]

log = logging.getLogger(__name__)

STEPS: tuple[tuple[type[Event], str], ...] = (
    (ReturnRequested, "requested"),
    (ReturnLabelBooked, "label sent"),
    (ReturnLabelBookingFailed, "no label sold"),
    (ReturnLabelVoided, "label voided"),
    (ReturnParcelOverdue, "parcel overdue"),
    (ReturnReceived, "received"),
    (ReturnInspected, "inspected"),
    (ReturnStockPosted, "stock posted"),
    (CreditNoteRefused, "credit note refused"),
    (CreditNoteIssued, "credit note issued"),
    (ReturnCancelled, "cancelled"),
    (ReturnCompleted, "completed"),
)
"""Each return event and the step it names, in flow order (a tie in time goes to the later)."""
TROUBLED = frozenset({"no label sold", "parcel overdue", "credit note refused"})
FINAL = frozenset({"completed", "cancelled"})


class _Step(msgspec.Struct):
    """What every return event carries (the rest of its body is the step's own)."""

    return_id: str
    order_ref: str | None = None


class ReturnRow(msgspec.Struct, frozen=True, kw_only=True):
    """One return: its order, its latest step and since when."""

    return_id: str
    order_ref: str | None
    step: str
    since: datetime
    troubled: bool
    final: bool


async def latest_returns(store: AuditStore, subjects: SubjectMap, *, limit: int) -> list[ReturnRow]:
    """The ``limit`` returns to show: troubled first, then open ones, newest first."""
    decode = msgspec.json.Decoder(_Step).decode
    latest: dict[str, tuple[datetime, int, ReturnRow]] = {}
    for order, (event_type, step) in enumerate(STEPS):
        for row in await store.latest_per_subject(subjects.ce_type_for(event_type)):
            try:
                body = decode(row.body)
            except msgspec.DecodeError as error:
                log.warning("return step %s cannot be read: %s", row.id, error)
                continue
            known = latest.get(body.return_id)
            if known is not None and (known[0], known[1]) >= (row.time, order):
                continue
            latest[body.return_id] = (
                row.time,
                order,
                ReturnRow(
                    return_id=body.return_id,
                    order_ref=body.order_ref or (known[2].order_ref if known else None),
                    step=step,
                    since=row.time,
                    troubled=step in TROUBLED,
                    final=step in FINAL,
                ),
            )
    rows = [row for _, _, row in latest.values()]
    rows.sort(key=lambda r: r.since, reverse=True)
    rows.sort(key=lambda r: (not r.troubled, r.final))
    return rows[:limit]
