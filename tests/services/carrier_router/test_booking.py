"""BookShipment against both carrier sandboxes: price, rules, fallback, exactly one label."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from aiohttp import web
from nats.aio.client import Client as NatsClient

from tests.services.carrier_router.harness import booking, carriers_and_router
from waybill_carrier_router.rules import DEFAULT_RULES, DeliveryMethodRule
from waybill_contracts.commands import BookShipment
from waybill_contracts.events import ShipmentBooked, ShipmentBookingFailed
from waybill_contracts.model import DeliveryMethod, ServiceLevel
from waybill_runtime.testing.waiting import eventually

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def test_booking_buys_the_cheapest_fitting_label(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        await rig.send(booking("shp-cheap"))
        [booked] = await rig.wait_for(ShipmentBooked, "shp-cheap")
        # Standard service: carrier B's ground service is the cheaper of the two.
        shipment = booked.shipment
        assert (shipment.carrier, shipment.service) == ("carrier-b", "usps_ground_advantage")
        [purchase] = rig.carrier_b.purchases_for("shp-cheap")
        assert shipment.tracking_number == purchase.tracking_number
        assert shipment.carrier_reference == purchase.purchase_id
        assert str(shipment.cost.amount) == purchase.rate.amount
        assert shipment.label_ref.endswith(f"/labels/{purchase.label_id}")
        assert shipment.order_ref == "WH/OUT/shp-cheap"
        assert rig.purchases("shp-cheap") == {"carrier-b": 1}


async def test_next_day_booking_goes_to_the_carrier_cheaper_for_next_day(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        await rig.send(booking("shp-fast", level=ServiceLevel.NEXT_DAY))
        [booked] = await rig.wait_for(ShipmentBooked, "shp-fast")
        assert (booked.shipment.carrier, booked.shipment.service) == ("carrier-a", "NextDayAir")
        [purchase] = rig.carrier_a.purchases_for("shp-fast")
        assert booked.shipment.carrier_reference == purchase.shipment_id
        assert rig.purchases("shp-fast") == {"carrier-a": 1}


async def test_rules_from_settings_keep_a_carrier_out_of_a_country(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    rules = msgspec.json.encode(
        {
            "carriers": [
                {"carrier": "carrier-a", "services": {"standard": ["GroundAdvantage"]}},
                {
                    "carrier": "carrier-b",
                    "excluded_countries": ["US"],
                    "services": {"standard": ["usps_ground_advantage"]},
                },
            ]
        }
    ).decode()
    async with carriers_and_router(nc, nats_url, nats_prefix, carrier_rules=rules) as rig:
        await rig.send(booking("shp-us", country="US"))
        await rig.send(booking("shp-nl", country="NL"))
        [to_us] = await rig.wait_for(ShipmentBooked, "shp-us")
        [to_nl] = await rig.wait_for(ShipmentBooked, "shp-nl")
        assert to_us.shipment.carrier == "carrier-a"  # B is cheaper but may not go to the US
        assert to_nl.shipment.carrier == "carrier-b"


async def test_the_delivery_method_chosen_in_odoo_decides_service_level_and_carrier(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    rules = msgspec.structs.replace(
        DEFAULT_RULES,
        delivery_methods={
            "Carrier A": DeliveryMethodRule(carriers=("carrier-a",)),
            "Next Day Delivery": DeliveryMethodRule(service_level=ServiceLevel.NEXT_DAY),
        },
    )

    def sold_as(shipment_id: str, method: str) -> BookShipment:
        # Every booking asks for standard: Odoo's orders carry no service level.
        return msgspec.structs.replace(
            booking(shipment_id), delivery_method=DeliveryMethod(name=method, odoo_carrier_id=7)
        )

    carrier_rules = msgspec.json.encode(rules).decode()
    async with carriers_and_router(nc, nats_url, nats_prefix, carrier_rules=carrier_rules) as rig:
        for shipment_id, method in (
            ("shp-dm-a", "Carrier A"),
            ("shp-dm-fast", "next day delivery"),
            ("shp-dm-other", "Pickup in store"),
        ):
            await rig.send(sold_as(shipment_id, method))
        [only_a] = await rig.wait_for(ShipmentBooked, "shp-dm-a")
        [fast] = await rig.wait_for(ShipmentBooked, "shp-dm-fast")
        [other] = await rig.wait_for(ShipmentBooked, "shp-dm-other")
    # Carrier B is cheaper for standard, but the customer bought Carrier A's method.
    assert (only_a.shipment.carrier, only_a.shipment.service) == ("carrier-a", "GroundAdvantage")
    assert (fast.shipment.carrier, fast.shipment.service) == ("carrier-a", "NextDayAir")
    assert (other.shipment.carrier, other.shipment.service) == (
        "carrier-b",
        "usps_ground_advantage",
    )


@pytest.mark.parametrize("fault", [{"outage": True}, {"error_rate": 1.0}], ids=["outage", "503"])
async def test_carrier_a_down_books_with_carrier_b(
    nc: NatsClient, nats_url: str, nats_prefix: str, fault: dict[str, Any]
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        rig.carrier_a.faults.set("*", **fault)
        await rig.send(booking("shp-a-down", level=ServiceLevel.NEXT_DAY))
        [booked] = await rig.wait_for(ShipmentBooked, "shp-a-down")
        assert (booked.shipment.carrier, booked.shipment.service) == (
            "carrier-b",
            "dhl_express_worldwide",
        )
        assert rig.carrier_a.calls().get("create_shipment", 0) >= 1  # A was asked first
        assert rig.purchases("shp-a-down") == {"carrier-b": 1}


async def test_open_circuit_skips_the_carrier_without_calling_it(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(
        nc, nats_url, nats_prefix, carrier_circuit_failures=1, carrier_retry_attempts=1
    ) as rig:
        rig.carrier_a.faults.set("*", error_rate=1.0)
        await rig.send(booking("shp-1", level=ServiceLevel.NEXT_DAY))
        await rig.wait_for(ShipmentBooked, "shp-1")
        calls_to_a = rig.carrier_a.calls()
        await rig.send(booking("shp-2", level=ServiceLevel.NEXT_DAY))
        [second] = await rig.wait_for(ShipmentBooked, "shp-2")
        assert second.shipment.carrier == "carrier-b"
        assert rig.carrier_a.calls() == calls_to_a  # the open circuit kept A out of it


async def test_redelivered_booking_buys_one_label(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        command = booking("shp-twice")
        await rig.send(command)
        await rig.wait_for(ShipmentBooked, "shp-twice")
        await rig.send(command)  # the orchestrator sends it again, as a new message
        await rig.send(command)
        await rig.commands_settled()
        assert rig.purchases("shp-twice") == {"carrier-b": 1}
        assert len(await rig.events(ShipmentBooked, "shp-twice")) == 1  # same fact, one event


async def test_simultaneous_duplicate_bookings_buy_one_label(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        command = booking("shp-race")
        await asyncio.gather(*(rig.send(command) for _ in range(4)))
        await rig.wait_for(ShipmentBooked, "shp-race")
        await rig.commands_settled()
        assert rig.purchases("shp-race") == {"carrier-b": 1}


def _answer_slowly_after_buying(delay_s: float) -> object:
    """The carrier buys the label, then its answer takes longer than the router waits."""

    @web.middleware
    async def slow(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.match_info.route.name == "create_transaction":
            await asyncio.sleep(delay_s)
        return response

    return slow


def _currency_in_words() -> object:
    """The carrier names every currency in words: nothing an ISO 4217 code can hold."""

    def rename(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "dollars" if k == "currency" else rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rename(item) for item in value]
        return value

    @web.middleware
    async def in_words(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if isinstance(response, web.Response) and response.content_type == "application/json":
            body = response.body
            if isinstance(body, bytes | bytearray):
                response.body = msgspec.json.encode(rename(msgspec.json.decode(body)))
        return response

    return in_words


async def test_a_carrier_answer_that_breaks_the_contract_is_dead_lettered_naming_the_field(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(
        nc, nats_url, nats_prefix, innermost={"carrier-b": _currency_in_words()}
    ) as rig:
        await rig.send(booking("shp-odd-money"))
        [letter] = await rig.wait_for_dead_letters()
        await rig.commands_settled()
        assert await rig.events(ShipmentBooked) == []  # nothing invalid reached the bus
    assert letter.reason == "permanent error"
    assert letter.attempts == 1  # refused for good: retrying cannot fix the carrier's data
    assert "shipment.cost.currency" in letter.error_message
    assert rig.purchases("shp-odd-money") == {"carrier-b": 1}


async def test_purchase_whose_answer_is_lost_is_found_not_bought_again(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(
        nc,
        nats_url,
        nats_prefix,
        carrier_timeout_s=0.5,
        innermost={"carrier-b": _answer_slowly_after_buying(5.0)},
    ) as rig:
        await rig.send(booking("shp-lost-answer"))
        [booked] = await rig.wait_for(ShipmentBooked, "shp-lost-answer")
        [purchase] = rig.carrier_b.purchases_for("shp-lost-answer")
        assert booked.shipment.tracking_number == purchase.tracking_number
        assert booked.shipment.service == "usps_ground_advantage"  # filled in from the offer
        assert rig.carrier_b.calls()["create_transaction"] == 1
        assert rig.carrier_b.calls()["list_transactions"] >= 1  # recovered by the lookup
        assert rig.purchases("shp-lost-answer") == {"carrier-b": 1}


async def test_purchase_that_timed_out_unbought_moves_on_to_the_next_carrier(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix, carrier_timeout_s=0.5) as rig:
        # The carrier hangs before buying; the router gives up, finds no label, moves on.
        rig.carrier_b.faults.set("create_transaction", latency_s=5.0)
        await rig.send(booking("shp-slow-b"))
        [booked] = await rig.wait_for(ShipmentBooked, "shp-slow-b")
        assert booked.shipment.carrier == "carrier-a"
        assert rig.carrier_b.calls()["list_transactions"] >= 1
        assert rig.purchases("shp-slow-b") == {"carrier-a": 1}


async def test_purchase_that_cannot_be_checked_is_retried_at_the_same_carrier_only(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(
        nc, nats_url, nats_prefix, carrier_timeout_s=0.5, carrier_retry_attempts=1
    ) as rig:
        # The purchase's answer is lost, and the lookup fails too: buying at A now could
        # buy a second label, so the router waits until B can say what happened.
        rig.carrier_b.faults.set("create_transaction", latency_s=5.0, times=1)
        rig.carrier_b.faults.set("list_transactions", error_rate=1.0, times=1)
        await rig.send(booking("shp-doubt"))
        [booked] = await rig.wait_for(ShipmentBooked, "shp-doubt")
        assert booked.shipment.carrier == "carrier-b"
        assert rig.purchases("shp-doubt") == {"carrier-b": 1}
        assert rig.carrier_a.calls().get("buy_shipment", 0) == 0


async def test_label_bought_in_an_earlier_attempt_is_found_before_another_carrier_is_tried(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(
        nc,
        nats_url,
        nats_prefix,
        carrier_timeout_s=1.0,
        carrier_retry_attempts=1,
        innermost={"carrier-b": _answer_slowly_after_buying(5.0)},
    ) as rig:
        # Attempt 1: B sells the label but the answer is lost and the lookup fails.
        rig.carrier_b.faults.set("list_transactions", error_rate=1.0, times=1)
        await rig.send(booking("shp-earlier"))

        async def bought() -> int:
            return len(rig.carrier_b.purchases_for("shp-earlier"))

        await eventually(bought, what="the label bought at B")
        # Attempt 2 finds B unable to quote: A would be next, but B's label exists.
        rig.carrier_b.faults.set("create_shipment", error_rate=1.0)
        [booked] = await rig.wait_for(ShipmentBooked, "shp-earlier")
        assert booked.shipment.carrier == "carrier-b"
        assert booked.shipment.cost.amount > 0  # price and service come from the ledger
        assert rig.purchases("shp-earlier") == {"carrier-b": 1}


async def test_rate_limited_purchase_waits_for_retry_after(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        rig.carrier_b.faults.set("create_transaction", rate_limit=True, retry_after_s=1, times=1)
        await rig.send(booking("shp-429"))
        [booked] = await rig.wait_for(ShipmentBooked, "shp-429")
        assert booked.shipment.carrier == "carrier-b"
        first, second = rig.clock_b.times["create_transaction"]
        assert second - first >= 1.0  # a lower bound only: waiting longer is allowed
        assert rig.purchases("shp-429") == {"carrier-b": 1}


async def test_retry_after_longer_than_allowed_moves_on_to_the_next_carrier(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix, carrier_retry_max_wait_s=1.0) as rig:
        rig.carrier_b.faults.set("create_transaction", rate_limit=True, retry_after_s=60)
        await rig.send(booking("shp-429-long"))
        [booked] = await rig.wait_for(ShipmentBooked, "shp-429-long")
        assert booked.shipment.carrier == "carrier-a"
        assert rig.carrier_b.calls()["create_transaction"] == 1
        assert rig.purchases("shp-429-long") == {"carrier-a": 1}


async def test_purchases_stay_under_the_carrier_accounts_rate(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(
        nc,
        nats_url,
        nats_prefix,
        carrier_b={"purchase_rate_per_s": 4.0, "purchase_burst": 1},
        carrier_purchase_rate_per_s=2.0,
        carrier_purchase_burst=1,
        carrier_retry_attempts=1,
    ) as rig:
        ids = [f"shp-rate-{n}" for n in range(3)]
        await asyncio.gather(*(rig.send(booking(shipment_id)) for shipment_id in ids))
        booked = await rig.wait_for(ShipmentBooked, until=lambda found: len(found) == 3)
        # Had the router bought faster, carrier B would have answered 429 and the
        # label would have gone to carrier A (retries are off here).
        assert {event.shipment.carrier for event in booked} == {"carrier-b"}
        assert rig.carrier_b.calls()["create_transaction"] == 3


async def test_both_carriers_down_is_retried_then_reported_as_retryable_failure(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(
        nc, nats_url, nats_prefix, booking_max_attempts=3, carrier_retry_attempts=1
    ) as rig:
        rig.carrier_a.faults.set("*", outage=True)
        rig.carrier_b.faults.set("*", error_rate=1.0)
        await rig.send(booking("shp-nobody"))
        [failed] = await rig.wait_for(ShipmentBookingFailed, "shp-nobody")
        assert failed.retryable is True
        assert failed.carriers_tried == ("carrier-a", "carrier-b")
        assert "carrier-a" in failed.reason and "carrier-b" in failed.reason
        assert failed.order_ref == "WH/OUT/shp-nobody"
        # One quote per carrier per delivery: three deliveries before giving up.
        assert rig.carrier_a.calls()["create_shipment"] == 3
        assert rig.carrier_b.calls()["create_shipment"] == 3
        assert await rig.events(ShipmentBooked) == []
        assert await rig.dead_letters() == []


@pytest.mark.parametrize(
    ("command", "why"),
    [
        (booking("shp-heavy", weight_kg=45.0), "takes up to 30 kg"),
        (booking("shp-same-day", level=ServiceLevel.SAME_DAY), "offers no same_day service"),
        (booking("shp-excluded", excluded=("carrier-a", "carrier-b")), "was excluded"),
    ],
    ids=["weight", "service-level", "excluded"],
)
async def test_shipment_no_carrier_may_carry_fails_at_once_and_for_good(
    nc: NatsClient, nats_url: str, nats_prefix: str, command: object, why: str
) -> None:
    assert isinstance(command, type(booking("x")))
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        await rig.send(command)
        [failed] = await rig.wait_for(ShipmentBookingFailed, command.shipment_id)
        assert failed.retryable is False
        assert failed.carriers_tried == ()
        assert why in failed.reason
        assert rig.carrier_a.calls() == {} and rig.carrier_b.calls() == {}


async def test_shipment_every_carrier_refuses_fails_for_good(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(
        nc, nats_url, nats_prefix, carrier_a_api_key="wrong", carrier_b_api_key="wrong"
    ) as rig:
        await rig.send(booking("shp-refused"))
        [failed] = await rig.wait_for(ShipmentBookingFailed, "shp-refused")
        assert failed.retryable is False
        assert failed.carriers_tried == ("carrier-a", "carrier-b")
        assert "HTTP 401" in failed.reason
