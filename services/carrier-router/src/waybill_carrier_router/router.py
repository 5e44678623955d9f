"""The carrier-router's working parts, built from the settings for one running service.

Built by :func:`open_router` when the service starts (after the buckets exist)
and closed when it stops; it is the service's :data:`ROUTER` resource, which
handlers reach with ``ctx.resource(ROUTER)``. Each running service has its
own, so tests can run several instances side by side.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from waybill_carrier_router.booking import ShipmentBooker
from waybill_carrier_router.carriers import (
    Carrier,
    EasyPostClient,
    EasyPostWebhooks,
    LabelPurchase,
    ShippoClient,
    ShippoWebhooks,
    TrackingWebhooks,
)
from waybill_carrier_router.config import CARRIER_A, CARRIER_B, CarrierRouterSettings
from waybill_carrier_router.fleet import CarrierFleet
from waybill_carrier_router.ledger import BookingLedger
from waybill_carrier_router.replay_guard import ReplayGuard
from waybill_carrier_router.return_labels import ReturnLabelDesk
from waybill_carrier_router.tracking_book import TrackingBook
from waybill_carrier_router.voiding import ShipmentVoider, VoidReceipt
from waybill_contracts.model import Address
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.partner_calls import partner_session, watch_circuits
from waybill_runtime.resilience import CircuitBreakers, CircuitState, RateLimits, RetryPolicy
from waybill_runtime.resilience.circuit import StateListener
from waybill_runtime.service import ResourceKey, Runtime

__all__ = ["ROUTER", "CarrierRouter", "open_router"]

log = logging.getLogger("waybill.carrier_router")

_TRACKING = "tracking"
_LEGACY_TRACKING = "watermarks"  # where 1.0 kept tracking progress; read to move it over
_FIRST_RETRY_S = 0.2


@dataclass(frozen=True)
class CarrierRouter:
    """Everything the handlers and the webhook routes of one running router use."""

    fleet: CarrierFleet
    booker: ShipmentBooker
    voider: ShipmentVoider
    returns: ReturnLabelDesk
    tracking: TrackingBook
    webhooks: Mapping[str, TrackingWebhooks]
    replays: ReplayGuard
    metrics: MetricsRegistry


_CLIENTS: dict[str, Callable[..., Carrier]] = {CARRIER_A: EasyPostClient, CARRIER_B: ShippoClient}
"""The API dialect each carrier speaks."""

ROUTER = ResourceKey[CarrierRouter]("carrier-router")
"""The running service's router (opened by :func:`open_router`)."""


def _ship_from(settings: CarrierRouterSettings) -> Address:
    return Address(
        name=settings.ship_from_name,
        street=settings.ship_from_street,
        postal_code=settings.ship_from_postal_code,
        city=settings.ship_from_city,
        country_code=settings.ship_from_country,
    )


def _circuit_watcher(metrics: MetricsRegistry, carriers: list[str]) -> StateListener:
    observed = watch_circuits(*carriers)  # waybill_circuit_breaker_state, span events
    gauge = metrics.gauge(
        "waybill_carrier_circuit_open",
        "1 while a carrier's circuit breaker is open (the carrier is skipped).",
        ("carrier",),
    )

    def changed(carrier: str, old: CircuitState, new: CircuitState, reason: str) -> None:
        gauge.labels(carrier).set(1 if new is CircuitState.OPEN else 0)
        observed(carrier, old, new, reason)
        log.warning("carrier %s circuit %s -> %s (%s)", carrier, old, new, reason)

    return changed


@contextlib.asynccontextmanager
async def open_router(runtime: Runtime[CarrierRouterSettings]) -> AsyncIterator[CarrierRouter]:
    """Build the router for ``runtime``; its carrier clients are closed after."""
    settings = runtime.settings
    async with contextlib.AsyncExitStack() as sessions:
        # A session per carrier: each call is observed as a call to its carrier
        # (a CLIENT span, waybill_partner_call_duration_seconds{partner=<code>}).
        carriers: dict[str, Carrier] = {
            account.code: _CLIENTS[account.code](
                code=account.code,
                base_url=account.url,
                api_key=account.api_key,
                timeout_s=settings.carrier_timeout_s,
                session=await sessions.enter_async_context(partner_session(account.code)),
            )
            for account in settings.accounts()
        }
        webhooks: dict[str, TrackingWebhooks] = {
            CARRIER_A: EasyPostWebhooks(settings.carrier_a_webhook_secret),
            CARRIER_B: ShippoWebhooks(
                settings.carrier_b_webhook_secret,
                tolerance_s=settings.carrier_webhook_tolerance_s,
            ),
        }
        fleet = CarrierFleet(
            carriers,
            enabled=[account.code for account in settings.accounts() if account.enabled],
            breakers=CircuitBreakers(
                settings.carrier_circuit_failures,
                settings.carrier_circuit_reset_s,
                on_state_change=_circuit_watcher(
                    runtime.metrics, [account.code for account in settings.accounts()]
                ),
            ),
            purchase_limits=RateLimits(
                settings.carrier_purchase_rate_per_s, settings.carrier_purchase_burst
            ),
            retry=RetryPolicy(
                attempts=settings.carrier_retry_attempts,
                base_s=min(_FIRST_RETRY_S, settings.carrier_retry_max_wait_s),
                max_s=settings.carrier_retry_max_wait_s,
            ),
        )
        tracking = TrackingBook(
            runtime.buckets[_TRACKING], legacy=runtime.buckets.get(_LEGACY_TRACKING)
        )
        router = CarrierRouter(
            fleet=fleet,
            booker=ShipmentBooker(
                fleet=fleet,
                rules=settings.rules(),
                purchases=runtime.once_only(LabelPurchase),
                ledger=BookingLedger(runtime.buckets["idempotency"]),
                ship_from=_ship_from(settings),
                label_format=settings.label_format,
                max_attempts=settings.booking_max_attempts,
                in_doubt_s=settings.booking_in_doubt_s,
            ),
            voider=ShipmentVoider(
                fleet=fleet, tracking=tracking, voids=runtime.once_only(VoidReceipt)
            ),
            returns=ReturnLabelDesk(
                fleet=fleet,
                purchases=runtime.once_only(LabelPurchase),
                warehouse=_ship_from(settings),
                label_format=settings.label_format,
            ),
            tracking=tracking,
            webhooks=webhooks,
            replays=ReplayGuard(
                runtime.buckets["idempotency"],
                window_s=settings.carrier_webhook_replay_window_s,
                tolerance_s=settings.carrier_webhook_tolerance_s,
            ),
            metrics=runtime.metrics,
        )
        yield router
