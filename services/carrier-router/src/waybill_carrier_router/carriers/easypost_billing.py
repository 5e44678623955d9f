"""Carrier A's bills, EasyPost style: the shipment invoice report.

``POST /v2/reports/shipment_invoice`` with a date range makes a report; once
its ``status`` is ``available`` its ``url`` (pre-signed, short-lived, fetched
without the API key) serves a CSV with one row per shipment billed:
``shipment_id``, ``tracking_code``, ``carrier_invoice_id``,
``quoted_currency``, ``final_invoice_amount`` (what is due in all) and more.
``empty`` means nothing was billed in the range. Rows are grouped into
invoices by ``carrier_invoice_id``.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date
from decimal import Decimal, InvalidOperation

import msgspec

from waybill_carrier_router.carriers.http import CarrierHttp
from waybill_carrier_router.carriers.invoices import (
    CarrierInvoice,
    InvoiceLine,
    Surcharge,
    money_of,
)
from waybill_carrier_router.carriers.model import CarrierUnavailable

__all__ = ["shipment_invoices"]

_POLLS = 10
_POLL_WAIT_S = 0.5


class _Report(msgspec.Struct, kw_only=True):
    id: str
    status: str | None = None
    url: str | None = None


async def shipment_invoices(http: CarrierHttp, since: date, until: date) -> list[CarrierInvoice]:
    """The invoices billed from ``since`` to ``until`` (whole days, as the report counts)."""
    report = await http.call(
        "POST",
        "/v2/reports/shipment_invoice",
        _Report,
        json={"start_date": since.isoformat(), "end_date": until.isoformat()},
        what="shipment invoice report",
    )
    for _ in range(_POLLS):
        if report.status in ("available", "empty", "failed"):
            break
        await asyncio.sleep(_POLL_WAIT_S)  # the carrier makes the report in the background
        report = await http.call(
            "GET",
            f"/v2/reports/shipment_invoice/{report.id}",
            _Report,
            what="shipment invoice report",
        )
    if report.status == "empty":
        return []
    if report.status != "available" or not report.url:
        raise CarrierUnavailable(
            http.carrier,
            f"shipment invoice report {report.id} is {report.status or 'not ready'}",
            in_doubt=False,
        )
    content = await http.download(report.url, what="shipment invoice report file")
    return _invoices(http.carrier, content)


def _invoices(carrier: str, content: bytes) -> list[CarrierInvoice]:
    grouped: dict[str, list[InvoiceLine]] = {}
    for number, row in enumerate(csv.DictReader(io.StringIO(content.decode(errors="replace")))):
        invoice_id = (row.get("carrier_invoice_id") or "").strip() or "(no invoice id)"
        grouped.setdefault(invoice_id, []).append(_line(number, row))
    return [
        CarrierInvoice(carrier=carrier, invoice_id=invoice_id, issued_at=None, lines=tuple(lines))
        for invoice_id, lines in grouped.items()
    ]


def _line(number: int, row: dict[str, str | None]) -> InvoiceLine:
    reference = (row.get("shipment_id") or "").strip() or None
    tracking = (row.get("tracking_code") or "").strip() or None
    line_id = reference or f"row-{number + 1}"
    try:
        billed = money_of(row.get("final_invoice_amount") or "", row.get("quoted_currency") or "")
        surcharges = tuple(_surcharges(row.get("surcharges") or ""))
    except ValueError as error:
        return InvoiceLine(
            line_id=line_id,
            carrier_reference=reference,
            tracking_number=tracking,
            problem=f"row {number + 1}: {error}",
        )
    if reference is None:
        return InvoiceLine(
            line_id=line_id, carrier_reference=None, problem=f"row {number + 1}: no shipment_id"
        )
    return InvoiceLine(
        line_id=line_id,
        carrier_reference=reference,
        tracking_number=tracking,
        billed=billed,
        surcharges=surcharges,
    )


def _surcharges(text: str) -> list[Surcharge]:
    found = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, amount = part.partition("=")
        try:
            found.append(Surcharge(name=name.strip(), amount=Decimal(amount.strip())))
        except InvalidOperation:
            raise ValueError(f"surcharge {part!r} is not name=amount") from None
    return found
