"""Return labels (issue 20): one bought per label id, from the customer to the warehouse.

A return is paid by the merchant and promises no speed, so the carrier that
delivered the order is asked first (the customer knows its drop-off points),
then every other enabled carrier, each at its cheapest return rate
(:func:`~waybill_carrier_router.carriers.returns.book_return`). Calls go
through the fleet (breaker, retries, purchase rate limit) like any booking.
Each purchase is a once-only effect keyed by label id and carrier, stamped
with Waybill's reference for the label id; after a lost answer the carrier
is asked for that reference before anything is bought again. A carrier
that refuses is skipped; a carrier that is unwell makes the command retry
later (buying elsewhere meanwhile could buy two labels).
"""

from __future__ import annotations

from dataclasses import dataclass

from waybill_carrier_router.booking import carrier_reference_for
from waybill_carrier_router.carriers.model import (
    CarrierRefused,
    LabelFormat,
    LabelPurchase,
    RateOffer,
    ShipmentSpec,
    TrackingReport,
)
from waybill_carrier_router.carriers.returns import book_return
from waybill_carrier_router.fleet import CarrierFleet
from waybill_contracts.model import Address, Shipment
from waybill_contracts.return_commands import BookReturnLabel
from waybill_runtime.idempotency import OnceOnly
from waybill_runtime.outcomes import PermanentError

__all__ = ["ReturnLabelDesk", "ReturnNotBooked", "return_label_of"]


@dataclass(frozen=True)
class ReturnNotBooked:
    """Every carrier tried refused the return."""

    reason: str


class _ThroughFleet:
    """One carrier of the fleet, as :func:`book_return` calls a carrier: through the fleet's
    breaker, retries and purchase rate limit, its purchase completed with the offer's cost."""

    def __init__(self, fleet: CarrierFleet, code: str) -> None:
        self._fleet = fleet
        self._code = code

    @property
    def code(self) -> str:
        return self._code

    async def quote(self, spec: ShipmentSpec) -> list[RateOffer]:
        return await self._fleet.quote(spec, self._code)

    async def buy(self, offer: RateOffer, spec: ShipmentSpec) -> LabelPurchase:
        return (await self._fleet.buy(offer, spec)).completed_with(offer)

    async def find_purchase(self, reference: str) -> LabelPurchase | None:
        return await self._fleet.find_purchase(self._code, reference)

    async def void(self, carrier_reference: str) -> None:
        await self._fleet.void(self._code, carrier_reference)

    async def track(self, tracking_number: str, provider: str | None = None) -> TrackingReport:
        return await self._fleet.track(self._code, tracking_number, provider)


def return_label_of(command: BookReturnLabel, purchase: LabelPurchase) -> Shipment:
    """The bought return label as the contracts describe it (shipment id: the label id)."""
    if purchase.service is None or purchase.cost is None:
        raise PermanentError(f"purchase {purchase.carrier_reference} lacks its service or cost")
    return Shipment(
        shipment_id=command.label_id,
        order_ref=command.order_ref,
        carrier=purchase.carrier,
        service=purchase.service,
        tracking_number=purchase.tracking_number,
        tracking_url=purchase.tracking_url,
        label_ref=purchase.label_url,
        carrier_reference=purchase.carrier_reference,
        cost=purchase.cost,
    )


class ReturnLabelDesk:
    """Buys return labels with the fleet, at most one per label id and carrier."""

    def __init__(
        self,
        *,
        fleet: CarrierFleet,
        purchases: OnceOnly[LabelPurchase],
        warehouse: Address,
        label_format: LabelFormat = "PDF",
    ) -> None:
        self._fleet = fleet
        self._purchases = purchases
        self._warehouse = warehouse
        self._label_format = label_format

    def spec_for(self, command: BookReturnLabel) -> ShipmentSpec:
        """The outbound shipment the return reverses (book_return flags it a return)."""
        return ShipmentSpec(
            reference=carrier_reference_for(command.label_id),
            ship_from=self._warehouse,
            ship_to=command.pickup_address,
            recipient=command.customer,
            parcels=command.parcels,
            label_format=self._label_format,
        )

    def candidates(self, command: BookReturnLabel) -> list[str]:
        """The enabled carriers, the one that delivered the order first."""
        enabled = sorted(self._fleet.enabled)
        if command.carrier in enabled:
            enabled.remove(command.carrier)
            enabled.insert(0, command.carrier)
        return enabled

    async def book(self, command: BookReturnLabel) -> LabelPurchase | ReturnNotBooked:
        """Buy the return label (or find the one bought by an earlier delivery)."""
        spec = self.spec_for(command)
        refusals: list[str] = []
        for code in self.candidates(command):
            carrier = _ThroughFleet(self._fleet, code)

            async def buy(carrier: _ThroughFleet = carrier) -> LabelPurchase:
                return await book_return(carrier, spec)

            async def recover(carrier: _ThroughFleet = carrier) -> LabelPurchase | None:
                # The answer was lost: a label sold under our reference is the purchase.
                return await carrier.find_purchase(spec.reference)

            try:
                return await self._purchases.run(
                    f"return-label:{command.label_id}:{code}", buy, recover=recover
                )
            except CarrierRefused as refused:
                refusals.append(f"{code}: {refused}")
        if not refusals:
            return ReturnNotBooked("no carrier is enabled")
        return ReturnNotBooked("; ".join(refusals))
