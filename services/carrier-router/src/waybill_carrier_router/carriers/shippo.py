"""Carrier B's API, Shippo style: shipments with rates, transactions that buy, refunds that void.

Auth is ``Authorization: ShippoToken <key>``. Waybill's reference travels as
the transaction's ``metadata``, and ``GET /transactions/?metadata=...`` finds
a purchase whose answer was lost. A transaction does not repeat the service
or the price of its rate: a lookup answers without them and the router fills
them in from the offer it bought.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec

from waybill_carrier_router.carriers.http import CarrierHttp
from waybill_carrier_router.carriers.invoices import CarrierInvoice
from waybill_carrier_router.carriers.model import (
    DEFAULT_DIMENSIONS,
    CarrierRefused,
    CarrierUnavailable,
    LabelPurchase,
    RateOffer,
    ShipmentSpec,
    TrackingReport,
    aggregator_address,
    as_utc,
)
from waybill_carrier_router.carriers.shippo_billing import posted_invoices
from waybill_carrier_router.carriers.shippo_tracking import Track, report_of
from waybill_contracts.model import Parcel

__all__ = ["ShippoClient", "provider_token"]

_LABEL_FILE_TYPES = {"PDF": "PDF", "ZPL": "ZPLII"}


class _ServiceLevel(msgspec.Struct, kw_only=True):
    token: str
    name: str = ""


class _Rate(msgspec.Struct, kw_only=True):
    object_id: str
    amount: Decimal
    servicelevel: _ServiceLevel
    currency: str = "USD"
    provider: str | None = None
    estimated_days: int | None = None


class _Shipment(msgspec.Struct, kw_only=True):
    object_id: str
    rates: list[_Rate] = msgspec.field(default_factory=list)


class _Message(msgspec.Struct, kw_only=True):
    text: str = ""


class _Transaction(msgspec.Struct, kw_only=True):
    object_id: str
    status: str
    tracking_number: str | None = None
    label_url: str | None = None
    tracking_url_provider: str | None = None
    object_created: datetime | None = None
    rate: str | None = None
    messages: list[_Message] = msgspec.field(default_factory=list)


class _TransactionList(msgspec.Struct, kw_only=True):
    results: list[_Transaction]


class _Refund(msgspec.Struct, kw_only=True):
    object_id: str
    status: str


class _ErrorBody(msgspec.Struct):
    detail: Any = None


def _error_text(body: bytes) -> str:
    try:
        detail = msgspec.json.decode(body, type=_ErrorBody).detail
    except (msgspec.ValidationError, msgspec.DecodeError):
        detail = None
    if detail:
        return detail if isinstance(detail, str) else msgspec.json.encode(detail).decode()
    return body[:200].decode(errors="replace") or "no details"


def provider_token(provider: str) -> str:
    """The provider as Shippo's tracking paths spell it (``DHL Express`` → ``dhl_express``)."""
    return provider.strip().lower().replace(" ", "_")


def _parcel(parcel: Parcel) -> dict[str, str]:
    size = parcel.dimensions or DEFAULT_DIMENSIONS
    # Shippo takes measures as decimal strings.
    return {
        "length": f"{size.length_cm:.2f}",
        "width": f"{size.width_cm:.2f}",
        "height": f"{size.height_cm:.2f}",
        "distance_unit": "cm",
        "weight": f"{parcel.weight_kg:.3f}",
        "mass_unit": "kg",
    }


class ShippoClient:
    """Carrier B: the :class:`~waybill_carrier_router.carriers.model.Carrier` of a Shippo API."""

    def __init__(
        self,
        *,
        code: str,
        base_url: str,
        api_key: str,
        timeout_s: float,
        session: aiohttp.ClientSession,
    ) -> None:
        self.code = code
        self._http = CarrierHttp(
            carrier=code,
            base_url=base_url,
            headers={"Authorization": f"ShippoToken {api_key}", "Accept": "application/json"},
            timeout_s=timeout_s,
            session=session,
            error_text=_error_text,
        )

    async def quote(self, spec: ShipmentSpec) -> list[RateOffer]:
        body: dict[str, object] = {
            "address_from": aggregator_address(spec.ship_from),
            "address_to": aggregator_address(spec.ship_to, spec.recipient),
            "parcels": [_parcel(parcel) for parcel in spec.parcels],
            "metadata": spec.reference,
            "async": False,
        }
        if spec.is_return:
            # Shippo's return: the outbound addresses unswapped, flagged in ``extra``.
            body["extra"] = {"is_return": True}
        shipment = await self._http.call(
            "POST", "/shipments/", _Shipment, json=body, what="rate quote"
        )
        return [
            RateOffer(
                carrier=self.code,
                rate_id=rate.object_id,
                carrier_shipment_id=shipment.object_id,
                service=rate.servicelevel.token,
                provider=rate.provider,
                amount=rate.amount,
                currency=rate.currency.upper(),
                delivery_days=rate.estimated_days,
            )
            for rate in shipment.rates
        ]

    async def buy(self, offer: RateOffer, spec: ShipmentSpec) -> LabelPurchase:
        body = {
            "rate": offer.rate_id,
            "label_file_type": _LABEL_FILE_TYPES[spec.label_format],
            "metadata": spec.reference,
            "async": False,
        }
        transaction = await self._http.call(
            "POST", "/transactions/", _Transaction, json=body, what="label purchase"
        )
        if transaction.status == "ERROR":
            reasons = "; ".join(m.text for m in transaction.messages if m.text) or "no details"
            raise CarrierRefused(self.code, 200, f"label purchase failed: {reasons}")
        purchase = self._purchase_of(transaction)
        if purchase is None:
            raise CarrierUnavailable(
                self.code,
                f"label purchase answered {transaction.status} without a label",
                in_doubt=True,
            )
        return purchase.completed_with(offer)

    async def find_purchase(self, reference: str) -> LabelPurchase | None:
        found = await self._http.call(
            "GET",
            "/transactions/",
            _TransactionList,
            params={"metadata": reference},
            what="purchase lookup",
        )
        # Newest first; the oldest purchase is the one that counts if there were several.
        purchases = [p for t in found.results if (p := self._purchase_of(t)) is not None]
        return purchases[-1] if purchases else None

    async def void(self, carrier_reference: str) -> None:
        refund = await self._http.call(
            "POST",
            "/refunds/",
            _Refund,
            json={"transaction": carrier_reference, "async": False},
            what="label void",
        )
        if refund.status == "ERROR":
            raise CarrierRefused(self.code, 200, f"refund {refund.object_id} failed")

    async def track(self, tracking_number: str, provider: str | None = None) -> TrackingReport:
        if not provider:
            raise ValueError(f"{self.code} tracks per provider: name it (e.g. USPS)")
        track = await self._http.call(
            "GET",
            f"/tracks/{provider_token(provider)}/{tracking_number}",
            Track,
            what="tracking lookup",
        )
        return report_of(track)

    async def invoices(self, since: datetime, until: datetime) -> list[CarrierInvoice]:
        # Shippo's list has no date filter we rely on: older invoices are skipped by date.
        return [
            invoice
            for invoice in await posted_invoices(self._http, since)
            if invoice.issued_at is None or invoice.issued_at <= until
        ]

    def _purchase_of(self, transaction: _Transaction) -> LabelPurchase | None:
        if (
            transaction.status != "SUCCESS"
            or not transaction.tracking_number
            or not transaction.label_url
        ):
            return None
        return LabelPurchase(
            carrier=self.code,
            carrier_reference=transaction.object_id,
            tracking_number=transaction.tracking_number,
            label_url=transaction.label_url,
            bought_at=as_utc(transaction.object_created or datetime.now(UTC)),
            rate_id=transaction.rate,
            tracking_url=transaction.tracking_url_provider,
        )
