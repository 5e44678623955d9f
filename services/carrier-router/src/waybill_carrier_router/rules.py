"""Declarative carrier rules: which carrier may carry what, and which of its services fit.

Written as JSON (in ``WAYBILL_CARRIER_RULES`` or a file it names)::

    {"carriers": [
      {"carrier": "carrier-a", "countries": ["US", "CA"], "max_weight_kg": 30,
       "services": {"standard": ["GroundAdvantage", "Priority"], "next_day": ["NextDayAir"]}},
      {"carrier": "carrier-b", "excluded_countries": ["RU"], "max_weight_kg": 25,
       "services": {"standard": ["usps_ground_advantage"], "express": ["usps_priority"]}}
    ]}

``services`` maps each Waybill service level to the carrier's own service codes
that keep that promise (a faster service keeps a slower promise too); a level a
carrier does not list is one it does not serve. The order of ``carriers`` breaks
price ties. Unknown keys are refused, so a typo cannot silently widen a rule.

``delivery_methods`` (optional) says what each delivery method sold in Odoo
promises, by its name there (compared without regard to case)::

    "delivery_methods": {
      "DHL Express": {"service_level": "express", "carriers": ["carrier-a"]},
      "Economy": {"service_level": "economy"}
    }

A booking whose order has that delivery method is made at that service level
(Odoo has no service level of its own, so the order's is only a default) and
only with those carriers. A delivery method without an entry changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import msgspec

from waybill_contracts.model import CountryCode, ServiceLevel

__all__ = ["DEFAULT_RULES", "CarrierRule", "DeliveryMethodRule", "RoutingRules", "load_rules"]

ServiceCodes = Annotated[
    tuple[Annotated[str, msgspec.Meta(min_length=1)], ...], msgspec.Meta(min_length=1)
]


class CarrierRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one carrier may be booked for."""

    carrier: Annotated[str, msgspec.Meta(min_length=1)]
    """The carrier's code (``carrier-a``, ``carrier-b``)."""
    countries: frozenset[CountryCode] | None = None
    """Destination countries served; None (or absent) means anywhere."""
    excluded_countries: frozenset[CountryCode] = frozenset()
    """Destination countries never served, even when ``countries`` is None."""
    max_weight_kg: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """Heaviest shipment (all parcels together) the carrier takes; None means no limit."""
    services: dict[ServiceLevel, ServiceCodes]
    """Per service level, the carrier's service codes that keep that promise."""


class DeliveryMethodRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one Odoo delivery method promises."""

    service_level: ServiceLevel | None = None
    """The service level it sells; None keeps the booking's own."""
    carriers: Annotated[tuple[str, ...], msgspec.Meta(min_length=1)] | None = None
    """The only carriers that may carry it; None means any the carrier rules allow."""


class RoutingRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The rules of every carrier the router may book with, in order of preference."""

    carriers: Annotated[tuple[CarrierRule, ...], msgspec.Meta(min_length=1)]
    delivery_methods: dict[str, DeliveryMethodRule] = {}
    """Odoo delivery method name → what it promises."""

    def rule_for(self, carrier: str) -> CarrierRule | None:
        """The rule of ``carrier``, if it has one."""
        return next((rule for rule in self.carriers if rule.carrier == carrier), None)

    def method_rule(self, delivery_method: str) -> DeliveryMethodRule | None:
        """The rule of an Odoo delivery method by its name (any case), if it has one."""
        wanted = delivery_method.strip().casefold()
        return next(
            (rule for name, rule in self.delivery_methods.items() if name.casefold() == wanted),
            None,
        )


def _services(
    economy: Sequence[str], standard: Sequence[str], express: Sequence[str], next_day: Sequence[str]
) -> dict[ServiceLevel, tuple[str, ...]]:
    return {
        ServiceLevel.ECONOMY: tuple(economy),
        ServiceLevel.STANDARD: tuple(standard),
        ServiceLevel.EXPRESS: tuple(express),
        ServiceLevel.NEXT_DAY: tuple(next_day),
    }


DEFAULT_RULES = RoutingRules(
    carriers=(
        CarrierRule(
            carrier="carrier-a",
            max_weight_kg=30.0,
            services=_services(
                economy=["GroundAdvantage"],
                standard=["GroundAdvantage", "Priority"],
                express=["Priority", "NextDayAir"],
                next_day=["NextDayAir"],
            ),
        ),
        CarrierRule(
            carrier="carrier-b",
            max_weight_kg=30.0,
            services=_services(
                economy=["usps_ground_advantage"],
                standard=["usps_ground_advantage", "usps_priority"],
                express=["usps_priority", "dhl_express_worldwide"],
                next_day=["dhl_express_worldwide"],
            ),
        ),
    )
)
"""Both carriers, any destination, up to 30 kg; nobody promises same-day delivery."""

_decode = msgspec.json.Decoder(RoutingRules).decode


def load_rules(source: str, *, known_carriers: Sequence[str]) -> RoutingRules:
    """Rules from ``source``: a JSON document, the path of a JSON file, or empty for the default.

    Raises ValueError with one line saying what is wrong and where.
    """
    text = source.strip()
    if not text:
        rules = DEFAULT_RULES
        origin = "the built-in carrier rules"
    else:
        if text.startswith("{"):
            document, origin = text.encode(), "the carrier rules"
        else:
            try:
                document = Path(text).read_bytes()
            except OSError as error:
                raise ValueError(
                    f"cannot read the carrier rules file {text!r} ({error.strerror or error}): "
                    "point WAYBILL_CARRIER_RULES at a readable JSON file or give the JSON itself"
                ) from None
            origin = f"the carrier rules in {text}"
        try:
            rules = _decode(document)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise ValueError(f"{origin} are not valid: {error}") from None
    _check_carriers(rules, origin, known_carriers)
    return rules


def _check_carriers(rules: RoutingRules, origin: str, known: Sequence[str]) -> None:
    seen: set[str] = set()
    for rule in rules.carriers:
        if rule.carrier not in known:
            raise ValueError(
                f"{origin} name carrier {rule.carrier!r}, which the router cannot book with: "
                f"use {' or '.join(known)}"
            )
        if rule.carrier in seen:
            raise ValueError(f"{origin} list carrier {rule.carrier!r} twice: keep one rule")
        seen.add(rule.carrier)
    names: set[str] = set()
    for name, method in rules.delivery_methods.items():
        if name.strip().casefold() in names:
            raise ValueError(f"{origin} list delivery method {name!r} twice (case aside)")
        names.add(name.strip().casefold())
        for carrier in method.carriers or ():
            if carrier not in seen:
                raise ValueError(
                    f"{origin} let delivery method {name!r} go with {carrier!r}, which has no "
                    f"carrier rule: use {' or '.join(sorted(seen))}"
                )
