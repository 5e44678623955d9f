"""The Odoo doctor: is this Odoo database set up the way the gateway needs it?

Each check connects with the configured credentials and gives one
:class:`Finding`: what is fine, or what is wrong and what to do, in one line.
The gateway runs them after each login (and every hour) for its readiness
detail and the ``waybill_odoo_api_key_days_left`` metric; ``waybill odoo
check`` runs them once and prints them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from waybill_odoo_gateway.automation_rules import check_webhook_rules
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_errors import OdooRefused, OdooServerError
from waybill_odoo_gateway.odoo_values import parse_datetime, text
from waybill_odoo_gateway.setup_findings import Finding

__all__ = ["API_KEY_WARNING_DAYS", "Finding", "SetupReport", "check_setup"]

log = logging.getLogger("waybill.odoo.setup")

API_KEY_WARNING_DAYS = 14
"""Days before an API key expires from which the gateway warns."""

# The fields the gateway reads and writes on pickings that only the delivery
# module adds; without them every picking read fails with "Invalid field".
_DELIVERY_FIELDS = ("carrier_id", "carrier_tracking_ref", "carrier_price")


@dataclass(frozen=True)
class SetupReport:
    """Every finding of one check, and the API key's days left when Odoo says."""

    findings: tuple[Finding, ...] = ()
    api_key_days_left: float | None = None

    @property
    def blocking(self) -> bool:
        return any(f.blocking for f in self.findings)

    @property
    def problems(self) -> tuple[Finding, ...]:
        """What needs doing (warnings are said, but nothing needs doing for them)."""
        return tuple(f for f in self.findings if not f.ok and not f.warning)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.warning)


async def check_setup(odoo: OdooClient, settings: OdooGatewaySettings) -> SetupReport:
    """Run every check against the logged-in client (call ``connect`` first)."""
    findings = [_version(odoo, settings)]
    findings.append(await _delivery_fields(odoo))
    findings.append(await _access(odoo, settings))
    findings += await _webhooks(odoo, settings)
    key, days_left = await _api_key(odoo, settings)
    if key is not None:
        findings.append(key)
    findings += await _interfering_settings(odoo)
    return SetupReport(tuple(findings), days_left)


def _version(odoo: OdooClient, settings: OdooGatewaySettings) -> Finding:
    dialect = odoo.dialect
    protocol = getattr(odoo, "protocol", settings.odoo_protocol)
    if dialect.jsonrpc_deprecated and protocol == "jsonrpc":
        return Finding(
            "protocol",
            False,
            f"Odoo {dialect.series} over JSON-RPC, which Odoo 19 deprecates and 20 removes: "
            "create an API key for the integration user, set WAYBILL_ODOO_API_KEY and "
            "WAYBILL_ODOO_PROTOCOL=auto (or json2)",
        )
    return Finding("protocol", True, f"Odoo {dialect.series} over {protocol}")


async def _delivery_fields(odoo: OdooClient) -> Finding:
    module = odoo.dialect.delivery_module
    fields = await odoo.call("stock.picking", "fields_get", attributes=["type"])
    missing = [name for name in _DELIVERY_FIELDS if name not in (fields or {})]
    if missing:
        return Finding(
            "modules",
            False,
            f"transfers have no {', '.join(missing)}: install the {module!r} module in Odoo "
            "(Apps), which adds the carrier, tracking reference and shipping cost",
            blocking=True,
        )
    return Finding("modules", True, f"stock and {module} installed")


# What the gateway does, per model: read pickings and write them (tracking, validation),
# write moves (done quantities), post notes, schedule to-dos, read carriers.
_ACCESS = (
    ("stock.picking", "write"),
    ("stock.move", "write"),
    ("mail.activity", "create"),
    ("delivery.carrier", "read"),
    ("res.users", "read"),
)


async def _allowed(odoo: OdooClient, model: str, operation: str) -> bool:
    if odoo.dialect.major >= 18:  # odoo/models.py: has_access (18+), check_access_rights before
        return bool(await odoo.call(model, "has_access", [], operation=operation))
    return bool(
        await odoo.call(model, "check_access_rights", operation=operation, raise_exception=False)
    )


async def _access(odoo: OdooClient, settings: OdooGatewaySettings) -> Finding:
    denied = []
    for model, operation in _ACCESS:
        try:
            allowed = await _allowed(odoo, model, operation)
        except OdooRefused:
            allowed = False
        except OdooServerError:
            continue  # a model this database does not have: the other checks say so
        if not allowed:
            denied.append(f"{operation} {model}")
    if denied:
        return Finding(
            "access",
            False,
            f"the integration user {settings.odoo_login!r} may not {', '.join(denied)}: give it "
            "the Inventory / User and Sales / User groups in Odoo (Settings > Users)",
            blocking=True,
        )
    return Finding("access", True, f"{settings.odoo_login!r} may do all the gateway does")


async def _installed(odoo: OdooClient, names: Sequence[str]) -> set[str] | None:
    try:
        rows = await odoo.call(
            "ir.module.module",
            "search_read",
            domain=[("name", "in", list(names)), ("state", "=", "installed")],
            fields=["name"],
        )
    except (OdooRefused, OdooServerError):
        return None  # the integration user may not read modules: nothing to say
    return {str(row.get("name")) for row in rows}


async def _webhooks(odoo: OdooClient, settings: OdooGatewaySettings) -> list[Finding]:
    token = text(settings.odoo_webhook_token)
    if token is None:
        return []
    if not odoo.dialect.has_webhook_action:
        # Nothing is broken (the poll does the work, as on every 16), so a warning: the
        # local stack sets a token whatever the version.
        return [
            Finding(
                "webhooks",
                False,
                f"WAYBILL_ODOO_WEBHOOK_TOKEN is set but Odoo {odoo.dialect.series} cannot send "
                "webhooks (the 'Send Webhook Notification' action needs Odoo 17+): the poll "
                "finds every order (WAYBILL_ODOO_POLL_INTERVAL_S); unset the token, or "
                "upgrade Odoo to 17 or later for webhooks",
                warning=True,
            )
        ]
    installed = await _installed(odoo, ["base_automation"])
    if installed is not None and "base_automation" not in installed:
        return [
            Finding(
                "webhooks",
                False,
                "WAYBILL_ODOO_WEBHOOK_TOKEN is set but Odoo has no 'base_automation' module: "
                "install Automation Rules and add the webhook rules (the poll alone finds "
                "orders until then)",
            )
        ]
    return await check_webhook_rules(odoo, token, settings.odoo_login)


async def _api_key(
    odoo: OdooClient, settings: OdooGatewaySettings
) -> tuple[Finding | None, float | None]:
    if not settings.odoo_api_key or not odoo.dialect.api_keys_expire or odoo.uid is None:
        return None, None
    try:
        keys = await odoo.call(
            "res.users.apikeys",
            "search_read",
            domain=[("user_id", "=", odoo.uid)],
            fields=["name", "expiration_date"],
        )
    except (OdooRefused, OdooServerError) as refused:
        line = f"cannot read the API key's expiry ({refused}): check it in Odoo (Preferences)"
        return Finding("api key", False, line), None
    # Odoo keeps only a hash of each key: the soonest expiry of the user's keys is
    # the one that may be ours.
    expiries = [e for e in (parse_datetime(k.get("expiration_date")) for k in keys) if e]
    if not expiries:
        return Finding("api key", True, "API key never expires"), None
    soonest = min(expiries)
    days = (soonest - datetime.now(UTC)).total_seconds() / 86400
    on = soonest.strftime("%Y-%m-%d")
    if days < API_KEY_WARNING_DAYS:
        line = (
            f"API key expires in {int(days)} days (on {on}): renew it now: create a new key "
            f"for {settings.odoo_login!r} in Odoo (Preferences > Account Security) and set "
            "WAYBILL_ODOO_API_KEY"
        )
        return Finding("api key", False, line), days
    return Finding("api key", True, f"API key valid until {on} ({int(days)} days)"), days


async def _interfering_settings(odoo: OdooClient) -> list[Finding]:
    """Settings the gateway copes with, said so that nobody is surprised."""
    findings: list[Finding] = []
    if odoo.dialect.major <= 18:
        sms = await _flag(odoo, "res.company", "stock_move_sms_validation")
        if sms:
            findings.append(
                Finding(
                    "sms", True, "SMS confirmation on deliveries is on: validated with skip_sms"
                )
            )
    if odoo.dialect.major >= 17:
        printing = await _flag(odoo, "stock.picking.type", "auto_print_delivery_slip")
        if printing:
            findings.append(
                Finding(
                    "auto-print",
                    True,
                    "delivery slips print on validation: the print action is taken as done",
                )
            )
    return findings


async def _flag(odoo: OdooClient, model: str, field: str) -> bool:
    try:
        return bool(await odoo.call(model, "search_count", domain=[(field, "=", True)]))
    except (OdooRefused, OdooServerError):
        return False
