"""The records of the return workflow (issue 20): a return's id, its lines, what inspection found.

A return brings delivered goods back: requested in Odoo (a return picking
made from the delivered one) or as an RMA, carried back on a return label,
received and inspected by the warehouse, put back in stock or scrapped in
Odoo, and credited. The messages live in :mod:`waybill_contracts.events.returns`
and :mod:`waybill_contracts.return_commands`; these are their shared parts.
Since 1.1.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from msgspec import Meta

from waybill_contracts.model import PositiveInt, Quantity, Sku
from waybill_contracts.record import Record

__all__ = ["CreditedLine", "InspectedLine", "ReturnId", "ReturnLabelId", "ReturnLine"]

ReturnId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        description="Waybill's return reference: the name of the Odoo return picking "
        "(e.g. WH/RET/00007) or the RMA reference; the correlation id of everything about "
        "the return.",
    ),
]
ReturnLabelId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        description="Id of a return label purchase, assigned by the orchestrator; the "
        "carrier-router's key for buying it once.",
    ),
]
_Reason = Annotated[
    Annotated[str, Meta(max_length=256)] | None,
    Meta(description="Why the customer sends it back, if said."),
]
_LineNo = Annotated[PositiveInt, Meta(description="The line's number within the return, from 1.")]
_MoveId = Annotated[
    PositiveInt | None, Meta(description="Odoo stock.move id of the delivered line, if known.")
]


class ReturnLine(Record, frozen=True, kw_only=True):
    """One line the customer sends back."""

    line_no: _LineNo
    sku: Sku
    quantity: Annotated[Quantity, Meta(description="Quantity sent back (positive).")]
    reason: _Reason = None
    odoo_move_id: _MoveId = None

    def __post_init__(self) -> None:
        if self.quantity.value <= 0:
            raise ValueError(f"return line {self.line_no}: quantity must be positive")


class InspectedLine(Record, frozen=True, kw_only=True):
    """What the warehouse found of one return line; the three quantities add up to what was
    expected back."""

    line_no: _LineNo
    sku: Sku
    resellable: Annotated[Quantity, Meta(description="Back in stock, fit to sell again.")]
    damaged: Annotated[Quantity, Meta(description="Received damaged: goes to scrap.")]
    missing: Annotated[Quantity, Meta(description="Expected and not in the parcel.")]

    def __post_init__(self) -> None:
        for part in (self.resellable, self.damaged, self.missing):
            if part.value < 0:
                raise ValueError(f"inspected line {self.line_no}: quantities cannot be negative")

    @property
    def accepted(self) -> Decimal:
        """What is credited: the resellable quantity (damaged and missing goods are not)."""
        return self.resellable.value


class CreditedLine(Record, frozen=True, kw_only=True):
    """One line of a credit note: what is credited of a delivered line."""

    sku: Sku
    quantity: Annotated[Quantity, Meta(description="Quantity credited (positive).")]
    odoo_move_id: _MoveId = None
