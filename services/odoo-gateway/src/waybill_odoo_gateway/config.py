"""The gateway's settings: where Odoo is, how to log in, how hard to lean on it.

Every field is read from ``WAYBILL_<FIELD>`` (``WAYBILL_ODOO_URL``, ...). The
defaults fit the local stack (the Odoo sandbox on port 8069 with its demo
users); a real deployment sets the URL, the database, the credentials and the
webhook token.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

import msgspec

from waybill_runtime.settings import SECRET, RuntimeSettings

__all__ = ["OdooGatewaySettings", "OdooProtocol"]

OdooProtocol = Literal["auto", "jsonrpc", "json2"]

# Odoo retries a serialization failure up to 5 times with random sleeps of up
# to 2^n s, about 30 s in the worst case: a client giving up earlier would
# report a failure for a call that may still succeed.
ODOO_OWN_RETRIES_S = 30.0


class OdooGatewaySettings(RuntimeSettings, frozen=True, kw_only=True):
    """Settings of the odoo-gateway service."""

    # Odoo being down for an hour (an upgrade, a backup) is ordinary: commands
    # keep waiting for it, about four hours with the default backoff, before
    # they are dead-lettered. Refusals are dead-lettered at once all the same.
    max_deliver: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description="Deliveries before a message is dead-lettered (Odoo outages are "
            "waited out that long)",
        ),
    ] = 30

    odoo_url: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^https?://\S+$",
            description="Base URL of Odoo (no trailing path), e.g. https://odoo.example.com",
            extra={"expected": "an http(s) URL such as http://127.0.0.1:8069"},
        ),
    ] = "http://127.0.0.1:8069"
    odoo_db: Annotated[str, msgspec.Meta(min_length=1, description="Odoo database name")] = (
        "waybill"
    )
    odoo_protocol: Annotated[
        OdooProtocol,
        msgspec.Meta(
            description="auto (json2 on Odoo 19+ when an API key is set, else jsonrpc), jsonrpc "
            "(Odoo 16-19, deprecated in 19) or json2 (19, API key)"
        ),
    ] = "auto"
    odoo_login: Annotated[
        str, msgspec.Meta(min_length=1, description="Odoo login of the integration user")
    ] = "admin"
    odoo_password: Annotated[
        str | None,
        msgspec.Meta(description="Password of the integration user (jsonrpc); secret"),
        SECRET,
    ] = "admin"
    odoo_api_key: Annotated[
        str | None,
        msgspec.Meta(
            description="API key of the integration user: required for json2, preferred over "
            "the password for jsonrpc; secret"
        ),
        SECRET,
    ] = None
    odoo_version: Annotated[
        Annotated[int, msgspec.Meta(ge=16, le=19)] | None,
        msgspec.Meta(
            description="Odoo major version; empty = ask /web/webclient/version_info",
        ),
    ] = None
    odoo_timeout_s: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            description="Longest wait for one Odoo call; keep it above 30 s, the time Odoo "
            "itself may spend retrying a lock conflict",
        ),
    ] = 60.0
    odoo_max_in_flight: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=64,
            description="Odoo calls in flight at once, at most; the gateway starts at 4 (or "
            "this, if lower) and adapts: one more per round of fast answers, half on a lock "
            "conflict, a timeout or a slow call",
        ),
    ] = 16
    odoo_slow_call_s: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            description="An Odoo call slower than this counts as Odoo being overwhelmed (the "
            "calls in flight are halved)",
        ),
    ] = 10.0
    odoo_login_retry_s: Annotated[
        float,
        msgspec.Meta(gt=0, description="Seconds between login attempts while Odoo refuses them"),
    ] = 30.0
    odoo_webhook_token: Annotated[
        Annotated[str, msgspec.Meta(min_length=16)] | None,
        msgspec.Meta(
            description="Secret path token of POST /webhooks/odoo/<token>; empty = webhooks "
            "refused (the poll still finds every order); secret",
            extra={"expected": "a random text of at least 16 characters (or empty for none)"},
        ),
        SECRET,
    ] = None
    odoo_webhook_networks: Annotated[
        tuple[str, ...],
        msgspec.Meta(
            description="Source networks allowed to send webhooks (CIDRs, comma-separated); "
            "empty = any"
        ),
    ] = ()
    odoo_webhook_recheck_s: Annotated[
        tuple[Annotated[float, msgspec.Meta(ge=0)], ...],
        msgspec.Meta(
            description="Delays at which a webhook's picking that is not ready yet is read "
            "again (Odoo 17-18 announce changes before they commit)"
        ),
    ] = (1.0, 5.0)
    odoo_webhook_backlog: Annotated[
        int,
        msgspec.Meta(ge=1, description="Webhooks being processed at once before 503 answers"),
    ] = 256
    odoo_poll_interval_s: Annotated[
        float,
        msgspec.Meta(gt=0, description="Seconds between polls for ready and cancelled deliveries"),
    ] = 30.0
    odoo_poll_first_after_s: Annotated[
        Annotated[float, msgspec.Meta(ge=0)] | None,
        msgspec.Meta(
            description="Seconds from start to the first poll, catching up on what changed "
            "while the gateway was down; empty = one poll interval"
        ),
    ] = 0.0
    odoo_poll_overlap_s: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            description="Each poll looks this far behind its watermark: Odoo stamps write_date "
            "when a transaction starts, so a slow one can commit behind a faster one",
        ),
    ] = 5.0
    odoo_poll_page_size: Annotated[
        int, msgspec.Meta(ge=1, le=1000, description="Pickings read per poll request")
    ] = 100
    product_sync_interval_s: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            description="Seconds from one finished product master sync run to the next "
            "(ProductsChanged pages of the products written since); 0 = no runs",
        ),
    ] = 0.0
    product_sync_page_size: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=1000,
            description="Products per ProductsChanged page (a page is one NATS message: at most "
            "1,000 keeps it well under the server's 1 MB payload limit)",
        ),
    ] = 500
    product_sync_overlap_s: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            description="Each product sync run reads this far behind the last one's end "
            "(products committed late); they are sent again",
        ),
    ] = 60.0
    express_promised_within_h: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            description="An order whose delivery is promised within this many hours of its "
            "release goes on the express lane, ahead of any backlog (as do urgent pickings and "
            "express, next-day and same-day orders); 0 = by priority and service level only",
        ),
    ] = 24.0
    odoo_ops_login: Annotated[
        str,
        msgspec.Meta(min_length=1, description="Odoo login that gets the to-dos of exceptions"),
    ] = "ops"
    odoo_carrier_names: Annotated[
        dict[str, str],
        msgspec.Meta(
            description='Carrier code -> Odoo delivery method name, as JSON ({"dhl": "DHL '
            'Express"}); unmapped codes are matched by name'
        ),
    ] = {}

    odoo_currency: Annotated[
        str,
        msgspec.Meta(
            pattern="^[A-Z]{3}$",
            description="ISO 4217 code of the currency Odoo invoices in (the company's), given "
            "with the amounts of credit notes, e.g. EUR",
            extra={"expected": "a three-letter currency code such as EUR"},
        ),
    ] = "EUR"
    inventory_approval_above: Annotated[
        Annotated[float, msgspec.Meta(ge=0)] | None,
        msgspec.Meta(
            description="A warehouse stock adjustment larger than this (either way, in its "
            "unit of measure) is not applied in Odoo: it waits for an operator's approval "
            "(ApproveInventoryAdjustment); empty = every adjustment is applied at once",
        ),
    ] = 100.0
    inventory_snapshot_page_size: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=1000,
            description="Odoo stock quants read per InventorySnapshotTaken page when the "
            "orchestrator asks for an inventory snapshot (one NATS message each)",
        ),
    ] = 500
    odoo_inventory_locations: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="Warehouse location code -> Odoo stock location (its barcode or full "
            'name), as JSON ({"PICK-01": "WH-STOCK"}); unmapped codes are looked up as they are'
        ),
    ] = {}

    def __post_init__(self) -> None:
        if self.odoo_protocol == "json2" and not self.odoo_api_key:
            raise ValueError(
                "WAYBILL_ODOO_PROTOCOL=json2 needs WAYBILL_ODOO_API_KEY (an API key of "
                "the integration user)"
            )
        if self.odoo_protocol != "json2" and not (self.odoo_password or self.odoo_api_key):
            raise ValueError(
                f"WAYBILL_ODOO_PROTOCOL={self.odoo_protocol} needs WAYBILL_ODOO_PASSWORD or "
                "WAYBILL_ODOO_API_KEY"
            )
        version = self.odoo_version
        if self.odoo_protocol == "json2" and version is not None and version < 19:
            raise ValueError(
                f"WAYBILL_ODOO_VERSION={version} has no JSON-2 API (Odoo 19+): "
                "set WAYBILL_ODOO_PROTOCOL=jsonrpc"
            )
        for network in self.odoo_webhook_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"WAYBILL_ODOO_WEBHOOK_NETWORKS has {network!r}, which is not a network: "
                    "use CIDRs such as 10.0.0.0/8,192.168.1.5"
                ) from None

    @property
    def odoo_secret(self) -> str:
        """What proves who the gateway is: the API key when set, else the password."""
        return self.odoo_api_key or self.odoo_password or ""

    @property
    def allowed_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The parsed webhook source networks (empty: any source)."""
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.odoo_webhook_networks)
