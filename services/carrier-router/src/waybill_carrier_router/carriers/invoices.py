"""Freight invoices as the router reads them, whatever the carrier's billing API.

A carrier bills per shipment: each :class:`InvoiceLine` names the purchase it
bills (the carrier's id, as the label purchase answered it) and what it costs
in all, surcharges included. A line the client cannot read is kept with its
``problem`` instead of failing the whole invoice: the reconciliation reports
it and goes on.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

import msgspec

from waybill_contracts.model import Money

__all__ = ["CarrierInvoice", "InvoiceLine", "Surcharge", "money_of"]


class Surcharge(msgspec.Struct, frozen=True, kw_only=True):
    """One itemised surcharge (fuel, residential...)."""

    name: str
    amount: Decimal


class InvoiceLine(msgspec.Struct, frozen=True, kw_only=True):
    """What the carrier bills for one shipment."""

    line_id: str
    carrier_reference: str | None
    tracking_number: str | None = None
    billed: Money | None = None
    """Base charge plus surcharges (None when the line could not be read)."""
    surcharges: tuple[Surcharge, ...] = ()
    problem: str | None = None
    """Why the line cannot be read (None: it can)."""


class CarrierInvoice(msgspec.Struct, frozen=True, kw_only=True):
    """One invoice of a carrier account."""

    carrier: str
    invoice_id: str
    issued_at: datetime | None
    lines: tuple[InvoiceLine, ...]


def money_of(amount: str, currency: str) -> Money:
    """A carrier's amount and currency as Money; ValueError saying what is wrong."""
    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        raise ValueError(f"amount {amount!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"amount {amount!r} is not a number")
    code = currency.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ValueError(f"currency {currency!r} is not an ISO 4217 code")
    return Money(amount=value, currency=code)
