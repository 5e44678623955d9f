"""Carrier A's API, EasyPost style (``/v2``): rate a shipment, buy one of its rates, refund.

Auth is HTTP Basic with the API key as user name. A shipment is created with
Waybill's reference and one parcel (ounces, inches) and comes back with rates;
buying picks one rate of that shipment. The reference is how a purchase whose
answer was lost is found again: ``GET /v2/shipments?reference=...&purchased=true``.
A multi-parcel shipment is rated and labelled as one consignment: total weight,
outer size of the largest parcel.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import msgspec

from waybill_carrier_router.carriers.easypost_billing import shipment_invoices
from waybill_carrier_router.carriers.easypost_tracking import TrackerList, report_of
from waybill_carrier_router.carriers.http import CarrierHttp
from waybill_carrier_router.carriers.invoices import CarrierInvoice
from waybill_carrier_router.carriers.model import (
    CarrierUnavailable,
    LabelPurchase,
    RateOffer,
    ShipmentSpec,
    TrackingReport,
    aggregator_address,
    as_utc,
    outer_dimensions,
    total_weight_kg,
)
from waybill_contracts.model import Money

__all__ = ["EasyPostClient"]

_OUNCES_PER_KG = 35.27396195
_CM_PER_INCH = 2.54


class _Rate(msgspec.Struct, kw_only=True):
    id: str
    service: str
    rate: Decimal
    currency: str = "USD"
    carrier: str | None = None
    delivery_days: int | None = None


class _PostageLabel(msgspec.Struct, kw_only=True):
    label_url: str
    label_date: datetime | None = None


class _Shipment(msgspec.Struct, kw_only=True):
    id: str
    rates: list[_Rate] = msgspec.field(default_factory=list)
    selected_rate: _Rate | None = None
    postage_label: _PostageLabel | None = None
    tracking_code: str | None = None
    updated_at: datetime | None = None


class _ShipmentList(msgspec.Struct, kw_only=True):
    shipments: list[_Shipment]


class _Error(msgspec.Struct):
    message: str = ""
    code: str = ""


class _ErrorBody(msgspec.Struct):
    error: _Error


def _error_text(body: bytes) -> str:
    try:
        error = msgspec.json.decode(body, type=_ErrorBody).error
    except (msgspec.ValidationError, msgspec.DecodeError):
        return body[:200].decode(errors="replace") or "no details"
    return f"{error.code}: {error.message}" if error.code else error.message


def _parcel(spec: ShipmentSpec) -> dict[str, float]:
    size = outer_dimensions(spec.parcels)
    return {
        "weight": round(total_weight_kg(spec.parcels) * _OUNCES_PER_KG, 2),
        "length": round(size.length_cm / _CM_PER_INCH, 2),
        "width": round(size.width_cm / _CM_PER_INCH, 2),
        "height": round(size.height_cm / _CM_PER_INCH, 2),
    }


class EasyPostClient:
    """Carrier A: the :class:`~waybill_carrier_router.carriers.model.Carrier` of an EasyPost API."""

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
        basic = base64.b64encode(f"{api_key}:".encode()).decode()
        self._http = CarrierHttp(
            carrier=code,
            base_url=base_url,
            headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
            timeout_s=timeout_s,
            session=session,
            error_text=_error_text,
        )

    async def quote(self, spec: ShipmentSpec) -> list[RateOffer]:
        shipment_body: dict[str, object] = {
            "reference": spec.reference,
            "to_address": aggregator_address(spec.ship_to, spec.recipient),
            "from_address": aggregator_address(spec.ship_from),
            "parcel": _parcel(spec),
            "options": {"label_format": spec.label_format},
        }
        if spec.is_return:
            # EasyPost's return: the outbound addresses as they are, flagged; it swaps them.
            shipment_body["is_return"] = True
        body = {"shipment": shipment_body}
        shipment = await self._http.call(
            "POST", "/v2/shipments", _Shipment, json=body, what="rate quote"
        )
        return [
            RateOffer(
                carrier=self.code,
                rate_id=rate.id,
                carrier_shipment_id=shipment.id,
                service=rate.service,
                provider=rate.carrier,
                amount=rate.rate,
                currency=rate.currency.upper(),
                delivery_days=rate.delivery_days,
            )
            for rate in shipment.rates
        ]

    async def buy(self, offer: RateOffer, spec: ShipmentSpec) -> LabelPurchase:
        shipment = await self._http.call(
            "POST",
            f"/v2/shipments/{offer.carrier_shipment_id}/buy",
            _Shipment,
            json={"rate": {"id": offer.rate_id}},
            what="label purchase",
        )
        purchase = self._purchase_of(shipment)
        if purchase is None:
            # A 2xx without a label is not a purchase we can use, nor proof there was none.
            raise CarrierUnavailable(
                self.code, "label purchase answered without a label", in_doubt=True
            )
        return purchase.completed_with(offer)

    async def find_purchase(self, reference: str) -> LabelPurchase | None:
        found = await self._http.call(
            "GET",
            "/v2/shipments",
            _ShipmentList,
            params={"reference": reference, "purchased": "true"},
            what="purchase lookup",
        )
        # Newest first; the oldest purchase is the one that counts if there were several.
        purchases = [p for s in found.shipments if (p := self._purchase_of(s)) is not None]
        return purchases[-1] if purchases else None

    async def void(self, carrier_reference: str) -> None:
        await self._http.call(
            "POST", f"/v2/shipments/{carrier_reference}/refund", _Shipment, what="label void"
        )

    async def track(self, tracking_number: str, provider: str | None = None) -> TrackingReport:
        found = await self._http.call(
            "GET",
            "/v2/trackers",
            TrackerList,
            params={"tracking_code": tracking_number},
            what="tracking lookup",
        )
        for tracker in found.trackers:
            if tracker.tracking_code == tracking_number:
                return report_of(tracker)
        return TrackingReport(tracking_number=tracking_number, events=())

    async def invoices(self, since: datetime, until: datetime) -> list[CarrierInvoice]:
        return await shipment_invoices(self._http, since.date(), until.date())

    def _purchase_of(self, shipment: _Shipment) -> LabelPurchase | None:
        label, rate = shipment.postage_label, shipment.selected_rate
        if label is None or rate is None or not shipment.tracking_code:
            return None
        bought_at = label.label_date or shipment.updated_at or datetime.now(UTC)
        return LabelPurchase(
            carrier=self.code,
            carrier_reference=shipment.id,
            tracking_number=shipment.tracking_code,
            label_url=label.label_url,
            bought_at=as_utc(bought_at),
            rate_id=rate.id,
            service=rate.service,
            provider=rate.carrier,
            cost=Money(amount=rate.rate, currency=rate.currency.upper()),
        )
