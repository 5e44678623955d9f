"""The WMS sandbox's wire shapes for inbound returns (return authorisations)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import msgspec

from waybill_sandboxes.wms.records import NonEmpty, PositiveQty

__all__ = [
    "ExpectedReturnRequest",
    "InboundReturn",
    "InspectionPlan",
    "LineFinding",
    "ReturnLine",
    "ReturnLineRequest",
    "ReturnStatus",
]

NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class ReturnStatus(enum.StrEnum):
    """Where an expected return is at the warehouse's receiving dock."""

    EXPECTED = "expected"
    """Announced by the client; the parcel has not arrived."""
    RECEIVED = "received"
    """The parcel is at the dock and counted; inspection is pending."""
    INSPECTED = "inspected"
    """Every unit judged resellable, damaged or missing: the return is done."""
    CANCELLED = "cancelled"
    """Called off by the client before the parcel arrived."""


class ReturnLineRequest(msgspec.Struct, kw_only=True, frozen=True):
    """One line the client expects back."""

    sku: NonEmpty
    qty: PositiveQty
    uom: NonEmpty = "EA"
    line_no: int | None = None


class ExpectedReturnRequest(msgspec.Struct, kw_only=True, frozen=True):
    """Body of ``POST /api/v1/returns``: an advance notice of a return, idempotent on its ref."""

    client_return_ref: NonEmpty
    lines: Annotated[list[ReturnLineRequest], msgspec.Meta(min_length=1)]
    warehouse: NonEmpty = "WH1"
    tracking_number: str | None = None
    """The return label's tracking number: what the dock matches the parcel by."""
    carrier: str | None = None
    original_order_ref: str | None = None
    """The client order ref of the outbound order the goods left with."""
    reason: str = ""


class ReturnLine(msgspec.Struct, kw_only=True):
    """A return line with what the dock found: ``qty_expected`` = resellable + damaged + missing."""

    line_no: int
    sku: str
    uom: str
    qty_expected: float
    qty_received: float = 0.0
    qty_resellable: float = 0.0
    qty_damaged: float = 0.0
    qty_missing: float = 0.0


class InboundReturn(msgspec.Struct, kw_only=True):
    """An expected return as the WMS holds it and returns it."""

    return_id: str
    client_return_ref: str
    warehouse: str
    status: ReturnStatus
    lines: list[ReturnLine]
    created_at: datetime
    updated_at: datetime
    tracking_number: str | None = None
    carrier: str | None = None
    original_order_ref: str | None = None
    reason: str = ""
    received_at: datetime | None = None
    inspected_at: datetime | None = None
    cancelled_at: datetime | None = None


class LineFinding(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """What the dock will find on one SKU of a return: units damaged, units not in the box."""

    sku: NonEmpty
    damaged: NonNegative = 0.0
    missing: NonNegative = 0.0


class InspectionPlan(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """How the dock will judge one return (set by tests before or after it is expected)."""

    reject_all: bool = False
    """Every unit received is judged damaged: nothing goes back on the shelf."""
    lines: list[LineFinding] = msgspec.field(default_factory=list)
