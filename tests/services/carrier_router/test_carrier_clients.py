"""Both carrier clients against their sandboxes: rate, buy, find, void, track, and every failure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.services.carrier_router.harness import A_KEY, A_SECRET, B_KEY, B_SECRET
from waybill_carrier_router.carriers import (
    Carrier,
    CarrierRateLimited,
    CarrierRefused,
    CarrierUnavailable,
    EasyPostClient,
    ShipmentSpec,
    ShippoClient,
)
from waybill_contracts.examples import ADDRESS, CUSTOMER, PARCEL
from waybill_contracts.model import MilestoneCode
from waybill_runtime.local.ports import free_port
from waybill_sandboxes.carriers import CarrierConfig, CarrierSandbox, EasyPostSandbox, ShippoSandbox
from waybill_sandboxes.server import serve

SPEC = ShipmentSpec(
    reference="shp-client-1",
    ship_from=msgspec.structs.replace(ADDRESS, name="Waybill Warehouse", city="Rotterdam"),
    ship_to=ADDRESS,
    recipient=CUSTOMER,
    parcels=(PARCEL,),
)
WALK = [
    MilestoneCode.LABEL_CREATED,
    MilestoneCode.IN_TRANSIT,
    MilestoneCode.OUT_FOR_DELIVERY,
    MilestoneCode.DELIVERED,
]


@dataclass
class Pair:
    sandbox: CarrierSandbox
    url: str
    session: aiohttp.ClientSession
    kind: str

    def client(
        self, *, url: str | None = None, key: str | None = None, timeout_s: float = 5.0
    ) -> Carrier:
        options: dict[str, Any] = {
            "code": self.kind,
            "base_url": url or self.url,
            "api_key": key or (A_KEY if self.kind == "carrier-a" else B_KEY),
            "timeout_s": timeout_s,
            "session": self.session,
        }
        return EasyPostClient(**options) if self.kind == "carrier-a" else ShippoClient(**options)


@pytest.fixture(params=["carrier-a", "carrier-b"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    kind: str = request.param
    if kind == "carrier-a":
        sandbox: CarrierSandbox = EasyPostSandbox(
            CarrierConfig(api_key=A_KEY, webhook_secret=A_SECRET, tracking_delays_s=[0.01], seed=3)
        )
    else:
        sandbox = ShippoSandbox(
            CarrierConfig(api_key=B_KEY, webhook_secret=B_SECRET, tracking_delays_s=[0.01], seed=3)
        )
    async with serve(sandbox.app()) as running, aiohttp.ClientSession() as session:
        yield Pair(sandbox, running.url, session, kind)


async def test_quote_offers_every_service_with_its_price(pair: Pair) -> None:
    offers = await pair.client().quote(SPEC)
    assert len(offers) == len(pair.sandbox.services)
    assert {o.service for o in offers} == {s.token for s in pair.sandbox.services}
    for offer in offers:
        assert offer.carrier == pair.kind
        assert offer.amount > 0 and offer.currency == "USD"
        assert offer.carrier_shipment_id and offer.rate_id
    # Rated for the parcel's weight: 1.2 kg at the carrier's price per kg.
    cheapest = min(offers, key=lambda o: o.amount)
    service = pair.sandbox.services[0]
    assert float(cheapest.amount) == pytest.approx(
        service.base_price + service.price_per_kg * 1.2, abs=0.01
    )


async def test_bought_label_is_found_again_by_its_reference(pair: Pair) -> None:
    client = pair.client()
    offer = min(await client.quote(SPEC), key=lambda o: o.amount)
    bought = await client.buy(offer, SPEC)
    assert (bought.service, bought.cost) == (offer.service, offer.cost)
    [purchase] = pair.sandbox.purchases_for(SPEC.reference)
    assert bought.tracking_number == purchase.tracking_number
    assert bought.label_url.endswith(f"/labels/{purchase.label_id}")
    found = await client.find_purchase(SPEC.reference)
    assert found is not None
    assert found.completed_with(offer) == bought
    assert await client.find_purchase("no-such-reference") is None
    assert pair.sandbox.purchases_per_reference() == {SPEC.reference: 1}


async def test_label_is_voided_and_voiding_again_is_harmless(pair: Pair) -> None:
    client = pair.client()
    pair.sandbox.timeline.delays_s = [3600.0]  # stays at label_created, so it may be voided
    offer = (await client.quote(SPEC))[0]
    bought = await client.buy(offer, SPEC)
    await client.void(bought.carrier_reference)
    await client.void(bought.carrier_reference)
    [purchase] = pair.sandbox.purchases_for(SPEC.reference)
    assert purchase.voided is True


async def test_scanned_label_cannot_be_voided(pair: Pair) -> None:
    client = pair.client()
    bought = await client.buy((await client.quote(SPEC))[0], SPEC)
    await pair.sandbox.settle()
    with pytest.raises(CarrierRefused, match="already scanned"):
        await client.void(bought.carrier_reference)


async def test_tracking_lookup_reports_every_scan_oldest_first(pair: Pair) -> None:
    client = pair.client()
    bought = await client.buy((await client.quote(SPEC))[0], SPEC)
    await pair.sandbox.settle()
    report = await client.track(bought.tracking_number, bought.provider)
    assert report.tracking_number == bought.tracking_number
    assert [event.code for event in report.events] == WALK
    assert all(event.raw_status for event in report.events)


@pytest.mark.parametrize(
    ("fault", "in_doubt"),
    [
        ({"error_rate": 1.0}, True),
        ({"outage": True}, True),
        ({"malformed": True}, True),
    ],
    ids=["503", "outage", "malformed"],
)
async def test_failures_that_may_hide_a_purchase_are_in_doubt(
    pair: Pair, fault: dict[str, Any], in_doubt: bool
) -> None:
    client = pair.client()
    offer = (await client.quote(SPEC))[0]
    operation = "buy_shipment" if pair.kind == "carrier-a" else "create_transaction"
    pair.sandbox.faults.set(operation, **fault)
    with pytest.raises(CarrierUnavailable) as failure:
        await client.buy(offer, SPEC)
    assert failure.value.in_doubt is in_doubt
    assert failure.value.carrier == pair.kind


async def test_timeout_is_in_doubt(pair: Pair) -> None:
    pair.sandbox.faults.set("*", latency_s=2.0)
    with pytest.raises(CarrierUnavailable, match=r"did not answer within 0\.2 s") as failure:
        await pair.client(timeout_s=0.2).quote(SPEC)
    assert failure.value.in_doubt is True


async def test_rate_limit_is_not_in_doubt_and_says_how_long_to_wait(pair: Pair) -> None:
    pair.sandbox.faults.set("*", rate_limit=True, retry_after_s=7)
    with pytest.raises(CarrierRateLimited) as failure:
        await pair.client().quote(SPEC)
    assert (failure.value.in_doubt, failure.value.retry_after_s) == (False, 7.0)


async def test_carrier_that_cannot_be_reached_surely_did_nothing(pair: Pair) -> None:
    client = pair.client(url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(CarrierUnavailable, match="cannot connect") as failure:
        await client.quote(SPEC)
    assert failure.value.in_doubt is False


async def test_wrong_api_key_is_refused(pair: Pair) -> None:
    with pytest.raises(CarrierRefused) as refused:
        await pair.client(key="not-the-key").quote(SPEC)
    assert refused.value.status == 401


async def test_address_the_carrier_rejects_is_refused_with_its_reason(pair: Pair) -> None:
    nowhere = msgspec.structs.replace(
        SPEC, ship_to=msgspec.structs.replace(ADDRESS, postal_code="")
    )
    with pytest.raises(CarrierRefused, match="zip") as refused:
        await pair.client().quote(nowhere)
    assert refused.value.status in (400, 422)
