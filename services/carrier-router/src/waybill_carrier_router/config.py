"""Settings of the carrier-router, each read from ``WAYBILL_<FIELD>`` (see the README's table).

The defaults point at the carrier sandboxes of the local stack (`waybill sandbox carriers`),
so a laptop run needs no carrier settings at all.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from waybill_carrier_router.freight_matching import FreightTolerance
from waybill_carrier_router.rules import RoutingRules, load_rules
from waybill_contracts import KV_TTL_S
from waybill_runtime.settings import SECRET, RuntimeSettings

__all__ = ["CARRIER_A", "CARRIER_B", "CarrierAccount", "CarrierRouterSettings"]

CARRIER_A = "carrier-a"
"""The EasyPost-style carrier, as it is named in rules, events and webhook paths."""
CARRIER_B = "carrier-b"
"""The Shippo-style carrier."""

_URL = msgspec.Meta(
    pattern=r"^https?://\S+$",
    extra={"expected": "an http(s) URL such as http://127.0.0.1:8071"},
)


class CarrierAccount(msgspec.Struct, frozen=True, kw_only=True):
    """Where one carrier's API is and how Waybill authenticates with it."""

    code: str
    url: str
    api_key: str
    webhook_secret: str
    enabled: bool


class CarrierRouterSettings(RuntimeSettings, frozen=True, kw_only=True):
    """The runtime's settings plus the two carrier accounts, the rules and the resilience knobs."""

    carrier_a_url: Annotated[
        str, _URL, msgspec.Meta(description="Base URL of carrier A (EasyPost style, before /v2)")
    ] = "http://127.0.0.1:8071"
    carrier_a_api_key: Annotated[
        str,
        msgspec.Meta(min_length=1, description="Carrier A API key (HTTP Basic user name)"),
        SECRET,
    ] = "EZTK-sandbox"
    carrier_a_webhook_secret: Annotated[
        str,
        msgspec.Meta(min_length=1, description="HMAC key of carrier A's X-Hmac-Signature"),
        SECRET,
    ] = "easypost-sandbox-secret"
    carrier_a_enabled: Annotated[
        bool, msgspec.Meta(description="Whether new shipments may be booked with carrier A")
    ] = True
    carrier_b_url: Annotated[
        str, _URL, msgspec.Meta(description="Base URL of carrier B (Shippo style)")
    ] = "http://127.0.0.1:8072"
    carrier_b_api_key: Annotated[
        str,
        msgspec.Meta(min_length=1, description="Carrier B API token (Authorization: ShippoToken)"),
        SECRET,
    ] = "shippo_test_sandbox"
    carrier_b_webhook_secret: Annotated[
        str,
        msgspec.Meta(min_length=1, description="HMAC key of carrier B's X-Shippo-Signature"),
        SECRET,
    ] = "shippo-sandbox-secret"
    carrier_b_enabled: Annotated[
        bool, msgspec.Meta(description="Whether new shipments may be booked with carrier B")
    ] = True
    carrier_rules: Annotated[
        str,
        msgspec.Meta(
            description="Routing rules: a JSON document, or the path of a JSON file; "
            "empty for the built-in rules (both carriers, anywhere, up to 30 kg)",
            extra={"expected": "a JSON object, a file path, or empty"},
        ),
    ] = ""
    carrier_timeout_s: Annotated[
        float, msgspec.Meta(gt=0, description="Longest one carrier call may take, answer included")
    ] = 10.0
    carrier_retry_attempts: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=10,
            description="Tries per carrier call for short hiccups and 429s (a label purchase "
            "whose outcome is unknown is never retried blindly)",
        ),
    ] = 3
    carrier_retry_max_wait_s: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            description="Longest Retry-After honoured inside one delivery; a longer one makes "
            "the router try the next carrier or retry the message later",
        ),
    ] = 5.0
    carrier_purchase_rate_per_s: Annotated[
        float,
        msgspec.Meta(gt=0, description="Label purchases per second per carrier account, at most"),
    ] = 4.0
    carrier_purchase_burst: Annotated[
        int, msgspec.Meta(ge=1, description="Label purchases per carrier account allowed at once")
    ] = 4
    carrier_circuit_failures: Annotated[
        int,
        msgspec.Meta(ge=1, description="Failed calls in a row that open a carrier's circuit"),
    ] = 5
    carrier_circuit_reset_s: Annotated[
        float,
        msgspec.Meta(ge=0, description="Seconds an open carrier circuit waits before a trial call"),
    ] = 30.0
    carrier_webhook_tolerance_s: Annotated[
        float,
        msgspec.Meta(gt=0, description="Largest clock difference accepted on a signed timestamp"),
    ] = 300.0
    carrier_webhook_replay_window_s: Annotated[
        float,
        msgspec.Meta(
            ge=60,
            le=KV_TTL_S["idempotency"] or 7 * 86_400,
            description="How old a carrier A webhook may be (by its signed created_at), and "
            "how long its id is remembered so the same one is not acted on twice; its "
            "signature has no timestamp",
        ),
    ] = 86_400.0
    booking_max_attempts: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description="Deliveries of one BookShipment that may end in 'retry later' before "
            "the router gives up with ShipmentBookingFailed; at most WAYBILL_MAX_DELIVER",
        ),
    ] = 5
    booking_in_doubt_s: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            description="How long a label purchase that left no trace may still be under way "
            "elsewhere; until then nobody buys another label for that shipment",
        ),
    ] = 60.0
    tracking_quiet_after_s: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            description="How long a shipment may go without a milestone before the router asks "
            "its carrier for its tracking (a lost or never-sent webhook); asked again no sooner "
            "than after as long again",
        ),
    ] = 6 * 3600.0
    tracking_reconcile_interval_s: Annotated[
        float,
        msgspec.Meta(gt=0, description="How often quiet shipments are looked for"),
    ] = 900.0
    tracking_reconcile_batch: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=10_000,
            description="Most carrier tracking calls one reconciliation round makes (the rest "
            "wait for the next round), to stay within the carriers' API limits",
        ),
    ] = 200
    freight_reconcile_interval_s: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            description="How often the carriers' freight invoices are fetched and matched to "
            "the labels booked; 0 switches freight reconciliation off",
        ),
    ] = 0.0
    freight_tolerance: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            description="How far a billed amount may be from the quote and still match: an "
            "amount (0.50), a percentage of the quote (2%), or both (0.50,2%: the larger)",
            extra={"expected": "an amount, a percentage, or both, e.g. 0.50,2%"},
        ),
    ] = "0.01"
    freight_run_deadline_s: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            description="How long one freight reconciliation run may take; a run still "
            "going after that is reported stuck",
        ),
    ] = 600.0
    freight_first_lookback_days: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=90,
            description="How far back the first freight reconciliation looks for invoices "
            "(later runs start where the last one ended)",
        ),
    ] = 31
    label_format: Annotated[
        Literal["PDF", "ZPL"], msgspec.Meta(description="Label document format to buy")
    ] = "PDF"
    ship_from_name: Annotated[
        str, msgspec.Meta(min_length=1, description="Sender name printed on labels")
    ] = "Waybill Warehouse"
    ship_from_street: Annotated[
        str, msgspec.Meta(min_length=1, description="Sender street and number")
    ] = "Waalhaven Zuidzijde 1"
    ship_from_postal_code: Annotated[
        str, msgspec.Meta(min_length=1, description="Sender postal code")
    ] = "3089 JH"
    ship_from_city: Annotated[str, msgspec.Meta(min_length=1, description="Sender city")] = (
        "Rotterdam"
    )
    ship_from_country: Annotated[
        str,
        msgspec.Meta(
            pattern="^[A-Z]{2}$",
            description="Sender country (ISO 3166-1 alpha-2)",
            extra={"expected": "a two-letter country code such as NL"},
        ),
    ] = "NL"

    def __post_init__(self) -> None:
        if self.booking_max_attempts > self.max_deliver:
            # Past max_deliver the bus dead-letters the command before the router
            # could announce the failure, and the orchestrator would never hear of it.
            raise ValueError(
                f"WAYBILL_BOOKING_MAX_ATTEMPTS ({self.booking_max_attempts}) must not exceed "
                f"WAYBILL_MAX_DELIVER ({self.max_deliver})"
            )
        self.rules()  # a broken rules document stops the service before it starts
        self.tolerance()  # and so does a tolerance that is not one

    def tolerance(self) -> FreightTolerance:
        """The freight tolerance (raises ValueError naming WAYBILL_FREIGHT_TOLERANCE)."""
        return FreightTolerance.parse(self.freight_tolerance)

    def accounts(self) -> tuple[CarrierAccount, ...]:
        """Both carrier accounts, in the order the settings list them."""
        return (
            CarrierAccount(
                code=CARRIER_A,
                url=self.carrier_a_url.rstrip("/"),
                api_key=self.carrier_a_api_key,
                webhook_secret=self.carrier_a_webhook_secret,
                enabled=self.carrier_a_enabled,
            ),
            CarrierAccount(
                code=CARRIER_B,
                url=self.carrier_b_url.rstrip("/"),
                api_key=self.carrier_b_api_key,
                webhook_secret=self.carrier_b_webhook_secret,
                enabled=self.carrier_b_enabled,
            ),
        )

    def rules(self) -> RoutingRules:
        """The routing rules this service runs with (raises ValueError when unusable)."""
        return load_rules(self.carrier_rules, known_carriers=(CARRIER_A, CARRIER_B))
