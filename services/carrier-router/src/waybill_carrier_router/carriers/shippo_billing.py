"""Carrier B's bills, Shippo style: ``GET /invoices`` and ``GET /invoice-items``.

Invoices come a page at a time (``page``, ``results`` up to 100, ``next``
null on the last page). Each invoice's items are read with
``invoiceObjectId``: a ``LABEL_PAYMENT`` per label bought names its
``transaction`` (the purchase), other item types for the same transaction
(surcharges) add to it. Items are grouped by transaction into one line per
shipment.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Generic, TypeVar

import msgspec

from waybill_carrier_router.carriers.http import CarrierHttp
from waybill_carrier_router.carriers.invoices import (
    CarrierInvoice,
    InvoiceLine,
    Surcharge,
    money_of,
)
from waybill_carrier_router.carriers.model import as_utc
from waybill_contracts.model import Money

__all__ = ["posted_invoices"]

_PAGE_SIZE = 100
_MAX_PAGES = 100
_BILLED_STATUSES = frozenset({"POSTED", "PAID"})
_LABEL_PAYMENT = "LABEL_PAYMENT"


class _Invoice(msgspec.Struct, kw_only=True):
    object_id: str
    status: str = ""
    object_created: datetime | None = None


R = TypeVar("R")


class _Page(msgspec.Struct, Generic[R], kw_only=True):
    results: list[R]
    next: str | None = None


class _InvoicePage(_Page[_Invoice], kw_only=True):
    pass


class _Item(msgspec.Struct, kw_only=True):
    object_id: str
    type: str = ""
    description: str = ""
    amount: str = ""
    currency: str = ""
    transaction: str | None = None


class _ItemPage(_Page[_Item], kw_only=True):
    pass


async def posted_invoices(http: CarrierHttp, since: datetime) -> list[CarrierInvoice]:
    """The posted invoices created at or after ``since``, with their lines."""
    invoices: list[CarrierInvoice] = []
    for invoice in await _every_page(http, "/invoices", _InvoicePage, {}, what="invoice list"):
        created = as_utc(invoice.object_created) if invoice.object_created else None
        if invoice.status not in _BILLED_STATUSES or (created and created < since):
            continue
        invoices.append(
            CarrierInvoice(
                carrier=http.carrier,
                invoice_id=invoice.object_id,
                issued_at=created,
                lines=await _lines(http, invoice.object_id),
            )
        )
    return invoices


async def _every_page(
    http: CarrierHttp,
    path: str,
    page_type: type[_Page[R]],
    params: dict[str, str],
    *,
    what: str,
) -> list[R]:
    """Every result of a paginated list, page after page until ``next`` is null."""
    found: list[R] = []
    for page in range(1, _MAX_PAGES + 1):
        answer = await http.call(
            "GET",
            path,
            page_type,
            params={**params, "page": str(page), "results": str(_PAGE_SIZE)},
            what=what,
        )
        found.extend(answer.results)
        if not answer.next:
            break
    return found


async def _lines(http: CarrierHttp, invoice_id: str) -> tuple[InvoiceLine, ...]:
    items = await _every_page(
        http, "/invoice-items", _ItemPage, {"invoiceObjectId": invoice_id}, what="invoice items"
    )
    by_transaction: dict[str, list[_Item]] = {}
    lines: list[InvoiceLine] = []
    for item in items:
        if not item.transaction:
            lines.append(
                InvoiceLine(
                    line_id=item.object_id,
                    carrier_reference=None,
                    problem=f"item {item.object_id} ({item.type}) names no transaction",
                )
            )
            continue
        by_transaction.setdefault(item.transaction, []).append(item)
    lines.extend(_line(transaction, group) for transaction, group in by_transaction.items())
    return tuple(lines)


def _line(transaction: str, items: list[_Item]) -> InvoiceLine:
    try:
        amounts = [money_of(item.amount, item.currency or "USD") for item in items]
    except ValueError as error:
        return InvoiceLine(
            line_id=transaction,
            carrier_reference=transaction,
            problem=f"transaction {transaction}: {error}",
        )
    currencies = {money.currency for money in amounts}
    if len(currencies) > 1:
        return InvoiceLine(
            line_id=transaction,
            carrier_reference=transaction,
            problem=f"transaction {transaction}: items in several currencies "
            f"({', '.join(sorted(currencies))})",
        )
    total = sum((money.amount for money in amounts), Decimal(0))
    surcharges = tuple(
        Surcharge(name=item.description or item.type, amount=money.amount)
        for item, money in zip(items, amounts, strict=True)
        if item.type != _LABEL_PAYMENT
    )
    return InvoiceLine(
        line_id=transaction,
        carrier_reference=transaction,
        billed=Money(amount=total, currency=currencies.pop()),
        surcharges=surcharges,
    )
