"""Are Odoo's automation rules sending ready deliveries to this gateway? (Odoo 17+)

Odoo 17 made automation rules (``base.automation``: ``model_name``,
``trigger``, ``trigger_field_ids``, ``filter_domain``, ``active``,
``action_server_ids``; addons/base_automation/models/base_automation.py)
run server actions, of which ``state='webhook'`` POSTs to ``webhook_url``
(odoo/addons/base/models/ir_actions.py, 17.0-19.0). The doctor reads them
and says, one line per problem, what to change: no rule, an archived rule,
one sending elsewhere, one that never fires when a delivery becomes ready.

Only the path of a rule's URL is judged (it must end in this gateway's
webhook route and token): the gateway does not know the address Odoo reaches
it by. The fields a rule sends are not judged either: the gateway reads only
``_model`` and ``_id``, which Odoo always sends, and re-reads the record.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_errors import OdooRefused, OdooServerError
from waybill_odoo_gateway.setup_findings import Finding
from waybill_odoo_gateway.webhook_address import (
    WEBHOOK_PATH,
    masked_url,
    token_matches,
    webhook_token_of,
)
from waybill_runtime.http.redaction import REDACTED

__all__ = ["check_webhook_rules"]

ITEM = "webhooks"
MENU = "Settings > Technical > Automation Rules"
# Triggers that run when a picking is written (base_automation.py WRITE_TRIGGERS, 17.0+)
# and can see its state change; on_state_set filters on one state value.
_STATE_TRIGGERS = ("on_create_or_write", "on_write", "on_state_set")
# What a delivery the gateway releases looks like when its rule must fire.
_READY = {"state": "assigned", "picking_type_code": "outgoing"}
_GATEWAY_URL = "https://<this gateway>" + WEBHOOK_PATH.replace("{token}", REDACTED)
_HOW = (
    f"on Transfer (stock.picking), trigger 'On save' with trigger field Status (state), "
    f"action 'Send Webhook Notification' to {_GATEWAY_URL} ({REDACTED} being "
    "WAYBILL_ODOO_WEBHOOK_TOKEN)"
)


@dataclass(frozen=True)
class _WebhookRule:
    """One rule's webhook action, as the doctor judges it."""

    name: str
    model: str
    active: bool
    trigger: str
    trigger_fields: tuple[str, ...]
    filter_domain: str
    url: str


async def check_webhook_rules(odoo: OdooClient, token: str, login: str) -> list[Finding]:
    """The ``webhooks`` findings: fine, one line per problem, or a warning when the
    integration user may not read the rules."""
    try:
        rules = await _webhook_rules(odoo)
    except OdooRefused:
        return [
            Finding(
                ITEM,
                False,
                f"the integration user {login!r} may not read Odoo's automation rules (only "
                "Settings / Administration may), so they were not checked: check in "
                f"{MENU} that an active rule sends deliveries to this gateway, {_HOW}",
                warning=True,
            )
        ]
    except OdooServerError as failed:
        line = f"could not read Odoo's automation rules ({failed}): check them in {MENU}"
        return [Finding(ITEM, False, line, warning=True)]
    ours = [r for r in rules if _points_here(r, token)]
    good = [r for r in ours if r.active and r.model == "stock.picking" and not _misfires(r)]
    if good:
        rule = good[0]
        return [
            Finding(
                ITEM,
                True,
                f"the rule {rule.name!r} sends stock.picking to this gateway "
                f"({masked_url(rule.url)}) when a delivery's state changes",
            )
        ]
    problems = [_line(r, token) for r in rules if r.model == "stock.picking"]
    lines = [line for line in problems if line is not None]
    if not lines:
        lines = [
            "no active automation rule sends stock.picking to this gateway: create one in "
            f"{MENU} {_HOW}"
        ]
    return [Finding(ITEM, False, line) for line in lines]


async def _webhook_rules(odoo: OdooClient) -> list[_WebhookRule]:
    """Every rule's webhook actions, archived rules included."""
    rules = await odoo.call(
        "base.automation",
        "search_read",
        context={"active_test": False},
        domain=[],
        fields=["name", "model_name", "active", "trigger", "trigger_field_ids", "filter_domain",
                "action_server_ids"],
    )  # fmt: skip
    action_ids = sorted({i for rule in rules for i in _ids(rule.get("action_server_ids"))})
    actions = await odoo.call(
        "ir.actions.server",
        "search_read",
        domain=[("id", "in", action_ids), ("state", "=", "webhook")],
        fields=["name", "webhook_url"],
    )
    field_ids = sorted({i for rule in rules for i in _ids(rule.get("trigger_field_ids"))})
    names = await odoo.call(
        "ir.model.fields", "search_read", domain=[("id", "in", field_ids)], fields=["name"]
    )
    field_names = {row["id"]: str(row.get("name")) for row in names}
    by_id = {action["id"]: action for action in actions}
    return [
        _WebhookRule(
            name=str(rule.get("name") or by_id[action_id].get("name")),
            model=str(rule.get("model_name") or ""),
            active=bool(rule.get("active")),
            trigger=str(rule.get("trigger") or ""),
            trigger_fields=tuple(
                field_names.get(i, "") for i in _ids(rule.get("trigger_field_ids"))
            ),
            filter_domain=str(rule.get("filter_domain") or ""),
            url=str(by_id[action_id].get("webhook_url") or ""),
        )
        for rule in rules
        for action_id in _ids(rule.get("action_server_ids"))
        if action_id in by_id
    ]


def _ids(raw: Any) -> list[int]:
    return [i for i in raw if isinstance(i, int)] if isinstance(raw, list) else []


def _points_here(rule: _WebhookRule, token: str) -> bool:
    given = webhook_token_of(rule.url)
    return given is not None and token_matches(given, token)


def _misfires(rule: _WebhookRule) -> str | None:
    """Why the rule does not fire when a delivery becomes ready, or None."""
    if rule.trigger not in _STATE_TRIGGERS:
        return (
            f"its trigger is {rule.trigger!r}, which does not run when a delivery's state "
            "changes: set the trigger to 'On save' with trigger field Status (state)"
        )
    if rule.trigger_fields and "state" not in rule.trigger_fields:
        return (
            f"it fires only when {', '.join(rule.trigger_fields)} change: add Status "
            "(state) to its trigger fields"
        )
    excluded = _excluded(rule.filter_domain)
    if excluded:
        return (
            f"its domain {rule.filter_domain} leaves out ready deliveries ({excluded}): "
            "allow state 'assigned' and type 'outgoing'"
        )
    return None


def _excluded(filter_domain: str) -> str | None:
    """Which of the ready delivery's values the rule's domain refuses, or None.

    Only a plain list of terms (all to be met) is judged; a domain with ``|``,
    ``!`` or anything but literals is taken as fine rather than guessed at.
    """
    try:
        domain = ast.literal_eval(filter_domain) if filter_domain.strip() else []
    except (ValueError, SyntaxError):
        return None
    if not isinstance(domain, list) or any(not isinstance(t, list | tuple) for t in domain):
        return None
    refused = [
        f"{field} {value!r}"
        for field, operator, allowed in (t for t in domain if len(t) == 3)
        if (value := _READY.get(field)) is not None and not _admits(operator, allowed, value)
    ]
    return ", ".join(refused) or None


def _admits(operator: str, allowed: Any, value: str) -> bool:
    listed = allowed if isinstance(allowed, Sequence) and not isinstance(allowed, str) else ()
    checks = {
        "=": allowed == value,
        "!=": allowed != value,
        "in": value in listed,
        "not in": value not in listed,
    }
    return bool(checks.get(operator, True))


def _line(rule: _WebhookRule, token: str) -> str | None:
    """The problem of a stock.picking webhook rule, with its fix; None if it is not one
    the gateway needs to hear about."""
    here = _points_here(rule, token)
    if here and not rule.active:
        return f"the rule {rule.name!r} is archived: unarchive it in {MENU} (filter Archived)"
    if not rule.active:
        return None  # archived and sending elsewhere: not meant for this gateway
    if not here:
        given = webhook_token_of(rule.url)
        where = (
            f"{masked_url(rule.url)} with another token than WAYBILL_ODOO_WEBHOOK_TOKEN"
            if given is not None
            else f"another URL, {masked_url(rule.url) or '(none)'}"
        )
        return (
            f"the rule {rule.name!r} sends stock.picking to {where}: set its action's "
            f"Webhook URL to {_GATEWAY_URL} ({REDACTED} being WAYBILL_ODOO_WEBHOOK_TOKEN)"
        )
    why = _misfires(rule)
    return None if why is None else f"the rule {rule.name!r} sends to this gateway but {why}"
