"""Carrier A: a stand-in in the style of EasyPost's ``/v2`` API.

Shipments are created with addresses and a parcel (ounces, inches) and come
back with rates; ``buy`` picks a rate and returns the label and tracking
code; ``refund`` voids. Auth is HTTP Basic with the API key as user name.
The caller's ``reference`` is stored on the shipment and can be searched,
which is how a client finds a purchase it lost track of after a timeout.
Webhooks are Event objects signed ``X-Hmac-Signature: hmac-sha256-hex=...``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from aiohttp import hdrs, web

from waybill_sandboxes.carriers.base import (
    CarrierConfig,
    CarrierSandbox,
    Purchase,
    RateQuote,
    Service,
    VoidRefused,
)
from waybill_sandboxes.carriers.billing import BilledLine
from waybill_sandboxes.carriers.labels import LabelFormat
from waybill_sandboxes.carriers.tracking import Milestone, TrackingEvent
from waybill_sandboxes.responses import BadBody, json_response, read_json
from waybill_sandboxes.signing import easypost_signature_headers

__all__ = ["EASYPOST_STATUSES", "EasyPostSandbox"]

_OUNCES_PER_KG = 35.27396

#: Canonical milestone → (status, status_detail) in this carrier's words.
EASYPOST_STATUSES: dict[Milestone, tuple[str, str]] = {
    Milestone.LABEL_CREATED: ("pre_transit", "label_created"),
    Milestone.IN_TRANSIT: ("in_transit", "arrived_at_facility"),
    Milestone.OUT_FOR_DELIVERY: ("out_for_delivery", "out_for_delivery"),
    Milestone.DELIVERED: ("delivered", "arrived_at_destination"),
    Milestone.EXCEPTION: ("failure", "address_not_found"),
    Milestone.RETURNED_TO_SENDER: ("return_to_sender", "return"),
    Milestone.CANCELLED: ("cancelled", "cancelled"),
}

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class Address(msgspec.Struct, kw_only=True):
    street1: NonEmpty
    city: NonEmpty
    zip: NonEmpty
    country: NonEmpty
    name: str = ""
    company: str = ""
    street2: str = ""
    state: str = ""
    phone: str = ""
    email: str = ""


class Parcel(msgspec.Struct, kw_only=True):
    weight: Annotated[float, msgspec.Meta(gt=0)]
    """Ounces."""
    length: float | None = None
    width: float | None = None
    height: float | None = None


class Options(msgspec.Struct, kw_only=True):
    label_format: LabelFormat = LabelFormat.PDF


class ShipmentRequest(msgspec.Struct, kw_only=True):
    to_address: Address
    from_address: Address
    parcel: Parcel
    reference: str | None = None
    options: Options = msgspec.field(default_factory=Options)
    is_return: bool = False
    """Addresses as on the outbound shipment; the carrier swaps them for the return."""


class ShipmentEnvelope(msgspec.Struct):
    shipment: ShipmentRequest


class RateId(msgspec.Struct):
    id: NonEmpty


class BuyRequest(msgspec.Struct, kw_only=True):
    rate: RateId
    insurance: str | None = None


class ReportRequest(msgspec.Struct, kw_only=True):
    start_date: date
    end_date: date
    include_children: bool = False
    send_email: bool = False


#: The shipment invoice report's columns (EasyPost's, plus ``surcharges``: the sandbox
#: itemises each surcharge as ``name=amount`` pairs joined by ``;``).
REPORT_COLUMNS = (
    "shipment_id",
    "label_date",
    "carrier",
    "tracking_code",
    "carrier_invoice_id",
    "status",
    "quoted_currency",
    "initially_paid_amount",
    "quoted_amount",
    "claimed_service",
    "final_invoice_amount",
    "adjustment_amount",
    "surcharges",
)

_REPORT_URL_TTL = timedelta(seconds=30)


class _Shipment(msgspec.Struct, kw_only=True):
    id: str
    request: ShipmentRequest
    rates: list[RateQuote]
    created_at: datetime
    purchase: Purchase | None = None


def _rate_view(quote: RateQuote) -> dict[str, Any]:
    return {
        "id": quote.rate_id,
        "object": "Rate",
        "mode": "test",
        "shipment_id": quote.shipment_id,
        "carrier": quote.service.carrier,
        "service": quote.service.token,
        "rate": quote.amount,
        "currency": quote.currency,
        "delivery_days": quote.service.days,
    }


def _tracker_id(purchase: Purchase) -> str:
    return f"trk_{purchase.purchase_id[:24]}"


def _tracker_view(purchase: Purchase, history: list[TrackingEvent]) -> dict[str, Any]:
    status, detail = EASYPOST_STATUSES[history[-1].milestone]
    carrier = purchase.rate.service.carrier
    return {
        "id": _tracker_id(purchase),
        "object": "Tracker",
        "mode": "test",
        "tracking_code": purchase.tracking_number,
        "status": status,
        "status_detail": detail,
        "carrier": carrier,
        "shipment_id": purchase.shipment_id,
        "est_delivery_date": None,
        "tracking_details": [
            {
                "object": "TrackingDetail",
                "message": event.message,
                "status": EASYPOST_STATUSES[event.milestone][0],
                "status_detail": EASYPOST_STATUSES[event.milestone][1],
                "datetime": event.occurred_at,
                "source": carrier,
                "tracking_location": {"object": "TrackingLocation", "city": event.city},
            }
            for event in history
        ],
        "created_at": history[0].occurred_at,
        "updated_at": history[-1].occurred_at,
    }


class EasyPostSandbox(CarrierSandbox):
    """Carrier A, EasyPost style. Serve :meth:`app`; read ``purchases_per_reference()``."""

    display_name = "Carrier A (EasyPost style)"
    invoice_prefix = "cinv_"
    services = (
        Service("USPS", "GroundAdvantage", "Ground Advantage", 5.20, 0.90, 5),
        Service("USPS", "Priority", "Priority Mail", 7.60, 1.30, 2),
        Service("UPS", "NextDayAir", "Next Day Air", 24.00, 2.50, 1),
    )

    def __init__(self, config: CarrierConfig) -> None:
        super().__init__(config)
        self.shipments: dict[str, _Shipment] = {}
        self.reports: dict[str, tuple[dict[str, Any], bytes]] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v2/shipments", self.create_shipment, name="create_shipment"),
            web.get("/v2/shipments", self.list_shipments, name="list_shipments"),
            web.get("/v2/shipments/{id}", self.get_shipment, name="get_shipment"),
            web.post("/v2/shipments/{id}/buy", self.buy_shipment, name="buy_shipment"),
            web.post("/v2/shipments/{id}/refund", self.refund_shipment, name="refund_shipment"),
            web.get("/v2/trackers", self.list_trackers, name="list_trackers"),
            web.get("/v2/trackers/{id}", self.get_tracker, name="get_tracker"),
            web.post(
                "/v2/reports/shipment_invoice", self.create_report, name="create_invoice_report"
            ),
            web.get(
                "/v2/reports/shipment_invoice/{id}", self.get_report, name="get_invoice_report"
            ),
            web.get("/reports/files/{id}", self.download_report, name="download_invoice_report"),
        ]

    def billed_reference(self, purchase: Purchase) -> str:
        return purchase.shipment_id

    def api_key_of(self, request: web.Request) -> str | None:
        """The user name of HTTP Basic auth (the password is empty)."""
        scheme, _, encoded = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0]

    def error(self, status: int, code: str, message: str) -> web.Response:
        return json_response(
            {"error": {"code": code, "message": message, "errors": []}}, status=status
        )

    def new_tracking_number(self, serial: int) -> str:
        return f"EZ1{serial:09d}"

    def sign_webhook(self, body: bytes) -> dict[str, str]:
        return easypost_signature_headers(self.config.webhook_secret, body)

    def tracking_webhook(
        self, purchase: Purchase, history: list[TrackingEvent]
    ) -> tuple[str, str, bytes]:
        event_id = f"evt_{uuid.uuid4().hex[:24]}"
        description = "tracker.created" if len(history) == 1 else "tracker.updated"
        previous = (
            {"status": EASYPOST_STATUSES[history[-2].milestone][0]} if len(history) > 1 else {}
        )
        now = datetime.now(UTC)
        event = {
            "id": event_id,
            "object": "Event",
            "mode": "test",
            "description": description,
            "previous_attributes": previous,
            "result": _tracker_view(purchase, history),
            "status": "pending",
            "created_at": now,
            "updated_at": now,
        }
        return event_id, description, msgspec.json.encode(event)

    # -- views ------------------------------------------------------------------

    def _shipment_view(self, request: web.Request, shipment: _Shipment) -> dict[str, Any]:
        purchase = shipment.purchase
        history = self.timeline.history.get(purchase.tracking_number, []) if purchase else []
        tracker = _tracker_view(purchase, history) if purchase and history else None
        return {
            "id": shipment.id,
            "object": "Shipment",
            "mode": "test",
            "reference": shipment.request.reference,
            "is_return": shipment.request.is_return,
            "status": tracker["status"] if tracker else "unknown",
            "to_address": shipment.request.to_address,
            "from_address": shipment.request.from_address,
            "parcel": {"object": "Parcel", **msgspec.to_builtins(shipment.request.parcel)},
            "options": shipment.request.options,
            "rates": [_rate_view(rate) for rate in shipment.rates],
            "selected_rate": _rate_view(purchase.rate) if purchase else None,
            "postage_label": self._label_view(request, purchase) if purchase else None,
            "tracking_code": purchase.tracking_number if purchase else None,
            "tracker": tracker,
            "refund_status": ("submitted" if purchase and purchase.voided else None),
            "messages": [],
            "created_at": shipment.created_at,
            "updated_at": purchase.bought_at if purchase else shipment.created_at,
        }

    def _label_view(self, request: web.Request, purchase: Purchase) -> dict[str, Any]:
        return {
            "id": f"pl_{purchase.label_id[4:]}",
            "object": "PostageLabel",
            "label_date": purchase.bought_at,
            "label_file_type": purchase.label_format.content_type,
            "label_url": self.label_url(request, purchase),
        }

    def _find(self, shipment_id: str) -> _Shipment | None:
        return self.shipments.get(shipment_id)

    # -- handlers ---------------------------------------------------------------

    async def create_shipment(self, request: web.Request) -> web.Response:
        try:
            body = (await read_json(request, ShipmentEnvelope)).shipment
        except BadBody as error:
            return self.error(422, "PARAMETER.INVALID", str(error))
        if body.is_return:
            # As EasyPost does: the caller repeats the outbound addresses, the label reverses them.
            body = msgspec.structs.replace(
                body, to_address=body.from_address, from_address=body.to_address
            )
        shipment_id = f"shp_{uuid.uuid4().hex[:24]}"
        rates = self.quote(shipment_id, body.parcel.weight / _OUNCES_PER_KG)
        shipment = _Shipment(
            id=shipment_id, request=body, rates=rates, created_at=datetime.now(UTC)
        )
        self.shipments[shipment_id] = shipment
        return json_response(self._shipment_view(request, shipment), status=201)

    async def list_shipments(self, request: web.Request) -> web.Response:
        """Shipments, newest first, optionally only those with ``reference`` / ``purchased``."""
        found = list(reversed(self.shipments.values()))
        if (reference := request.query.get("reference")) is not None:
            found = [s for s in found if s.request.reference == reference]
        if (purchased := request.query.get("purchased")) is not None:
            found = [s for s in found if (s.purchase is not None) == (purchased == "true")]
        views = [self._shipment_view(request, s) for s in found]
        return json_response({"shipments": views, "has_more": False})

    async def get_shipment(self, request: web.Request) -> web.Response:
        shipment = self._find(request.match_info["id"])
        if shipment is None:
            return self.error(404, "NOT_FOUND", "The requested resource could not be found.")
        return json_response(self._shipment_view(request, shipment))

    async def buy_shipment(self, request: web.Request) -> web.Response:
        if (wait := self.purchase_retry_after(request)) is not None:
            response = self.error(429, "RATE_LIMITED", "Too many label purchases, slow down.")
            response.headers[hdrs.RETRY_AFTER] = str(wait)
            return response
        shipment = self._find(request.match_info["id"])
        if shipment is None:
            return self.error(404, "NOT_FOUND", "The requested resource could not be found.")
        try:
            body = await read_json(request, BuyRequest)
        except BadBody as error:
            return self.error(422, "PARAMETER.INVALID", str(error))
        if shipment.purchase is not None:
            return self.error(
                422, "SHIPMENT.POSTAGE.EXISTS", "This shipment already has a postage label."
            )
        rate = next((r for r in shipment.rates if r.rate_id == body.rate.id), None)
        if rate is None:
            return self.error(
                422, "SHIPMENT.RATE.INVALID", f"rate {body.rate.id} is not a rate of this shipment"
            )
        shipment.purchase = self.buy_label(
            rate,
            shipment.request.reference,
            shipment.request.options.label_format,
            is_return=shipment.request.is_return,
        )
        return json_response(self._shipment_view(request, shipment))

    async def refund_shipment(self, request: web.Request) -> web.Response:
        shipment = self._find(request.match_info["id"])
        if shipment is None:
            return self.error(404, "NOT_FOUND", "The requested resource could not be found.")
        if shipment.purchase is None:
            return self.error(422, "SHIPMENT.REFUND.UNAVAILABLE", "The shipment has no label.")
        try:
            self.void_label(shipment.purchase)
        except VoidRefused as error:
            return self.error(422, "SHIPMENT.REFUND.UNAVAILABLE", str(error))
        return json_response(self._shipment_view(request, shipment))

    async def list_trackers(self, request: web.Request) -> web.Response:
        code = request.query.get("tracking_code")
        trackers = [
            _tracker_view(p, self.timeline.history[p.tracking_number])
            for p in reversed(self.purchases)
            if code in (None, p.tracking_number)
        ]
        return json_response({"trackers": trackers, "has_more": False})

    async def get_tracker(self, request: web.Request) -> web.Response:
        wanted = request.match_info["id"]
        for purchase in self.purchases:
            if _tracker_id(purchase) == wanted:
                history = self.timeline.history[purchase.tracking_number]
                return json_response(_tracker_view(purchase, history))
        return self.error(404, "NOT_FOUND", "The requested resource could not be found.")

    # -- shipment invoice reports (billing) ---------------------------------------

    async def create_report(self, request: web.Request) -> web.Response:
        """A shipment invoice report of the invoices issued from start_date to end_date.

        EasyPost makes reports in the background (status ``new``, then
        ``available`` with a short-lived URL, or ``empty``); the sandbox makes
        them at once, so the first answer is already final.
        """
        try:
            body = await read_json(request, ReportRequest)
        except BadBody as error:
            return self.error(422, "PARAMETER.INVALID", str(error))
        if body.end_date < body.start_date:
            return self.error(422, "PARAMETER.INVALID", "end_date is before start_date")
        self.cut_invoice()
        rows = [
            _report_row(invoice.invoice_id, line)
            for invoice in self.billing.invoices
            if body.start_date <= invoice.issued_at.date() <= body.end_date
            for line in invoice.lines
        ]
        report_id = f"shpinvrep_{uuid.uuid4().hex[:24]}"
        now = datetime.now(UTC)
        report: dict[str, Any] = {
            "id": report_id,
            "object": "ShipmentInvoiceReport",
            "mode": "test",
            "status": "available" if rows else "empty",
            "start_date": body.start_date.isoformat(),
            "end_date": body.end_date.isoformat(),
            "include_children": body.include_children,
            "url": None,
            "url_expires_at": None,
            "created_at": now,
            "updated_at": now,
        }
        self.reports[report_id] = (report, _csv(rows) if rows else b"")
        return json_response(self._report_view(request, report_id), status=201)

    async def get_report(self, request: web.Request) -> web.Response:
        if request.match_info["id"] not in self.reports:
            return self.error(404, "NOT_FOUND", "The requested resource could not be found.")
        return json_response(self._report_view(request, request.match_info["id"]))

    async def download_report(self, request: web.Request) -> web.Response:
        found = self.reports.get(request.match_info["id"].removesuffix(".csv"))
        if found is None or not found[1]:
            return self.error(404, "NOT_FOUND", "no such report file")
        return web.Response(body=found[1], content_type="text/csv")

    def _report_view(self, request: web.Request, report_id: str) -> dict[str, Any]:
        report, content = self.reports[report_id]
        if not content:
            return report
        return {
            **report,
            "url": f"{request.url.origin()}/reports/files/{report_id}.csv",
            "url_expires_at": datetime.now(UTC) + _REPORT_URL_TTL,
        }


def _report_row(invoice_id: str, line: BilledLine) -> dict[str, str]:
    adjustment = ""
    if line.quoted_amount is not None and line.total != "n/a":
        adjustment = f"{Decimal(line.total) - Decimal(line.quoted_amount):.2f}"
    return {
        "shipment_id": line.carrier_reference,
        "label_date": line.label_date.isoformat() if line.label_date else "",
        "carrier": "USPS",
        "tracking_code": line.tracking_number,
        "carrier_invoice_id": invoice_id,
        "status": "processed",
        "quoted_currency": line.currency,
        "initially_paid_amount": line.quoted_amount or "",
        "quoted_amount": line.quoted_amount or "",
        "claimed_service": line.service or "",
        "final_invoice_amount": line.total,
        "adjustment_amount": adjustment,
        "surcharges": ";".join(f"{c.name}={c.amount}" for c in line.surcharges),
    }


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()
