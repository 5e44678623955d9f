"""Events about the partners themselves, not about an order: a partner's circuit breaker moved."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from msgspec import Meta

from waybill_contracts.messages import Event
from waybill_contracts.model import UtcDateTime
from waybill_contracts.services import Service

CircuitStateName = Literal["closed", "open", "half_open"]
"""Where a circuit breaker stands: calls go through, fail at once, or a few trial calls pass."""


class PartnerCircuitChanged(Event, frozen=True, kw_only=True):
    """A service instance's circuit breaker for one partner moved to another state.

    Announced once per transition by the service that calls the partner; a
    breaker nobody announced is closed (every breaker starts closed).
    """

    aggregate: ClassVar[str] = "partner"
    name: ClassVar[str] = "circuit_changed"
    # Every service that declares partners calls them behind breakers it may announce.
    publishers: ClassVar[tuple[Service, ...]] = (
        Service.ODOO_GATEWAY,
        Service.WMS_BRIDGE,
        Service.CARRIER_ROUTER,
        Service.NOTIFIER,
    )

    service: Annotated[
        str, Meta(min_length=1, max_length=100, description="The service whose breaker it is.")
    ]
    instance: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=200,
            description="The service instance (host and process id): each replica has its own "
            "breakers.",
        ),
    ]
    partner: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=100,
            description="The breaker's partner, as the service names it (a carrier's code, wms).",
        ),
    ]
    state: Annotated[CircuitStateName, Meta(description="The state it moved to.")]
    previous_state: Annotated[CircuitStateName, Meta(description="The state it left.")]
    changed_at: Annotated[UtcDateTime, Meta(description="When it moved, by the instance's clock.")]
    reason: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=500,
            description="Why, in words: the failures in a row and the last error's class, "
            "a trial call's outcome, or the wait before trials.",
        ),
    ]

    def business_key(self) -> str:
        # One breaker: the latest announcement under this key is its state.
        return f"{self.service}/{self.instance}/{self.partner}"
