"""Choosing carriers: screening by the rules and health, then ranking offers by price."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from tests.services.carrier_router.harness import booking
from waybill_carrier_router.carriers import RateOffer
from waybill_carrier_router.rules import CarrierRule, DeliveryMethodRule, RoutingRules
from waybill_carrier_router.selection import (
    ShipmentFacts,
    fitting_offer,
    rank,
    screen,
)
from waybill_contracts.commands import BookShipment
from waybill_contracts.model import DeliveryMethod, ServiceLevel

STANDARD = ServiceLevel.STANDARD
RULES = RoutingRules(
    carriers=(
        CarrierRule(
            carrier="carrier-a",
            countries=frozenset({"US", "CA", "NL"}),
            max_weight_kg=30.0,
            services={STANDARD: ("ground", "priority"), ServiceLevel.EXPRESS: ("priority",)},
        ),
        CarrierRule(
            carrier="carrier-b",
            excluded_countries=frozenset({"US"}),
            max_weight_kg=20.0,
            services={STANDARD: ("usps_ground",)},
        ),
    )
)
BOTH = ("carrier-a", "carrier-b")


def facts(**changes: object) -> ShipmentFacts:
    base: dict[str, object] = {"country": "NL", "weight_kg": 2.0, "service_level": STANDARD}
    base.update(changes)
    return ShipmentFacts(**base)  # type: ignore[arg-type]


def healthy(carrier: str) -> bool:
    return False


def offer(carrier: str, service: str, amount: str, days: int | None = None) -> RateOffer:
    return RateOffer(
        carrier=carrier,
        rate_id=f"{carrier}-{service}",
        carrier_shipment_id=f"shp-{carrier}",
        service=service,
        amount=Decimal(amount),
        currency="USD",
        delivery_days=days,
    )


def test_facts_of_a_booking_add_up_every_parcel() -> None:
    command = booking("shp-1", country="BE", weight_kg=1.5, excluded=("carrier-a",))
    assert ShipmentFacts.of(command, RULES) == ShipmentFacts(
        country="BE", weight_kg=1.5, service_level=STANDARD, excluded=frozenset({"carrier-a"})
    )
    two_parcels = msgspec.structs.replace(command, parcels=command.parcels * 2)
    assert ShipmentFacts.of(two_parcels, RULES).weight_kg == pytest.approx(3.0)


METHOD_RULES = msgspec.structs.replace(
    RULES,
    delivery_methods={
        "DHL Express": DeliveryMethodRule(
            service_level=ServiceLevel.EXPRESS, carriers=("carrier-a",)
        ),
        "Economy": DeliveryMethodRule(service_level=ServiceLevel.ECONOMY),
    },
)


def _with_method(name: str | None) -> BookShipment:
    method = DeliveryMethod(name=name, odoo_carrier_id=3) if name else None
    return msgspec.structs.replace(booking("shp-dm"), delivery_method=method)


def test_the_delivery_method_sold_in_odoo_sets_the_service_level_and_the_carriers() -> None:
    express = ShipmentFacts.of(_with_method("dhl express"), METHOD_RULES)  # any case
    assert express.service_level is ServiceLevel.EXPRESS
    assert express.method_carriers == frozenset({"carrier-a"})
    screening = screen(METHOD_RULES, express, enabled=BOTH, circuit_open=healthy)
    assert screening.candidates == ("carrier-a",)
    assert screening.rejected == {"carrier-b": "does not carry delivery method 'dhl express'"}
    economy = ShipmentFacts.of(_with_method("Economy"), METHOD_RULES)
    assert (economy.service_level, economy.method_carriers) == (ServiceLevel.ECONOMY, None)


@pytest.mark.parametrize("name", ["Pickup in store", None])
def test_a_delivery_method_without_a_rule_or_none_changes_nothing(name: str | None) -> None:
    facts_of = ShipmentFacts.of(_with_method(name), METHOD_RULES)
    assert facts_of == ShipmentFacts.of(_with_method(None), RULES)
    assert facts_of.service_level is STANDARD and facts_of.method_carriers is None


def test_shipment_both_carriers_may_carry_has_both_as_candidates_in_rule_order() -> None:
    screening = screen(RULES, facts(), enabled=BOTH, circuit_open=healthy)
    assert screening.candidates == BOTH
    assert screening.circuit_open == ()
    assert dict(screening.rejected) == {}


@pytest.mark.parametrize(
    ("shipment", "enabled", "rejected"),
    [
        (facts(country="DE"), BOTH, {"carrier-a": "does not serve DE"}),
        (facts(country="US"), BOTH, {"carrier-b": "does not serve US"}),
        (facts(weight_kg=25.0), BOTH, {"carrier-b": "takes up to 20 kg, not 25 kg"}),
        (
            facts(service_level=ServiceLevel.EXPRESS),
            BOTH,
            {"carrier-b": "offers no express service"},
        ),
        (
            facts(excluded=frozenset({"carrier-a"})),
            BOTH,
            {"carrier-a": "was excluded by the booking request"},
        ),
        (facts(), ("carrier-a",), {"carrier-b": "is disabled by configuration"}),
    ],
    ids=["country-list", "excluded-country", "weight", "service-level", "excluded", "disabled"],
)
def test_rules_rule_out_carriers_and_say_why(
    shipment: ShipmentFacts, enabled: tuple[str, ...], rejected: dict[str, str]
) -> None:
    screening = screen(RULES, shipment, enabled=enabled, circuit_open=healthy)
    assert dict(screening.rejected) == rejected
    assert screening.candidates == tuple(c for c in BOTH if c not in rejected)


def test_weight_at_the_limit_is_still_carried() -> None:
    screening = screen(RULES, facts(weight_kg=20.0), enabled=BOTH, circuit_open=healthy)
    assert screening.candidates == BOTH


def test_carrier_with_an_open_circuit_is_set_aside_not_ruled_out() -> None:
    screening = screen(
        RULES, facts(), enabled=BOTH, circuit_open=lambda carrier: carrier == "carrier-a"
    )
    assert screening.candidates == ("carrier-b",)
    assert screening.circuit_open == ("carrier-a",)
    assert not screening.nobody_allowed


def test_shipment_nobody_may_carry_is_explained() -> None:
    screening = screen(
        RULES, facts(country="DE", weight_kg=25.0), enabled=BOTH, circuit_open=healthy
    )
    assert screening.nobody_allowed
    assert screening.explain() == (
        "carrier-a does not serve DE; carrier-b takes up to 20 kg, not 25 kg"
    )


def test_fitting_offer_is_the_cheapest_service_that_keeps_the_promise() -> None:
    [rule_a, _] = RULES.carriers
    offers = [
        offer("carrier-a", "next_day_air", "3.00"),  # cheapest, but not allowed for standard
        offer("carrier-a", "priority", "7.60", 2),
        offer("carrier-a", "ground", "6.10", 5),
    ]
    assert fitting_offer(rule_a, STANDARD, offers) == offers[2]
    assert fitting_offer(rule_a, ServiceLevel.EXPRESS, offers) == offers[1]
    assert fitting_offer(rule_a, ServiceLevel.NEXT_DAY, offers) is None


def test_offers_are_ranked_by_price_then_speed_then_rule_order() -> None:
    b_cheap = offer("carrier-b", "usps_ground", "5.00", 4)
    a_same_price_faster = offer("carrier-a", "ground", "5.00", 2)
    a_dear = offer("carrier-a", "priority", "9.00", 1)
    b_same_everything = offer("carrier-b", "usps_priority", "9.00", 1)
    ranked = rank([a_dear, b_cheap, b_same_everything, a_same_price_faster], RULES)
    assert ranked == [a_same_price_faster, b_cheap, a_dear, b_same_everything]


def test_prices_are_compared_as_numbers_not_text() -> None:
    ranked = rank(
        [offer("carrier-a", "ground", "10.00"), offer("carrier-b", "usps_ground", "9.50")], RULES
    )
    assert [o.carrier for o in ranked] == ["carrier-b", "carrier-a"]
