"""The carriers the router may call, each behind its circuit breaker, retries and rate limit.

Every call goes through the carrier's circuit breaker (an open circuit fails at
once, so the router moves on to the next carrier) and retries short hiccups on
the spot, honouring ``Retry-After`` up to a bound. Label purchases also take a
token from the carrier account's bucket first, and are retried only when the
carrier surely did not buy (429, could not connect): a purchase whose outcome
is unknown is never repeated blindly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime
from typing import TypeVar

from waybill_carrier_router.carriers.invoices import CarrierInvoice
from waybill_carrier_router.carriers.model import (
    Carrier,
    CarrierBilling,
    CarrierUnavailable,
    LabelPurchase,
    RateOffer,
    ShipmentSpec,
    TrackingReport,
)
from waybill_runtime.outcomes import PermanentError, is_transient
from waybill_runtime.resilience import (
    CircuitBreakers,
    CircuitState,
    RateLimits,
    RetryPolicy,
    retry_call,
)

__all__ = ["CarrierFleet"]

T = TypeVar("T")


def _surely_not_bought(error: BaseException) -> bool:
    return isinstance(error, CarrierUnavailable) and not error.in_doubt


class CarrierFleet:
    """Calls to every configured carrier, with the resilience each call needs."""

    def __init__(
        self,
        carriers: Mapping[str, Carrier],
        *,
        enabled: Collection[str],
        breakers: CircuitBreakers,
        purchase_limits: RateLimits,
        retry: RetryPolicy,
    ) -> None:
        self._carriers = dict(carriers)
        self.enabled = frozenset(code for code in enabled if code in self._carriers)
        self.breakers = breakers
        self._purchase_limits = purchase_limits
        self._retry = retry

    def knows(self, code: str) -> bool:
        """Whether ``code`` is a carrier the router has an account with."""
        return code in self._carriers

    def circuit_open(self, code: str) -> bool:
        """Whether ``code`` failed so often lately that it is not being called."""
        return self.breakers.for_key(code).state is CircuitState.OPEN

    def circuit_wait_s(self, code: str) -> float:
        """Seconds until an open circuit lets a trial call through."""
        return self.breakers.for_key(code).retry_after_s

    async def quote(self, spec: ShipmentSpec, code: str) -> list[RateOffer]:
        carrier = self._carrier(code)
        return await self._call(code, lambda: carrier.quote(spec))

    async def buy(self, offer: RateOffer, spec: ShipmentSpec) -> LabelPurchase:
        carrier = self._carrier(offer.carrier)
        bucket = self._purchase_limits.for_key(offer.carrier)

        async def buy_once() -> LabelPurchase:
            await bucket.acquire()
            return await carrier.buy(offer, spec)

        return await self._call(offer.carrier, buy_once, retry_on=_surely_not_bought)

    async def find_purchase(self, code: str, reference: str) -> LabelPurchase | None:
        carrier = self._carrier(code)
        return await self._call(code, lambda: carrier.find_purchase(reference))

    async def void(self, code: str, carrier_reference: str) -> None:
        carrier = self._carrier(code)
        await self._call(code, lambda: carrier.void(carrier_reference))

    async def track(
        self, code: str, tracking_number: str, provider: str | None = None
    ) -> TrackingReport:
        carrier = self._carrier(code)
        return await self._call(code, lambda: carrier.track(tracking_number, provider))

    async def invoices(self, code: str, since: datetime, until: datetime) -> list[CarrierInvoice]:
        carrier = self._carrier(code)
        if not isinstance(carrier, CarrierBilling):
            raise PermanentError(f"carrier {code} has no billing API to read invoices from")
        # Retried like any call, but outside the carrier's circuit breaker: a billing
        # API that fails (a report the carrier could not make) must not stop label sales.
        return await retry_call(
            lambda: carrier.invoices(since, until), self._retry, retry_on=is_transient
        )

    @property
    def codes(self) -> tuple[str, ...]:
        """Every carrier the router has an account with."""
        return tuple(self._carriers)

    def _carrier(self, code: str) -> Carrier:
        try:
            return self._carriers[code]
        except KeyError:
            known = ", ".join(sorted(self._carriers))
            raise KeyError(f"no carrier {code!r}: the router knows {known}") from None

    async def _call(
        self,
        code: str,
        call: Callable[[], Awaitable[T]],
        *,
        retry_on: Callable[[BaseException], bool] = is_transient,
    ) -> T:
        # The breaker sees one outcome per logical call, retries included, so a
        # single slow call does not open a circuit by itself.
        return await self.breakers.for_key(code).call(
            lambda: retry_call(call, self._retry, retry_on=retry_on)
        )
