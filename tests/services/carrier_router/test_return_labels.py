"""Return labels through both carrier clients against their sandboxes: book, find, void, track."""

from __future__ import annotations

import msgspec
import pytest

from tests.services.carrier_router import test_carrier_clients as clients
from waybill_carrier_router.carriers import (
    CarrierRefused,
    LabelPurchase,
    RateOffer,
    ShipmentSpec,
    TrackingReport,
    book_return,
)
from waybill_contracts.model import MilestoneCode

Pair = clients.Pair
# Both carriers, each against its own sandbox: the fixture of the clients' own tests.
pair = clients.pair

RETURN_SPEC = msgspec.structs.replace(clients.SPEC, reference="rma-client-1")


def addresses_on_the_label(pair: Pair, shipment_id: str) -> tuple[str, str]:
    """(from city, to city) of the shipment as the carrier sandbox stored it."""
    shipment = pair.sandbox.shipments[shipment_id]  # type: ignore[attr-defined]
    if pair.kind == "carrier-a":
        return shipment.request.from_address.city, shipment.request.to_address.city
    return shipment.request.address_from.city, shipment.request.address_to.city


async def test_return_label_runs_from_the_customer_to_the_warehouse_at_the_cheapest_rate(
    pair: Pair,
) -> None:
    client = pair.client()
    cheapest = min(await client.quote(RETURN_SPEC), key=lambda offer: offer.amount)
    bought = await book_return(client, RETURN_SPEC)
    assert bought.service == cheapest.service
    [purchase] = pair.sandbox.purchases_for(RETURN_SPEC.reference)
    assert purchase.is_return
    assert bought.tracking_number == purchase.tracking_number
    customer, warehouse = RETURN_SPEC.ship_to.city, RETURN_SPEC.ship_from.city
    assert addresses_on_the_label(pair, purchase.shipment_id) == (customer, warehouse)
    found = await client.find_purchase(RETURN_SPEC.reference)
    assert found is not None
    assert found.tracking_number == bought.tracking_number


async def test_outbound_labels_are_not_returns(pair: Pair) -> None:
    client = pair.client()
    offer = (await client.quote(clients.SPEC))[0]
    await client.buy(offer, clients.SPEC)
    [purchase] = pair.sandbox.purchases_for(clients.SPEC.reference)
    assert not purchase.is_return
    customer, warehouse = clients.SPEC.ship_to.city, clients.SPEC.ship_from.city
    assert addresses_on_the_label(pair, purchase.shipment_id) == (warehouse, customer)


async def test_unsent_return_label_is_voided_but_a_picked_up_one_is_refused(pair: Pair) -> None:
    client = pair.client()
    unsent = await book_return(client, RETURN_SPEC)
    await client.void(unsent.carrier_reference)
    await client.void(unsent.carrier_reference)  # voiding again is harmless
    assert pair.sandbox.purchases_for(RETURN_SPEC.reference)[0].voided

    sent_spec = msgspec.structs.replace(RETURN_SPEC, reference="rma-client-2")
    sent = await book_return(client, sent_spec)
    pair.sandbox.drop_off_return(sent.tracking_number)
    await pair.sandbox.settle()
    with pytest.raises(CarrierRefused, match="already scanned"):
        await client.void(sent.carrier_reference)
    assert not pair.sandbox.purchases_for("rma-client-2")[0].voided


async def test_return_is_tracked_to_delivered_only_after_drop_off(pair: Pair) -> None:
    client = pair.client()
    bought = await book_return(client, RETURN_SPEC)
    await pair.sandbox.settle()
    waiting = await client.track(bought.tracking_number, bought.provider)
    assert [event.code for event in waiting.events] == [MilestoneCode.LABEL_CREATED]

    pair.sandbox.drop_off_return(RETURN_SPEC.reference)
    await pair.sandbox.settle()
    report = await client.track(bought.tracking_number, bought.provider)
    assert [event.code for event in report.events] == [
        MilestoneCode.LABEL_CREATED,
        MilestoneCode.IN_TRANSIT,
        MilestoneCode.IN_TRANSIT,
        MilestoneCode.DELIVERED,
    ]


class _CarrierWithoutReturns:
    """A carrier that quotes nothing, as one that does not carry returns to that address."""

    code = "carrier-z"

    async def quote(self, spec: ShipmentSpec) -> list[RateOffer]:
        return []

    async def buy(self, offer: RateOffer, spec: ShipmentSpec) -> LabelPurchase:
        raise AssertionError("nothing to buy")

    async def find_purchase(self, reference: str) -> LabelPurchase | None:
        return None

    async def void(self, carrier_reference: str) -> None:
        return None

    async def track(self, tracking_number: str, provider: str | None = None) -> TrackingReport:
        return TrackingReport(tracking_number=tracking_number, events=())


async def test_return_without_any_rate_is_refused_for_good() -> None:
    with pytest.raises(CarrierRefused, match="no rate offered for the return"):
        await book_return(_CarrierWithoutReturns(), RETURN_SPEC)
