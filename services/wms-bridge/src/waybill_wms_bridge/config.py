"""Settings of the wms-bridge, each read from ``WAYBILL_<FIELD>`` (see the README's table)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from waybill_runtime.settings import SECRET, RuntimeSettings, known_secrets

__all__ = ["WmsBridgeSettings"]


ODOO_UNIT_CODES = {"Units": "EA", "Unit(s)": "EA", "kg": "KG", "g": "G", "L": "L", "m": "M"}
"""Odoo's own names of its standard units, in common WMS codes (the default mapping)."""


class WmsBridgeSettings(RuntimeSettings, frozen=True, kw_only=True):
    """The runtime's settings plus where the WMS is, how to talk to it and how often to poll."""

    wms_url: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^https?://\S+$",
            description="Base URL of the WMS REST API (the part before /api/v1)",
            extra={"expected": "an http(s) URL such as http://127.0.0.1:8070"},
        ),
    ] = "http://127.0.0.1:8070"
    wms_api_key: Annotated[
        str,
        msgspec.Meta(min_length=1, description="API key sent as X-Api-Key on every WMS call"),
        SECRET,
        known_secrets("wms-sandbox-key"),  # `waybill sandbox wms`'s own
    ]
    wms_webhook_secret: Annotated[
        str,
        msgspec.Meta(
            min_length=1, description="HMAC key the WMS signs its webhooks with (X-WMS-Signature)"
        ),
        SECRET,
        known_secrets("wms-sandbox-secret"),
    ]
    wms_webhook_tolerance_s: Annotated[
        float,
        msgspec.Meta(
            gt=0, description="Largest clock difference accepted on a webhook's X-WMS-Timestamp"
        ),
    ] = 300.0
    wms_reconcile_interval_s: Annotated[
        float, msgspec.Meta(gt=0, description="Seconds between reconciliation polls of the WMS")
    ] = 60.0
    wms_reconcile_overlap_s: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            description="How far each poll reaches back before the stored watermark, "
            "so a change written while the last poll ran is not missed",
        ),
    ] = 5.0
    wms_reconcile_lookback_s: Annotated[
        float,
        msgspec.Meta(
            ge=0, description="How far the very first poll reaches back when no watermark exists"
        ),
    ] = 86_400.0
    wms_timeout_s: Annotated[
        float, msgspec.Meta(gt=0, description="Longest one WMS call may take, answer included")
    ] = 10.0
    wms_connect_timeout_s: Annotated[
        float, msgspec.Meta(gt=0, description="Longest the TCP connect to the WMS may take")
    ] = 3.0
    wms_retry_attempts: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=10,
            description="Tries per WMS call for short hiccups before the message is retried "
            "later by the bus",
        ),
    ] = 3
    wms_rate_per_s: Annotated[
        float, msgspec.Meta(gt=0, description="Average WMS calls per second at most")
    ] = 20.0
    wms_products_per_call: Annotated[
        int,
        msgspec.Meta(
            ge=1, le=1000, description="Products per catalogue upload (the WMS's limit per call)"
        ),
    ] = 100
    wms_stock_page_size: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=500,
            description="Stock levels read per call (and published per snapshot page) when "
            "the orchestrator asks for an inventory snapshot",
        ),
    ] = 500
    wms_unit_codes: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="Odoo unit of measure name -> the WMS's unit code, as JSON "
            '({"Units": "EA"}); a product in a unit with no code is refused before upload'
        ),
    ] = msgspec.field(default_factory=lambda: dict(ODOO_UNIT_CODES))
    wms_circuit_failures: Annotated[
        int,
        msgspec.Meta(ge=1, description="Failed WMS calls in a row that open the circuit breaker"),
    ] = 5
    wms_circuit_reset_s: Annotated[
        float, msgspec.Meta(ge=0, description="Seconds an open circuit waits before a trial call")
    ] = 30.0
    wms_default_warehouse: Annotated[
        str,
        msgspec.Meta(
            min_length=1, description="Warehouse code used when a released order names none"
        ),
    ] = "WH1"
