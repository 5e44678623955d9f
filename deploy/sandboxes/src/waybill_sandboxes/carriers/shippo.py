"""Carrier B: a stand-in in the style of Shippo's API.

Shipments (``POST /shipments/``) come back with rates, each an
``object_id``; a transaction (``POST /transactions/``) buys the label for a
rate and carries the caller's ``metadata``, which ``GET /transactions/``
can filter on. Refunds void. Auth is ``Authorization: ShippoToken <key>``.
Errors are ``{"detail": ...}`` documents. Tracking webhooks (``track_updated``)
are signed ``X-Shippo-Signature: t=<ts>,v1=<hex>``. A return label is a
shipment with ``extra: {"is_return": true}`` and the outbound addresses
unswapped (Shippo swaps them: the customer becomes ``address_from``); its
transaction, refund and tracking are those of any label.

Billing is Shippo's invoices API: ``GET /invoices`` (paginated with ``page`` and
``results``, oldest first) and ``GET /invoice-items?invoiceObjectId=...``: one
``LABEL_PAYMENT`` item per label bought, naming its ``transaction``, and a
``SURCHARGE`` item per surcharge (its ``description`` names it).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

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
from waybill_sandboxes.carriers.billing import BilledLine, Invoice
from waybill_sandboxes.carriers.labels import LabelFormat
from waybill_sandboxes.carriers.tracking import Milestone, TrackingEvent
from waybill_sandboxes.responses import BadBody, json_response, read_json
from waybill_sandboxes.signing import shippo_signature_headers

__all__ = ["SHIPPO_STATUSES", "ShippoSandbox"]

#: Canonical milestone → (status, substatus code, action required) in this carrier's words.
SHIPPO_STATUSES: dict[Milestone, tuple[str, str, bool]] = {
    Milestone.LABEL_CREATED: ("PRE_TRANSIT", "information_received", False),
    Milestone.IN_TRANSIT: ("TRANSIT", "package_arrived", False),
    Milestone.OUT_FOR_DELIVERY: ("TRANSIT", "out_for_delivery", False),
    Milestone.DELIVERED: ("DELIVERED", "delivered", False),
    Milestone.EXCEPTION: ("FAILURE", "package_undeliverable", True),
    Milestone.RETURNED_TO_SENDER: ("RETURNED", "return_to_sender", True),
    Milestone.CANCELLED: ("UNKNOWN", "other", False),
}

_KG_PER_UNIT = {"kg": 1.0, "g": 0.001, "lb": 0.45359237, "oz": 0.028349523125}
_LABEL_FORMATS = {"PDF": LabelFormat.PDF, "PDF_4x6": LabelFormat.PDF, "ZPLII": LabelFormat.ZPL}
_OWNER = "sandbox@example.com"

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
# Shippo sends measures as decimal strings; plain JSON numbers are accepted too.
Number = (
    Annotated[str, msgspec.Meta(pattern=r"^\d+(\.\d+)?$")] | Annotated[float, msgspec.Meta(ge=0)]
)


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
    length: Number
    width: Number
    height: Number
    distance_unit: Literal["cm", "in", "ft", "mm", "m", "yd"]
    weight: Number
    mass_unit: Literal["g", "oz", "lb", "kg"]


class Extra(msgspec.Struct, kw_only=True):
    """Shippo's bag of shipment options; only the return flag matters here."""

    is_return: bool = False


class ShipmentRequest(msgspec.Struct, kw_only=True):
    address_from: Address
    address_to: Address
    parcels: Annotated[list[Parcel], msgspec.Meta(min_length=1)]
    metadata: str = ""
    extra: Extra = msgspec.field(default_factory=Extra)
    async_: bool = msgspec.field(default=False, name="async")


class TransactionRequest(msgspec.Struct, kw_only=True):
    rate: NonEmpty
    label_file_type: Literal["PDF", "PDF_4x6", "ZPLII"] = "PDF"
    metadata: Annotated[str, msgspec.Meta(max_length=100)] = ""
    async_: bool = msgspec.field(default=False, name="async")


class RefundRequest(msgspec.Struct, kw_only=True):
    transaction: NonEmpty
    async_: bool = msgspec.field(default=False, name="async")


class _Shipment(msgspec.Struct, kw_only=True):
    object_id: str
    request: ShipmentRequest
    rates: list[RateQuote]
    created_at: datetime


def _carrier_token(service: Service) -> str:
    return service.carrier.lower().replace(" ", "_")


def _status_view(tracking_number: str, index: int, event: TrackingEvent) -> dict[str, Any]:
    status, code, action_required = SHIPPO_STATUSES[event.milestone]
    return {
        # Stable per scan, so a repeated webhook carries the same id.
        "object_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{tracking_number}/{index}").hex,
        "object_created": event.occurred_at,
        "object_updated": event.occurred_at,
        "status": status,
        "status_details": event.message,
        "status_date": event.occurred_at,
        "substatus": {"code": code, "text": event.message, "action_required": action_required},
        "location": {"city": event.city, "state": None, "zip": None, "country": "NL"},
    }


def _unknown_status() -> dict[str, Any]:
    return {
        "object_id": None,
        "status": "UNKNOWN",
        "status_details": "The carrier has not received any information about this package.",
        "status_date": None,
        "substatus": None,
        "location": None,
    }


class ShippoSandbox(CarrierSandbox):
    """Carrier B, Shippo style. Serve :meth:`app`; read ``purchases_per_reference()``."""

    invoice_prefix = ""
    display_name = "Carrier B (Shippo style)"
    services = (
        Service("USPS", "usps_ground_advantage", "Ground Advantage", 4.90, 0.80, 4),
        Service("USPS", "usps_priority", "Priority Mail", 7.20, 1.20, 2),
        Service("DHL Express", "dhl_express_worldwide", "Express Worldwide", 29.50, 3.00, 1),
    )

    def __init__(self, config: CarrierConfig) -> None:
        super().__init__(config)
        self.shipments: dict[str, _Shipment] = {}
        self.refunds: dict[str, dict[str, Any]] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/shipments/", self.create_shipment, name="create_shipment"),
            web.get("/shipments/{id}", self.get_shipment, name="get_shipment"),
            web.post("/transactions/", self.create_transaction, name="create_transaction"),
            web.get("/transactions/", self.list_transactions, name="list_transactions"),
            web.get("/transactions/{id}", self.get_transaction, name="get_transaction"),
            web.post("/refunds/", self.create_refund, name="create_refund"),
            web.get("/tracks/{carrier}/{tracking_number}", self.get_track, name="get_track"),
            web.get("/invoices", self.list_invoices, name="list_invoices"),
            web.get("/invoices/{id}", self.get_invoice, name="get_invoice"),
            web.get("/invoice-items", self.list_invoice_items, name="list_invoice_items"),
        ]

    def billed_reference(self, purchase: Purchase) -> str:
        return purchase.purchase_id

    def api_key_of(self, request: web.Request) -> str | None:
        scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        return token.strip() if scheme == "ShippoToken" else None

    def error(self, status: int, code: str, message: str) -> web.Response:
        return json_response({"detail": message}, status=status)

    def new_tracking_number(self, serial: int) -> str:
        return f"92055901755477{serial:08d}"

    def sign_webhook(self, body: bytes) -> dict[str, str]:
        return shippo_signature_headers(self.config.webhook_secret, body)

    def tracking_webhook(
        self, purchase: Purchase, history: list[TrackingEvent]
    ) -> tuple[str, str, bytes]:
        track = self._track_view(purchase, purchase.tracking_number, history)
        event = {"event": "track_updated", "test": True, "data": track}
        return track["tracking_status"]["object_id"], "track_updated", msgspec.json.encode(event)

    # -- views ------------------------------------------------------------------

    def _rate_view(self, quote: RateQuote, cheapest: str, fastest: int) -> dict[str, Any]:
        attributes = [
            name
            for name, holds in (
                ("CHEAPEST", quote.amount == cheapest),
                ("FASTEST", quote.service.days == fastest),
            )
            if holds
        ]
        return {
            "object_id": quote.rate_id,
            "object_owner": _OWNER,
            "shipment": quote.shipment_id,
            "attributes": attributes,
            "amount": quote.amount,
            "currency": quote.currency,
            "amount_local": quote.amount,
            "currency_local": quote.currency,
            "provider": quote.service.carrier,
            "servicelevel": {"name": quote.service.name, "token": quote.service.token, "terms": ""},
            "estimated_days": quote.service.days,
            "carrier_account": f"ca_{_carrier_token(quote.service)}",
            "test": True,
        }

    def _shipment_view(self, shipment: _Shipment) -> dict[str, Any]:
        cheapest = min(shipment.rates, key=lambda r: float(r.amount)).amount
        fastest = min(r.service.days for r in shipment.rates)
        return {
            "object_id": shipment.object_id,
            "object_created": shipment.created_at,
            "object_owner": _OWNER,
            "status": "SUCCESS",
            "address_from": shipment.request.address_from,
            "address_to": shipment.request.address_to,
            "parcels": shipment.request.parcels,
            "rates": [self._rate_view(r, cheapest, fastest) for r in shipment.rates],
            "metadata": shipment.request.metadata,
            "extra": shipment.request.extra,
            "messages": [],
            "test": True,
        }

    def _transaction_view(self, request: web.Request, purchase: Purchase) -> dict[str, Any]:
        latest = self.timeline.latest(purchase.tracking_number)
        carrier = _carrier_token(purchase.rate.service)
        return {
            "object_id": purchase.purchase_id,
            "object_state": "VALID",
            "status": "SUCCESS",
            "object_created": purchase.bought_at,
            "object_updated": purchase.bought_at,
            "object_owner": _OWNER,
            "test": True,
            "rate": purchase.rate.rate_id,
            "tracking_number": purchase.tracking_number,
            "tracking_status": SHIPPO_STATUSES[latest.milestone][0] if latest else "UNKNOWN",
            "tracking_url_provider": (
                f"{request.url.origin()}/tracks/{carrier}/{purchase.tracking_number}"
            ),
            "eta": None,
            "label_url": self.label_url(request, purchase),
            "commercial_invoice_url": None,
            "metadata": purchase.reference or "",
            "messages": [],
        }

    def _track_view(
        self, purchase: Purchase | None, tracking_number: str, history: list[TrackingEvent]
    ) -> dict[str, Any]:
        statuses = [_status_view(tracking_number, i, e) for i, e in enumerate(history)]
        service = purchase.rate.service if purchase else None
        return {
            "carrier": _carrier_token(service) if service else None,
            "tracking_number": tracking_number,
            "address_from": None,
            "address_to": None,
            "eta": None,
            "servicelevel": {"token": service.token, "name": service.name} if service else None,
            "metadata": purchase.reference if purchase else None,
            "tracking_status": statuses[-1] if statuses else _unknown_status(),
            "tracking_history": statuses,
            "transaction": purchase.purchase_id if purchase else None,
            "test": True,
        }

    # -- handlers ---------------------------------------------------------------

    async def create_shipment(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request, ShipmentRequest)
        except BadBody as error:
            return self.error(400, "invalid", str(error))
        if body.extra.is_return:
            # As Shippo does: the caller sends the outbound addresses, the return label swaps them.
            body = msgspec.structs.replace(
                body, address_from=body.address_to, address_to=body.address_from
            )
        shipment_id = uuid.uuid4().hex
        weight_kg = sum(float(p.weight) * _KG_PER_UNIT[p.mass_unit] for p in body.parcels)
        shipment = _Shipment(
            object_id=shipment_id,
            request=body,
            rates=self.quote(shipment_id, weight_kg),
            created_at=datetime.now(UTC),
        )
        self.shipments[shipment_id] = shipment
        return json_response(self._shipment_view(shipment), status=201)

    async def get_shipment(self, request: web.Request) -> web.Response:
        shipment = self.shipments.get(request.match_info["id"])
        if shipment is None:
            return self.error(404, "not_found", "Not found.")
        return json_response(self._shipment_view(shipment))

    async def create_transaction(self, request: web.Request) -> web.Response:
        """Buy a label for a rate; ``metadata`` is the caller's reference."""
        if (wait := self.purchase_retry_after(request)) is not None:
            response = self.error(
                429, "throttled", f"Request was throttled. Expected available in {wait} seconds."
            )
            response.headers[hdrs.RETRY_AFTER] = str(wait)
            return response
        try:
            body = await read_json(request, TransactionRequest)
        except BadBody as error:
            return self.error(400, "invalid", str(error))
        rate = self.rates.get(body.rate)
        if rate is None:
            return self.error(400, "invalid", f"rate {body.rate!r} does not exist")
        shipment = self.shipments.get(rate.shipment_id)
        purchase = self.buy_label(
            rate,
            body.metadata or None,
            _LABEL_FORMATS[body.label_file_type],
            is_return=shipment is not None and shipment.request.extra.is_return,
        )
        return json_response(self._transaction_view(request, purchase), status=201)

    async def list_transactions(self, request: web.Request) -> web.Response:
        """Transactions, newest first; ``metadata`` narrows to one caller reference."""
        found = list(reversed(self.purchases))
        if (metadata := request.query.get("metadata")) is not None:
            found = [p for p in found if (p.reference or "") == metadata]
        results = [self._transaction_view(request, p) for p in found]
        return json_response(
            {"count": len(results), "next": None, "previous": None, "results": results}
        )

    async def get_transaction(self, request: web.Request) -> web.Response:
        wanted = request.match_info["id"]
        purchase = next((p for p in self.purchases if p.purchase_id == wanted), None)
        if purchase is None:
            return self.error(404, "not_found", "Not found.")
        return json_response(self._transaction_view(request, purchase))

    async def create_refund(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request, RefundRequest)
        except BadBody as error:
            return self.error(400, "invalid", str(error))
        purchase = next((p for p in self.purchases if p.purchase_id == body.transaction), None)
        if purchase is None:
            return self.error(400, "invalid", f"transaction {body.transaction!r} does not exist")
        if body.transaction in self.refunds:  # refunding twice returns the first refund
            return json_response(self.refunds[body.transaction], status=201)
        try:
            self.void_label(purchase)
        except VoidRefused as error:
            return self.error(400, "invalid", str(error))
        now = datetime.now(UTC)
        refund = {
            "object_id": uuid.uuid4().hex,
            "object_state": "VALID",
            "status": "SUCCESS",
            "object_created": now,
            "object_updated": now,
            "object_owner": _OWNER,
            "transaction": purchase.purchase_id,
            "test": True,
        }
        self.refunds[body.transaction] = refund
        return json_response(refund, status=201)

    async def get_track(self, request: web.Request) -> web.Response:
        """Tracking by carrier token and number; unknown numbers are UNKNOWN, not 404."""
        tracking_number = request.match_info["tracking_number"]
        purchase = self.purchase_by_tracking(tracking_number)
        if purchase and _carrier_token(purchase.rate.service) != request.match_info["carrier"]:
            purchase = None
        history = self.timeline.history.get(tracking_number, []) if purchase else []
        return json_response(self._track_view(purchase, tracking_number, history))

    # -- invoices (billing) -------------------------------------------------------

    async def list_invoices(self, request: web.Request) -> web.Response:
        """Posted invoices, oldest first, a page at a time; asking cuts a new one if due."""
        self.cut_invoice()
        return _page(request, [_invoice_view(i) for i in self.billing.invoices])

    async def get_invoice(self, request: web.Request) -> web.Response:
        wanted = request.match_info["id"]
        invoice = next((i for i in self.billing.invoices if i.invoice_id == wanted), None)
        if invoice is None:
            return self.error(404, "not_found", "Not found.")
        return json_response(_invoice_view(invoice))

    async def list_invoice_items(self, request: web.Request) -> web.Response:
        wanted = request.query.get("invoiceObjectId")
        items = [
            item
            for invoice in self.billing.invoices
            if wanted in (None, invoice.invoice_id)
            for line in invoice.lines
            for item in _items_of(invoice, line)
        ]
        return _page(request, items)


def _money(amount: str, currency: str) -> dict[str, str]:
    return {"amount": amount, "currency": currency}


def _invoice_view(invoice: Invoice) -> dict[str, Any]:
    return {
        "object_id": invoice.invoice_id,
        "object_created": invoice.issued_at,
        "object_updated": invoice.issued_at,
        "shippo_account": _OWNER,
        "invoice_number": invoice.number,
        "status": "POSTED",
        "invoice_closed": invoice.issued_at,
        "invoice_paid_date": None,
        "total_invoiced": _money(invoice.total, invoice.currency),
        "total_charged": _money(invoice.total, invoice.currency),
    }


def _items_of(invoice: Invoice, line: BilledLine) -> list[dict[str, Any]]:
    def item(kind: str, description: str, amount: str) -> dict[str, Any]:
        return {
            "object_id": uuid.uuid4().hex,
            "object_created": invoice.issued_at,
            "object_updated": invoice.issued_at,
            "shippo_account": _OWNER,
            "type": kind,
            "description": description,
            "amount": amount,
            "currency": line.currency,
            "invoice": invoice.invoice_id,
            "transaction": line.carrier_reference,
        }

    return [
        item("LABEL_PAYMENT", f"label {line.tracking_number}", line.base_amount),
        *(item("SURCHARGE", charge.name, charge.amount) for charge in line.surcharges),
    ]


_MAX_RESULTS = 100


def _page(request: web.Request, everything: list[dict[str, Any]]) -> web.Response:
    """One page of ``everything`` the Shippo way (``page`` from 1, ``results`` up to 100)."""
    try:
        page = int(request.query.get("page", "1"))
        size = int(request.query.get("results", "25"))
    except ValueError:
        return json_response({"detail": "page and results must be whole numbers"}, status=400)
    if page < 1 or not 1 <= size <= _MAX_RESULTS:
        return json_response(
            {"detail": f"page starts at 1 and results is 1 to {_MAX_RESULTS}"}, status=400
        )
    start = (page - 1) * size
    shown = everything[start : start + size]

    def link(number: int) -> str:
        return str(request.url.with_query({**request.query, "page": str(number)}))

    return json_response(
        {
            "count": len(everything),
            "next": link(page + 1) if start + size < len(everything) else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": shown,
        }
    )
