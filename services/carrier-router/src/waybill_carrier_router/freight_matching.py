"""Matching one freight invoice to the labels booked: pure rules, no I/O.

A line matches when it bills, surcharges included, the quote of the label it
names within the tolerance; it is over the tolerance otherwise, for an unknown
label when the router booked no label under the carrier's id it names, and
malformed when it could not be read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

import msgspec

from waybill_carrier_router.carriers.invoices import CarrierInvoice, InvoiceLine
from waybill_carrier_router.freight_book import BookedFreight
from waybill_contracts.events import FreightInvoiceReconciled
from waybill_contracts.model import FreightDiscrepancy, FreightMatch, Money

__all__ = ["FreightTolerance", "in_pages", "reconcile_invoice"]

_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class FreightTolerance:
    """How far a billed amount may stray from the quote: the larger of an amount and a share."""

    absolute: Decimal = Decimal(0)
    percent: Decimal = Decimal(0)

    @classmethod
    def parse(cls, text: str) -> FreightTolerance:
        """``0.50``, ``2%`` or ``0.50,2%``; ValueError saying what is wrong."""
        absolute = percent = None
        for part in (p.strip() for p in text.split(",")):
            try:
                if part.endswith("%"):
                    if percent is not None:
                        raise ValueError("two percentages")
                    percent = Decimal(part[:-1].strip())
                else:
                    if absolute is not None:
                        raise ValueError("two amounts")
                    absolute = Decimal(part)
            except (InvalidOperation, ValueError) as error:
                reason = error if isinstance(error, ValueError) else f"{part!r} is not a number"
                raise ValueError(
                    f"WAYBILL_FREIGHT_TOLERANCE={text!r}: {reason}; expected an amount, a "
                    "percentage, or both, e.g. 0.50,2%"
                ) from None
        for value in (absolute, percent):
            if value is not None and (not value.is_finite() or value < 0):
                raise ValueError(f"WAYBILL_FREIGHT_TOLERANCE={text!r}: must not be negative")
        return cls(absolute=absolute or Decimal(0), percent=percent or Decimal(0))

    def allowed(self, quoted: Decimal) -> Decimal:
        """The largest difference from ``quoted`` that still matches."""
        return max(self.absolute, abs(quoted) * self.percent / _HUNDRED)

    def __str__(self) -> str:
        return f"{self.absolute}" + (f" or {self.percent}%" if self.percent else "")


def reconcile_invoice(
    invoice: CarrierInvoice,
    booked: Mapping[str, BookedFreight],
    tolerance: FreightTolerance,
    *,
    reconciled_at: datetime,
) -> FreightInvoiceReconciled:
    """The report of ``invoice``: ``booked`` holds the labels its lines name, by carrier id."""
    discrepancies: list[FreightDiscrepancy] = []
    matched: list[FreightMatch] = []
    for line in invoice.lines:
        label = booked.get(line.carrier_reference or "")
        found = discrepancy(line, label, tolerance)
        if found is not None:
            discrepancies.append(found)
            continue
        assert label is not None and line.billed is not None  # a match has both
        matched.append(
            FreightMatch(
                line_id=line.line_id,
                shipment_id=label.shipment_id,
                order_ref=label.order_ref,
                quoted=label.quoted,
                billed=line.billed,
            )
        )
    return FreightInvoiceReconciled(
        reconciliation_id=f"freight:{invoice.carrier}:{invoice.invoice_id}",
        carrier=invoice.carrier,
        invoice_id=invoice.invoice_id,
        lines=len(invoice.lines),
        matched=len(matched),
        matched_total=_total([m.billed for m in matched]),
        matched_lines=tuple(matched),
        discrepancies=tuple(discrepancies),
        reconciled_at=reconciled_at,
    )


def in_pages(report: FreightInvoiceReconciled, size: int) -> list[FreightInvoiceReconciled]:
    """``report`` told in pages of at most ``size`` lines (a message has a size limit, and a
    carrier's monthly invoice can bill thousands of shipments); counts become each page's."""
    lines: list[FreightMatch | FreightDiscrepancy] = [
        *report.matched_lines,
        *report.discrepancies,
    ]
    chunks = [lines[start : start + size] for start in range(0, len(lines), size)] or [[]]
    pages = []
    for number, chunk in enumerate(chunks, start=1):
        matched = [line for line in chunk if isinstance(line, FreightMatch)]
        pages.append(
            msgspec.structs.replace(
                report,
                page=number,
                last_page=number == len(chunks),
                lines=len(chunk),
                matched=len(matched),
                matched_total=_total([m.billed for m in matched]),
                matched_lines=tuple(matched),
                discrepancies=tuple(d for d in chunk if isinstance(d, FreightDiscrepancy)),
            )
        )
    return pages


def discrepancy(
    line: InvoiceLine, label: BookedFreight | None, tolerance: FreightTolerance
) -> FreightDiscrepancy | None:
    """What is wrong with ``line`` billing ``label`` (None: it matches)."""

    def found(
        kind: Literal["over_tolerance", "unknown_label", "malformed"], reason: str
    ) -> FreightDiscrepancy:
        return FreightDiscrepancy(
            line_id=line.line_id,
            kind=kind,
            carrier_reference=line.carrier_reference,
            tracking_number=line.tracking_number or (label.tracking_number if label else None),
            shipment_id=label.shipment_id if label else None,
            order_ref=label.order_ref if label else None,
            quoted=label.quoted if label else None,
            billed=line.billed,
            reason=reason,
        )

    if line.problem is not None or line.billed is None:
        return found("malformed", line.problem or "no amount")
    if label is None:
        return found(
            "unknown_label",
            f"billed {_say(line.billed)} for {line.carrier_reference}, "
            "which is no label Waybill booked with this carrier",
        )
    if line.billed.currency != label.quoted.currency:
        return found(
            "over_tolerance",
            f"billed {_say(line.billed)}, quoted {_say(label.quoted)}: in another currency",
        )
    difference = line.billed.amount - label.quoted.amount
    allowed = tolerance.allowed(label.quoted.amount)
    if abs(difference) <= allowed:
        return None
    surcharges = (
        " (surcharges: " + ", ".join(f"{s.name} {s.amount}" for s in line.surcharges) + ")"
        if line.surcharges
        else ""
    )
    return found(
        "over_tolerance",
        f"billed {_say(line.billed)}, quoted {_say(label.quoted)}: "
        f"{difference:+} beyond the tolerance of {allowed}{surcharges}",
    )


def _say(money: Money) -> str:
    return f"{money.amount} {money.currency}"


def _total(amounts: list[Money]) -> Money | None:
    currencies = {money.currency for money in amounts}
    if len(currencies) != 1:
        return None  # no line, or lines in several currencies: no one total to give
    return Money(amount=sum((m.amount for m in amounts), Decimal(0)), currency=currencies.pop())
