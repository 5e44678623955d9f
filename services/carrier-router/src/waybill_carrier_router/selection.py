"""Choosing carriers for a shipment: pure decisions, no I/O.

Two steps, because prices are only known after asking the carriers:

1. :func:`screen` — which carriers the rules allow for this shipment
   (enabled, not excluded, the order's delivery method, destination country,
   weight, service level) and which of those are healthy (circuit not open).
   Only those are asked to quote. The delivery method chosen in Odoo may set
   the service level too (see :mod:`waybill_carrier_router.rules`).
2. :func:`fitting_offer` then :func:`rank` — per carrier the cheapest quote
   whose service keeps the promised service level, then every carrier's best
   offer cheapest first (ties: faster, then the rules' order). The router buys
   from the first and falls back down the list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from waybill_carrier_router.carriers.model import RateOffer, total_weight_kg
from waybill_carrier_router.rules import CarrierRule, RoutingRules
from waybill_contracts.commands import BookShipment
from waybill_contracts.model import ServiceLevel

__all__ = ["Screening", "ShipmentFacts", "fitting_offer", "rank", "screen", "why_not"]


@dataclass(frozen=True, kw_only=True)
class ShipmentFacts:
    """What the rules look at."""

    country: str
    weight_kg: float
    service_level: ServiceLevel
    excluded: frozenset[str] = frozenset()
    delivery_method: str | None = None
    """The Odoo delivery method, when the rules say which carriers may carry it."""
    method_carriers: frozenset[str] | None = None
    """The carriers that delivery method allows; None means any."""

    @classmethod
    def of(cls, command: BookShipment, rules: RoutingRules) -> ShipmentFacts:
        """The facts of a booking, with what its delivery method promises per ``rules``."""
        method = command.delivery_method
        promise = rules.method_rule(method.name) if method is not None else None
        level = command.service_level
        if promise is not None and promise.service_level is not None:
            # Odoo has no service level: what the delivery method sold is the promise.
            level = promise.service_level
        carriers = promise.carriers if promise is not None else None
        return cls(
            country=command.ship_to.country_code,
            weight_kg=total_weight_kg(command.parcels),
            service_level=level,
            excluded=frozenset(command.excluded_carriers),
            delivery_method=method.name if method is not None and carriers else None,
            method_carriers=frozenset(carriers) if carriers else None,
        )


@dataclass(frozen=True)
class Screening:
    """The carriers worth asking for a quote, and why the others are not."""

    candidates: tuple[str, ...] = ()
    """Allowed by the rules and healthy, in the rules' order."""
    circuit_open: tuple[str, ...] = ()
    """Allowed by the rules, but failing lately (their circuit is open)."""
    rejected: Mapping[str, str] = field(default_factory=dict)
    """Carrier → why the rules rule it out."""

    @property
    def nobody_allowed(self) -> bool:
        """True when no carrier may carry this shipment, healthy or not: retrying cannot help."""
        return not self.candidates and not self.circuit_open

    def explain(self) -> str:
        """One line for ops: why each carrier was ruled out."""
        if not self.rejected:
            return "no carrier has a rule"
        return "; ".join(f"{carrier} {why}" for carrier, why in self.rejected.items())


def why_not(rule: CarrierRule, facts: ShipmentFacts, enabled: Collection[str]) -> str | None:
    """Why ``rule`` rules its carrier out for ``facts``; None when the carrier may carry it."""
    if rule.carrier not in enabled:
        return "is disabled by configuration"
    if rule.carrier in facts.excluded:
        return "was excluded by the booking request"
    if facts.method_carriers is not None and rule.carrier not in facts.method_carriers:
        return f"does not carry delivery method {facts.delivery_method!r}"
    if rule.countries is not None and facts.country not in rule.countries:
        return f"does not serve {facts.country}"
    if facts.country in rule.excluded_countries:
        return f"does not serve {facts.country}"
    if rule.max_weight_kg is not None and facts.weight_kg > rule.max_weight_kg:
        return f"takes up to {rule.max_weight_kg:g} kg, not {facts.weight_kg:g} kg"
    if not rule.services.get(facts.service_level):
        return f"offers no {facts.service_level.value} service"
    return None


def screen(
    rules: RoutingRules,
    facts: ShipmentFacts,
    *,
    enabled: Collection[str],
    circuit_open: Callable[[str], bool],
) -> Screening:
    """Sort every carrier with a rule into candidate, circuit open, or ruled out."""
    candidates: list[str] = []
    failing: list[str] = []
    rejected: dict[str, str] = {}
    for rule in rules.carriers:
        reason = why_not(rule, facts, enabled)
        if reason is not None:
            rejected[rule.carrier] = reason
        elif circuit_open(rule.carrier):
            failing.append(rule.carrier)
        else:
            candidates.append(rule.carrier)
    return Screening(tuple(candidates), tuple(failing), rejected)


def _price_key(offer: RateOffer) -> tuple[float, float]:
    days = offer.delivery_days if offer.delivery_days is not None else math.inf
    return (float(offer.amount), days)


def fitting_offer(
    rule: CarrierRule, level: ServiceLevel, offers: Sequence[RateOffer]
) -> RateOffer | None:
    """The cheapest of a carrier's ``offers`` whose service keeps the ``level`` promise."""
    allowed = rule.services.get(level, ())
    fitting = [offer for offer in offers if offer.service in allowed]
    return min(fitting, key=_price_key) if fitting else None


def rank(offers: Sequence[RateOffer], rules: RoutingRules) -> list[RateOffer]:
    """Offers cheapest first; ties go to the faster, then to the carrier listed first.

    Amounts are compared as numbers: keep every carrier account in one currency.
    """
    order = {rule.carrier: index for index, rule in enumerate(rules.carriers)}
    return sorted(
        offers, key=lambda o: (*_price_key(o), order.get(o.carrier, len(order)), o.carrier)
    )
