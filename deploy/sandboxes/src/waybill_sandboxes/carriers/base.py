"""What both carrier sandboxes share: rating, label purchases, rate limits, tracking, admin.

Each carrier subclass adds its own API (paths, auth, JSON shapes, error
format, status vocabulary, webhook signature); the bookkeeping that tests
read back (purchases per reference, call counters) is the same for both.
"""

from __future__ import annotations

import abc
import hmac
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, ClassVar

import msgspec
from aiohttp import web

from waybill_sandboxes.carriers.billing import Billing, billing_admin_routes
from waybill_sandboxes.carriers.labels import LabelFormat, fake_label
from waybill_sandboxes.carriers.tracking import (
    RETURN_ROUTE,
    Milestone,
    TrackingEvent,
    TrackingTimeline,
)
from waybill_sandboxes.delivery import (
    DeliveryPolicy,
    SentWebhook,
    WebhookSender,
    webhook_admin_routes,
)
from waybill_sandboxes.faults import Faults, install_faults
from waybill_sandboxes.ratelimit import CallRateLimit
from waybill_sandboxes.responses import BadBody, json_response, read_json

__all__ = [
    "CarrierConfig",
    "CarrierSandbox",
    "Purchase",
    "RateQuote",
    "Service",
    "VoidRefused",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CarrierConfig(msgspec.Struct, kw_only=True):
    """Settings of one carrier sandbox."""

    api_key: str
    webhook_secret: str
    webhook_url: str | None = None
    """Where tracking webhooks go (None: recorded, not sent)."""
    purchase_rate_per_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    """Label purchases per second per API key before 429 (0: unlimited)."""
    purchase_burst: Annotated[int, msgspec.Meta(ge=1)] = 5
    tracking_delays_s: list[float] = msgspec.field(default_factory=lambda: [0.05, 0.05, 0.05])
    """Waits before in_transit, out_for_delivery and delivered."""
    delivery: DeliveryPolicy = msgspec.field(default_factory=DeliveryPolicy)
    seed: int | None = None
    bill_after_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """Labels bought less than this long ago wait for the next invoice (carriers bill
    days after the purchase, never in the same second)."""


class Service(msgspec.Struct, frozen=True):
    """A service level a carrier sells, and how it is priced."""

    carrier: str
    token: str
    name: str
    base_price: float
    price_per_kg: float
    days: int


class RateQuote(msgspec.Struct, kw_only=True, frozen=True):
    """One price offered for one shipment."""

    rate_id: str
    shipment_id: str
    service: Service
    amount: str
    """Decimal string, as carriers send money."""
    currency: str = "USD"


class Purchase(msgspec.Struct, kw_only=True):
    """One bought label, whatever the carrier's API calls it."""

    purchase_id: str
    shipment_id: str
    rate: RateQuote
    reference: str | None
    tracking_number: str
    label_id: str
    label_format: LabelFormat
    bought_at: datetime
    voided: bool = False
    is_return: bool = False
    """A return label: customer to warehouse, no scan until the customer drops it off."""


class VoidRefused(ValueError):
    """The label has been scanned already, so it can no longer be voided."""


_ADMIN_OR_LABEL = ("/_sandbox", "/labels/", "/reports/files/")
"""Paths served without the API key: admin, and files behind plain (pre-signed) URLs."""


class CarrierSandbox(abc.ABC):
    """Common state and routes of a carrier sandbox; subclasses add the carrier's API."""

    #: Shown in banners and written on the labels.
    display_name: ClassVar[str]
    #: The services this carrier quotes, cheapest first.
    services: ClassVar[tuple[Service, ...]]
    #: How this carrier's invoice ids start.
    invoice_prefix: ClassVar[str]

    def __init__(self, config: CarrierConfig) -> None:
        self.config = config
        self.faults = Faults(seed=config.seed)
        self.purchases: list[Purchase] = []
        self.rates: dict[str, RateQuote] = {}
        self.labels: dict[str, tuple[bytes, LabelFormat]] = {}
        self.purchase_limit = CallRateLimit(config.purchase_rate_per_s, config.purchase_burst)
        self.timeline = TrackingTimeline(
            delays_s=config.tracking_delays_s, on_update=self._tracking_updated
        )
        self.webhooks = WebhookSender(
            sign=self.sign_webhook, url=config.webhook_url, policy=config.delivery, seed=config.seed
        )
        self._numbers = itertools.count(1)
        self.billing = Billing(invoice_prefix=self.invoice_prefix)

    # -- what each carrier defines --------------------------------------------

    @abc.abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """The carrier's own API routes, each named after its operation."""

    @abc.abstractmethod
    def api_key_of(self, request: web.Request) -> str | None:
        """The API key the request authenticates with, read the carrier's way."""

    @abc.abstractmethod
    def error(self, status: int, code: str, message: str) -> web.Response:
        """An error response in the carrier's format."""

    @abc.abstractmethod
    def new_tracking_number(self, serial: int) -> str:
        """The tracking number of the ``serial``-th label."""

    @abc.abstractmethod
    def billed_reference(self, purchase: Purchase) -> str:
        """The id this carrier's invoices name a purchase by (its shipment or transaction)."""

    @abc.abstractmethod
    def sign_webhook(self, body: bytes) -> dict[str, str]:
        """The carrier's signature headers for an outgoing webhook body."""

    @abc.abstractmethod
    def tracking_webhook(
        self, purchase: Purchase, history: list[TrackingEvent]
    ) -> tuple[str, str, bytes]:
        """``(event_id, event_type, body)`` of the webhook announcing the newest scan."""

    # -- app --------------------------------------------------------------------

    def app(self) -> web.Application:
        """The carrier's aiohttp app (one app per sandbox object)."""
        app = web.Application()
        install_faults(app, self.faults)
        app.middlewares.append(self._require_api_key)
        app.add_routes(self.routes())
        app.add_routes(
            [
                web.get("/labels/{label_id}", self._download_label, name="download_label"),
                web.get("/_sandbox/purchases", self._list_purchases),
                web.post("/_sandbox/tracking/{key}/outcome", self._force_outcome),
                web.post("/_sandbox/returns/{key}/drop-off", self._drop_off_return),
                *webhook_admin_routes(self.webhooks),
                *billing_admin_routes(self.billing, self.cut_invoice),
            ]
        )
        app.cleanup_ctx.append(self._running)
        return app

    async def _running(self, app: web.Application) -> AsyncIterator[None]:
        await self.webhooks.start()
        yield
        await self.timeline.close()
        await self.webhooks.close()

    @web.middleware
    async def _require_api_key(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Label files are fetched from plain URLs, like a carrier's file store.
        if request.path.startswith(_ADMIN_OR_LABEL):
            return await handler(request)
        given = self.api_key_of(request) or ""
        if not hmac.compare_digest(given.encode(), self.config.api_key.encode()):
            return self.error(401, "APIKEY.INVALID", "missing or wrong API key")
        return await handler(request)

    # -- rating and buying ----------------------------------------------------

    def quote(self, shipment_id: str, weight_kg: float) -> list[RateQuote]:
        """Price every service for a parcel; the quotes can later be bought by id."""
        quotes = [
            RateQuote(
                rate_id=f"rate_{uuid.uuid4().hex[:24]}",
                shipment_id=shipment_id,
                service=service,
                amount=f"{service.base_price + service.price_per_kg * weight_kg:.2f}",
            )
            for service in self.services
        ]
        self.rates.update((quote.rate_id, quote) for quote in quotes)
        return quotes

    def purchase_retry_after(self, request: web.Request) -> int | None:
        """None if this purchase may go ahead, else the seconds for ``Retry-After``."""
        return self.purchase_limit.retry_after(self.api_key_of(request) or "")

    def buy_label(
        self,
        rate: RateQuote,
        reference: str | None,
        label_format: LabelFormat,
        *,
        is_return: bool = False,
    ) -> Purchase:
        """Buy a label at ``rate``: no idempotency, every call is a new purchase.

        A return label is bought the same way (the addresses are already the
        return's); it gets no scan beyond label_created until :meth:`drop_off_return`.
        """
        tracking_number = self.new_tracking_number(next(self._numbers))
        label_id = f"lbl_{uuid.uuid4().hex[:24]}"
        self.labels[label_id] = (
            fake_label(tracking_number, label_format, self.display_name),
            label_format,
        )
        purchase = Purchase(
            purchase_id=uuid.uuid4().hex,
            shipment_id=rate.shipment_id,
            rate=rate,
            reference=reference,
            tracking_number=tracking_number,
            label_id=label_id,
            label_format=label_format,
            bought_at=datetime.now(UTC),
            is_return=is_return,
        )
        self.purchases.append(purchase)
        if is_return:
            self.timeline.begin(
                tracking_number, reference, route=RETURN_ROUTE, wait_for_drop_off=True
            )
        else:
            self.timeline.begin(tracking_number, reference)
        return purchase

    def void_label(self, purchase: Purchase) -> None:
        """Void a label nobody has scanned yet; voiding twice is harmless."""
        if purchase.voided:
            return
        latest = self.timeline.latest(purchase.tracking_number)
        if latest is not None and latest.milestone is not Milestone.LABEL_CREATED:
            raise VoidRefused(
                f"label {purchase.tracking_number} was already scanned ({latest.milestone})"
            )
        purchase.voided = True
        self.timeline.cancel(purchase.tracking_number)

    def cut_invoice(self) -> None:
        """Bill every label bought and not billed yet, in one new invoice (if any)."""
        due = datetime.now(UTC) - timedelta(seconds=self.config.bill_after_s)
        self.billing.cut([p for p in self.purchases if p.bought_at <= due], self.billed_reference)

    def label_url(self, request: web.Request, purchase: Purchase) -> str:
        return f"{request.url.origin()}/labels/{purchase.label_id}"

    # -- what tests read back ---------------------------------------------------

    def purchases_per_reference(self) -> dict[str, int]:
        """Labels bought per caller reference, voided ones included: 2 means a double buy."""
        return dict(Counter(p.reference for p in self.purchases if p.reference is not None))

    def purchases_for(self, reference: str) -> list[Purchase]:
        """Labels bought under a caller reference, oldest first."""
        return [p for p in self.purchases if p.reference == reference]

    def purchase_by_tracking(self, tracking_number: str) -> Purchase | None:
        return next((p for p in self.purchases if p.tracking_number == tracking_number), None)

    def calls(self) -> dict[str, int]:
        """API calls per operation, faulted or not."""
        return self.faults.calls()

    def sent_webhooks(self) -> list[SentWebhook]:
        return list(self.webhooks.records)

    def force_tracking_outcome(self, key: str, outcome: Milestone | str) -> Milestone:
        """Force an exception or a return for a tracking number or a reference."""
        return self.timeline.force(key, outcome)

    def drop_off_return(self, key: str) -> list[str]:
        """The customer hands in a return parcel (by tracking number or reference).

        Its scans then walk to delivered at the warehouse, with the tracking
        delays and webhooks of any label. Until this is called the parcel was
        never sent, and the return label stays voidable.
        """
        return self.timeline.drop_off(key)

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until every tracking walk ended and every webhook has an outcome."""
        await self.timeline.idle(timeout_s)
        await self.webhooks.drain(timeout_s)

    # -- internals --------------------------------------------------------------

    def _tracking_updated(self, tracking_number: str, event: TrackingEvent) -> None:
        purchase = self.purchase_by_tracking(tracking_number)
        if purchase is None:  # pragma: no cover - the timeline only runs bought labels
            return
        history = self.timeline.history[tracking_number]
        # Encoded now: each webhook is a snapshot, which is what makes reordering visible.
        event_id, event_type, body = self.tracking_webhook(purchase, list(history))
        self.webhooks.enqueue(event_id, event_type, body)

    async def _download_label(self, request: web.Request) -> web.StreamResponse:
        found = self.labels.get(request.match_info["label_id"])
        if found is None:
            return self.error(404, "NOT_FOUND", "no such label")
        content, label_format = found
        return web.Response(body=content, content_type=label_format.content_type)

    async def _list_purchases(self, request: web.Request) -> web.Response:
        return json_response(
            {"purchases": self.purchases, "per_reference": self.purchases_per_reference()}
        )

    async def _force_outcome(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request, _OutcomeRequest)
            outcome = self.force_tracking_outcome(request.match_info["key"], body.outcome)
        except (BadBody, ValueError) as error:
            return json_response({"error": str(error)}, status=400)
        return json_response({"key": request.match_info["key"], "outcome": outcome})

    async def _drop_off_return(self, request: web.Request) -> web.Response:
        try:
            numbers = self.drop_off_return(request.match_info["key"])
        except ValueError as error:
            return json_response({"error": str(error)}, status=409)
        return json_response({"key": request.match_info["key"], "tracking_numbers": numbers})


class _OutcomeRequest(msgspec.Struct, forbid_unknown_fields=True):
    outcome: str
