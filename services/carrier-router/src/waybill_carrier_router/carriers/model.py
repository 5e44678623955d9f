"""What the router and its carrier clients say to each other, whatever the carrier's API.

Every client speaks its carrier's own wire format and answers in these types;
the router above never sees a carrier's JSON. Failures are told apart by what
they mean for a label purchase: refused for good, failed before anything was
bought, or failed with the outcome unknown (``in_doubt``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

import msgspec

from waybill_carrier_router.carriers.invoices import CarrierInvoice
from waybill_contracts.model import Address, Dimensions, Milestone, Money, Parcel, Party
from waybill_runtime.outcomes import PermanentError, TransientError

__all__ = [
    "DEFAULT_DIMENSIONS",
    "BadTrackingPayload",
    "Carrier",
    "CarrierBilling",
    "CarrierRateLimited",
    "CarrierRefused",
    "CarrierUnavailable",
    "LabelPurchase",
    "RateOffer",
    "ShipmentSpec",
    "TrackingReport",
    "TrackingWebhooks",
    "aggregator_address",
    "as_utc",
    "outer_dimensions",
    "total_weight_kg",
]

LabelFormat = Literal["PDF", "ZPL"]

DEFAULT_DIMENSIONS = Dimensions(length_cm=30.0, width_cm=20.0, height_cm=10.0)
"""Used for a parcel the warehouse did not measure; some carriers require dimensions."""


class ShipmentSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One shipment to rate and buy a label for."""

    reference: str
    """Waybill's own reference, stamped on the purchase so it can be found again."""
    ship_from: Address
    ship_to: Address
    recipient: Party
    parcels: tuple[Parcel, ...]
    label_format: LabelFormat = "PDF"
    is_return: bool = False
    """A return label: ``ship_from`` and ``ship_to`` stay as on the outbound shipment
    (warehouse to customer) and the carrier swaps them, as both aggregators do."""


class RateOffer(msgspec.Struct, frozen=True, kw_only=True):
    """One price a carrier quoted for a shipment, which can be bought as it is."""

    carrier: str
    rate_id: str
    carrier_shipment_id: str
    """The carrier's id of the rated shipment (needed by carriers that buy per shipment)."""
    service: str
    """The carrier's service code (``GroundAdvantage``, ``usps_priority``)."""
    provider: str | None = None
    """The operating carrier behind an aggregator (``USPS``, ``DHL Express``)."""
    amount: Decimal
    currency: str
    delivery_days: int | None = None

    @property
    def cost(self) -> Money:
        return Money(amount=self.amount, currency=self.currency)


class LabelPurchase(msgspec.Struct, frozen=True, kw_only=True):
    """A bought label. Lookups may not know the service and cost; the booking's offer does."""

    carrier: str
    carrier_reference: str
    """The carrier's id of the purchase (what a void needs)."""
    tracking_number: str
    label_url: str
    bought_at: datetime
    rate_id: str | None = None
    service: str | None = None
    provider: str | None = None
    cost: Money | None = None
    tracking_url: str | None = None

    def completed_with(self, offer: RateOffer) -> LabelPurchase:
        """This purchase with what it does not say filled in from the offer that was bought."""
        return msgspec.structs.replace(
            self,
            rate_id=self.rate_id or offer.rate_id,
            service=self.service or offer.service,
            provider=self.provider or offer.provider,
            cost=self.cost or offer.cost,
        )


class TrackingReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a carrier says about one tracking number: its scans, oldest first."""

    tracking_number: str
    events: tuple[Milestone, ...]


# --- failures -------------------------------------------------------------------------


class CarrierUnavailable(TransientError):
    """The carrier did not do what was asked, for now (down, slow, overloaded).

    ``in_doubt`` is True when the request may have reached the carrier and been
    carried out (a timeout, a connection lost mid-call, a 5xx): for a purchase,
    only a lookup by reference can tell whether a label was bought.
    """

    def __init__(
        self, carrier: str, message: str, *, in_doubt: bool, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"{carrier}: {message}", retry_after_s=retry_after_s)
        self.carrier = carrier
        self.in_doubt = in_doubt


class CarrierRateLimited(CarrierUnavailable):
    """429: the carrier refused the call for now and said how long to wait."""

    def __init__(self, carrier: str, retry_after_s: float | None) -> None:
        wait = f"; retry after {retry_after_s:g} s" if retry_after_s is not None else ""
        super().__init__(
            carrier, f"rate limited (HTTP 429){wait}", in_doubt=False, retry_after_s=retry_after_s
        )


class CarrierRefused(PermanentError):
    """The carrier answered and said no (bad address, unknown rate, label already scanned)."""

    def __init__(self, carrier: str, status: int, message: str) -> None:
        super().__init__(f"{carrier}: refused (HTTP {status}): {message}")
        self.carrier = carrier
        self.status = status


class BadTrackingPayload(ValueError):
    """A tracking webhook whose body is not what the carrier sends."""


class WebhookIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """What makes a webhook recognisable when it is sent again: its id and when it was made."""

    id: str
    created_at: datetime


# --- what a carrier client offers -------------------------------------------------------


class Carrier(Protocol):
    """One carrier account's API, in Waybill's terms."""

    @property
    def code(self) -> str:
        """The carrier's code in rules, events and webhook paths (``carrier-a``)."""
        ...

    async def quote(self, spec: ShipmentSpec) -> list[RateOffer]:
        """Every price the carrier offers for ``spec`` (the reference is stamped already)."""
        ...

    async def buy(self, offer: RateOffer, spec: ShipmentSpec) -> LabelPurchase:
        """Buy the label of ``offer``; every call is a new purchase (no idempotency key)."""
        ...

    async def find_purchase(self, reference: str) -> LabelPurchase | None:
        """The label bought under Waybill's ``reference``, if any (oldest if several)."""
        ...

    async def void(self, carrier_reference: str) -> None:
        """Void (refund) a bought label; voiding a voided label is harmless."""
        ...

    async def track(self, tracking_number: str, provider: str | None = None) -> TrackingReport:
        """The scans of a label so far (``provider`` for carriers that track per provider)."""
        ...


@runtime_checkable
class CarrierBilling(Protocol):
    """A carrier account's billing API (both carriers' clients have one)."""

    async def invoices(self, since: datetime, until: datetime) -> list[CarrierInvoice]:
        """The freight invoices billed from ``since`` to ``until`` (a carrier whose billing
        API counts whole days may return more; the caller keeps track of what it saw)."""
        ...


class TrackingWebhooks(Protocol):
    """How one carrier signs and shapes its tracking webhooks."""

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise ``SignatureError`` (waybill_runtime.signatures) unless the carrier signed it."""
        ...

    def read(self, body: bytes) -> TrackingReport | None:
        """The tracking report in ``body``; None for event types that are not tracking."""
        ...

    def identity(self, body: bytes) -> WebhookIdentity | None:
        """The signed id and creation time of a webhook whose signature has no timestamp,
        so a replay can be recognised; None when the signature carries its own timestamp."""
        ...


# --- helpers both clients use -------------------------------------------------------------


def total_weight_kg(parcels: Sequence[Parcel]) -> float:
    """The weight of the whole shipment."""
    return sum(parcel.weight_kg for parcel in parcels)


def outer_dimensions(parcels: Sequence[Parcel]) -> Dimensions:
    """The largest parcel's dimensions (the one label covers the consignment)."""
    measured = [parcel.dimensions for parcel in parcels if parcel.dimensions is not None]
    if not measured:
        return DEFAULT_DIMENSIONS
    return max(measured, key=lambda d: d.length_cm * d.width_cm * d.height_cm)


def aggregator_address(address: Address, party: Party | None = None) -> dict[str, str]:
    """An address as both aggregator APIs spell it (``street1``, ``zip``, ``country``...)."""
    fields = {
        "name": address.name,
        "company": address.company,
        "street1": address.street,
        "street2": address.street2,
        "city": address.city,
        "state": address.state,
        "zip": address.postal_code,
        "country": address.country_code,
        "phone": party.phone if party else None,
        "email": party.email if party else None,
    }
    return {key: value for key, value in fields.items() if value}


def as_utc(moment: datetime) -> datetime:
    """A carrier's time in UTC; a time without an offset is taken as UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
