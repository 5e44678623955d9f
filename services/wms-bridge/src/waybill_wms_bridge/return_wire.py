"""The WMS's wire shapes for expected returns (``/api/v1/returns`` and ``return.*`` webhooks).

Lenient readers as in :mod:`.wms_wire`: unknown fields are ignored and
statuses stay plain text. Each line's quantities add up:
``qty_expected = qty_resellable + qty_damaged + qty_missing`` once inspected.
"""

from __future__ import annotations

import msgspec

from waybill_wms_bridge.wms_wire import AwareDateTime

__all__ = [
    "ReturnStatus",
    "WmsReturn",
    "WmsReturnLine",
    "WmsReturnLineRequest",
    "WmsReturnList",
    "WmsReturnRequest",
]


class ReturnStatus:
    """The return statuses the WMS reports (plain strings on the wire)."""

    EXPECTED = "expected"
    RECEIVED = "received"
    INSPECTED = "inspected"
    CANCELLED = "cancelled"


# --- what the bridge sends -------------------------------------------------------------


class WmsReturnLineRequest(msgspec.Struct, kw_only=True, frozen=True):
    """One line the warehouse should expect back."""

    line_no: int
    sku: str
    qty: float
    uom: str


class WmsReturnRequest(msgspec.Struct, kw_only=True, frozen=True):
    """Body of ``POST /api/v1/returns``; the WMS is idempotent on the client return ref.

    As for orders, a replay must be the same request: other content under the
    same ref is a 409.
    """

    client_return_ref: str
    warehouse: str
    lines: list[WmsReturnLineRequest]
    tracking_number: str | None = None
    """The return label's tracking number, which the dock matches the parcel by."""
    carrier: str | None = None
    original_order_ref: str | None = None
    reason: str = ""


# --- what the bridge reads -------------------------------------------------------------


class WmsReturnLine(msgspec.Struct, kw_only=True, frozen=True):
    """A return line with what the dock found."""

    line_no: int = 0
    sku: str
    uom: str = "EA"
    qty_expected: float
    qty_received: float = 0.0
    qty_resellable: float = 0.0
    qty_damaged: float = 0.0
    qty_missing: float = 0.0


class WmsReturn(msgspec.Struct, kw_only=True, frozen=True):
    """An expected return as the WMS returns it, in the API and in ``return.*`` webhooks."""

    return_id: str
    client_return_ref: str
    warehouse: str = ""
    status: str
    lines: list[WmsReturnLine] = msgspec.field(default_factory=list)
    tracking_number: str | None = None
    original_order_ref: str | None = None
    created_at: AwareDateTime
    updated_at: AwareDateTime
    received_at: AwareDateTime | None = None
    inspected_at: AwareDateTime | None = None
    cancelled_at: AwareDateTime | None = None


class WmsReturnList(msgspec.Struct, kw_only=True, frozen=True):
    """Answer of ``GET /api/v1/returns``: oldest change first."""

    returns: list[WmsReturn]
