"""Freight invoices of a carrier sandbox: what the carrier bills for the labels bought.

Both carriers bill the same way underneath; each API shows it in its own shape
(carrier A a shipment invoice report, carrier B invoices and invoice items).
An invoice is cut when the carrier's billing API is asked and there are labels
bought, not voided and not billed yet (or seeded lines waiting): every such
label gets one line at the price it was bought for, so a run with no seeds
bills exactly what was quoted. Tests and demos make the carrier wrong on
purpose through the admin routes, before the invoice is cut:

- ``POST /_sandbox/billing/lines/{key}`` (tracking number or reference)
  ``{"kind": "overcharge", "amount": "4.00"}`` bills the base charge that much
  higher; ``{"kind": "surcharge", "name": "residential", "amount": "3.10"}``
  adds an itemised surcharge; ``{"kind": "malformed"}`` bills an amount that is
  no number;
- ``POST /_sandbox/billing/unknown`` ``{"carrier_reference": ..., "tracking_number":
  ..., "amount": ...}`` bills a shipment this account never bought;
- ``POST /_sandbox/billing/close`` cuts an invoice now; ``GET /_sandbox/billing/invoices``
  lists what was billed.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from aiohttp import web

from waybill_sandboxes.responses import BadBody, json_response, read_json

if TYPE_CHECKING:  # base.py builds a Billing: imported for types only
    from waybill_sandboxes.carriers.base import Purchase

__all__ = ["BilledLine", "Billing", "Invoice", "billing_admin_routes"]

_MALFORMED_AMOUNT = "n/a"

DecimalText = Annotated[str, msgspec.Meta(pattern=r"^-?\d+(\.\d+)?$")]


class Charge(msgspec.Struct, kw_only=True):
    """One surcharge on a line (fuel, residential...)."""

    name: str
    amount: str


class BilledLine(msgspec.Struct, kw_only=True):
    """What the carrier bills for one shipment."""

    line_id: str
    carrier_reference: str
    """The carrier's id of the purchase (shipment or transaction)."""
    tracking_number: str
    quoted_amount: str | None
    """What the label was bought for (None: not a shipment of this account)."""
    base_amount: str
    surcharges: list[Charge]
    currency: str
    service: str | None
    label_date: datetime | None

    @property
    def total(self) -> str:
        """Base plus surcharges; not a number when any part is not."""
        try:
            total = Decimal(self.base_amount) + sum(
                (Decimal(c.amount) for c in self.surcharges), Decimal(0)
            )
        except InvalidOperation:
            return _MALFORMED_AMOUNT
        return f"{total:.2f}"


class Invoice(msgspec.Struct, kw_only=True):
    """One invoice: the lines billed together."""

    invoice_id: str
    number: int
    issued_at: datetime
    currency: str
    lines: list[BilledLine]

    @property
    def total(self) -> str:
        try:
            total = sum((Decimal(line.total) for line in self.lines), Decimal(0))
        except InvalidOperation:
            return _MALFORMED_AMOUNT
        return f"{total:.2f}"


class LineSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A wrong amount to bill on one label."""

    kind: Literal["overcharge", "surcharge", "malformed"]
    amount: DecimalText = "0"
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] = "fuel"


class UnknownSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A line for a shipment this account never bought."""

    carrier_reference: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    tracking_number: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    amount: DecimalText


class Billing:
    """The invoices of one carrier account, cut from its purchases."""

    def __init__(self, *, invoice_prefix: str, currency: str = "USD") -> None:
        self._prefix = invoice_prefix
        self._currency = currency
        self._numbers = itertools.count(1)
        self.invoices: list[Invoice] = []
        self.seeds: dict[str, list[LineSeed]] = {}
        self.unknown: list[UnknownSeed] = []
        self._billed: set[str] = set()

    def seed(self, key: str, seed: LineSeed) -> None:
        """Bill the label with tracking number or reference ``key`` wrongly."""
        self.seeds.setdefault(key, []).append(seed)

    def cut(
        self, purchases: Sequence[Purchase], carrier_reference_of: Callable[[Purchase], str]
    ) -> None:
        """Cut an invoice of everything bought and not billed yet (nothing: no invoice).

        ``carrier_reference_of`` gives the id the carrier's API shows for a
        purchase (carrier A bills shipments, carrier B transactions).
        """
        lines = [
            self._line(p, carrier_reference_of(p))
            for p in purchases
            if not p.voided and p.purchase_id not in self._billed
        ]
        # A label voided before it was billed is never billed (refunded in full).
        self._billed.update(p.purchase_id for p in purchases)
        lines.extend(self._unknown_line(seed) for seed in self.unknown)
        self.unknown.clear()
        if not lines:
            return
        number = next(self._numbers)
        self.invoices.append(
            Invoice(
                invoice_id=f"{self._prefix}{uuid.uuid4().hex[:24]}",
                number=number,
                issued_at=datetime.now(UTC),
                currency=self._currency,
                lines=lines,
            )
        )

    def _line(self, purchase: Purchase, carrier_reference: str) -> BilledLine:
        seeds = [
            *self.seeds.pop(purchase.tracking_number, []),
            *(self.seeds.pop(purchase.reference, []) if purchase.reference else []),
        ]
        base = Decimal(purchase.rate.amount)
        surcharges: list[Charge] = []
        malformed = False
        for seed in seeds:
            if seed.kind == "overcharge":
                base += Decimal(seed.amount)
            elif seed.kind == "surcharge":
                surcharges.append(Charge(name=seed.name, amount=f"{Decimal(seed.amount):.2f}"))
            else:
                malformed = True
        return BilledLine(
            line_id=f"li_{uuid.uuid4().hex[:24]}",
            carrier_reference=carrier_reference,
            tracking_number=purchase.tracking_number,
            quoted_amount=purchase.rate.amount,
            base_amount=_MALFORMED_AMOUNT if malformed else f"{base:.2f}",
            surcharges=surcharges,
            currency=purchase.rate.currency,
            service=purchase.rate.service.token,
            label_date=purchase.bought_at,
        )

    def _unknown_line(self, seed: UnknownSeed) -> BilledLine:
        return BilledLine(
            line_id=f"li_{uuid.uuid4().hex[:24]}",
            carrier_reference=seed.carrier_reference,
            tracking_number=seed.tracking_number,
            quoted_amount=None,
            base_amount=f"{Decimal(seed.amount):.2f}",
            surcharges=[],
            currency=self._currency,
            service=None,
            label_date=None,
        )


def billing_admin_routes(billing: Billing, close: Callable[[], None]) -> list[web.RouteDef]:
    """The ``/_sandbox/billing/...`` routes of a carrier sandbox (see the module docstring)."""

    async def seed_line(request: web.Request) -> web.Response:
        try:
            seed = await read_json(request, LineSeed)
        except BadBody as error:
            return json_response({"error": str(error)}, status=400)
        billing.seed(request.match_info["key"], seed)
        return json_response({"key": request.match_info["key"], "seeded": seed})

    async def seed_unknown(request: web.Request) -> web.Response:
        try:
            seed = await read_json(request, UnknownSeed)
        except BadBody as error:
            return json_response({"error": str(error)}, status=400)
        billing.unknown.append(seed)
        return json_response({"seeded": seed})

    async def close_invoice(request: web.Request) -> web.Response:
        close()
        return json_response({"invoices": len(billing.invoices)})

    async def list_invoices(request: web.Request) -> web.Response:
        return json_response(
            {
                "invoices": [
                    {
                        "invoice_id": invoice.invoice_id,
                        "issued_at": invoice.issued_at,
                        "total": invoice.total,
                        "lines": [
                            {**msgspec.to_builtins(line), "total": line.total}
                            for line in invoice.lines
                        ],
                    }
                    for invoice in billing.invoices
                ]
            }
        )

    return [
        web.post("/_sandbox/billing/lines/{key}", seed_line),
        web.post("/_sandbox/billing/unknown", seed_unknown),
        web.post("/_sandbox/billing/close", close_invoice),
        web.get("/_sandbox/billing/invoices", list_invoices),
    ]
