"""Outgoing webhooks, sent the way an Odoo automation rule's "Send Webhook Notification" does.

The rules are records, as in Odoo 17+: ``base.automation`` (``model_id``,
``trigger``, ``trigger_field_ids``, ``filter_domain``, ``active``,
``action_server_ids``; addons/base_automation/models/base_automation.py
17.0-19.0) whose ``ir.actions.server`` actions of ``state='webhook'`` POST
to their ``webhook_url`` the fields of ``webhook_field_ids``
(odoo/addons/base/models/ir_actions.py 17.0-19.0, ``_run_action_webhook``).
What is sent is decided by those records at each change, so an archived
rule, a rule on another model or trigger, or an action with another URL
changes what leaves; an integration can read them over RPC like any model
(only Settings / Administration users may, as in Odoo).

Per record, a JSON POST whose keys are sorted: ``_action`` ("<action
name>(#<id>)"), ``_id``, ``_model`` and the chosen fields read with
``load=None`` (many2one as bare ids, x2many as id lists, empty values
``false``, dates as strings; ``read`` adds ``id`` too). One second timeout,
one attempt, no signature. Delivery goes through the sandboxes' shared
:class:`~waybill_sandboxes.delivery.WebhookSender`, whose lossy / duplicate /
reorder modes stand in for webhooks Odoo loses or sends early.
Odoo 16 has no such action, so it sends nothing.
"""

from __future__ import annotations

import ast
import json
from typing import Any

import msgspec

from waybill_sandboxes.delivery import DeliveryPolicy, SentWebhook, WebhookSender
from waybill_sandboxes.odoo.domain import evaluate, parse_domain
from waybill_sandboxes.odoo.registry import RecordChange, Registry

# What Odoo's server action does: requests.post(..., timeout=1), no retry.
ODOO_DELIVERY = DeliveryPolicy(max_attempts=1, timeout_s=1.0)

_SUPERUSER = 1
# base_automation.py (17.0+) CREATE_TRIGGERS / WRITE_TRIGGERS, of those the sandbox runs:
# the record-change triggers. Timed, UI-change, deletion and message triggers never fire.
_ON_CREATE = frozenset({"on_create", "on_create_or_write", "on_state_set"})
_ON_WRITE = frozenset({"on_write", "on_create_or_write", "on_state_set"})


class WebhookRule(msgspec.Struct, frozen=True, kw_only=True):
    """An automation rule with one "Send Webhook Notification" action, in short."""

    name: str  # the rule's and its server action's name, shown in ``_action``
    model: str
    trigger_fields: list[str] = []  # fire when one of these changes; empty: on any change
    domain: list[Any] = []  # the record must match this after the change
    fields: list[str] = []  # the fields sent beside _action, _id and _model
    trigger: str = "on_create_or_write"
    active: bool = True
    url: str | None = None  # the action's webhook_url; None: the sandbox's webhook URL


def default_rules() -> list[WebhookRule]:
    """The rules a Waybill-connected Odoo is told to set up: picking ready, order cancelled."""
    return [
        WebhookRule(
            name="Waybill: delivery ready",
            model="stock.picking",
            trigger_fields=["state"],
            domain=[["state", "=", "assigned"], ["picking_type_code", "=", "outgoing"]],
            fields=[
                "name", "origin", "state", "picking_type_code", "partner_id", "sale_id",
                "scheduled_date", "carrier_id", "move_ids", "write_date",
            ],
        ),
        WebhookRule(
            name="Waybill: sale order cancelled",
            model="sale.order",
            trigger_fields=["state"],
            domain=[["state", "=", "cancel"]],
            fields=["name", "state", "client_order_ref", "partner_id", "picking_ids", "write_date"],
        ),
    ]  # fmt: skip


def install_field_records(registry: Registry) -> None:
    """One ``ir.model.fields`` row per simulated field, as Odoo keeps them (17+ only:
    the rules' trigger and webhook fields point at them)."""
    for model, spec in registry.models.items():
        [model_id] = registry.search("ir.model", [("model", "=", model)])
        registry.create(
            "ir.model.fields",
            [
                {"name": name, "model": model, "model_id": model_id, "ttype": field.type,
                 "field_description": field.string}
                for name, field in spec.fields.items()
            ],
            uid=_SUPERUSER,
        )  # fmt: skip


class OdooWebhooks:
    """The automation rules of one sandbox (records); their POSTs go through a shared sender."""

    def __init__(self, registry: Registry, *, url: str | None = None) -> None:
        self._registry = registry
        self._sent = 0
        self.sender = WebhookSender(sign=lambda body: {}, url=url, policy=ODOO_DELIVERY)
        registry.listeners.append(self._on_change)

    @property
    def supported(self) -> bool:
        """Whether this Odoo version has the webhook server action (17+)."""
        return self._registry.version.has_webhooks

    # ------------------------------------------------------------- the records
    def rules(self) -> list[WebhookRule]:
        """The active rules' webhook actions, in the order they were added."""
        if not self.supported:
            return []
        return [
            self._as_rule(rule_id, action_id)
            for rule_id in self._registry.all_ids("base.automation")
            if self._value("base.automation", rule_id, "active")
            for action_id in self._webhook_actions(rule_id)
        ]

    def add_rule(self, rule: WebhookRule) -> int:
        """Create a rule and its webhook action; returns the action's id (``#<id>``)."""
        if not self.supported:
            raise ValueError(
                f"Odoo {self._registry.version.major} has no webhook action: "
                "choose Odoo 17 or newer, or poll"
            )
        registry = self._registry
        if rule.model not in registry.models:
            raise ValueError(f"unknown model {rule.model!r} in webhook rule {rule.name!r}")
        for name in [*rule.fields, *rule.trigger_fields]:
            if name not in registry.models[rule.model].fields:
                raise ValueError(f"unknown field {rule.model}.{name} in webhook rule {rule.name!r}")
        try:
            parse_domain(registry, rule.model, rule.domain)
        except Exception as invalid:
            raise ValueError(f"invalid domain in webhook rule {rule.name!r}: {invalid}") from None
        triggers = {
            key for key, _label in registry.spec("base.automation").fields["trigger"].selection
        }
        if rule.trigger not in triggers:
            raise ValueError(f"unknown trigger {rule.trigger!r} in webhook rule {rule.name!r}")
        [model_id] = registry.search("ir.model", [("model", "=", rule.model)])
        with registry.transaction():
            [rule_id] = registry.create(
                "base.automation",
                [{
                    "name": rule.name, "model_id": model_id, "trigger": rule.trigger,
                    "trigger_field_ids": [(6, 0, self._field_ids(rule.model, rule.trigger_fields))],
                    # Odoo keeps the domain as the text of a Python literal.
                    "filter_domain": repr([tuple(term) if isinstance(term, list) else term
                                           for term in rule.domain]) if rule.domain else False,
                    "active": rule.active,
                }],
                uid=_SUPERUSER,
            )  # fmt: skip
            [action_id] = registry.create(
                "ir.actions.server",
                [{
                    "name": rule.name, "model_id": model_id, "usage": "base_automation",
                    "state": "webhook", "base_automation_id": rule_id,
                    "webhook_url": rule.url if rule.url is not None else self.sender.url or False,
                    "webhook_field_ids": [(6, 0, self._field_ids(rule.model, rule.fields))],
                }],
                uid=_SUPERUSER,
            )  # fmt: skip
        return action_id

    def replace_rules(self, rules: list[WebhookRule]) -> None:
        """Use exactly these rules from now on (all checked before any is replaced)."""
        registry = self._registry
        with registry.transaction():  # a bad rule undoes the whole replacement
            actions = registry.search("ir.actions.server", [("usage", "=", "base_automation")])
            registry.unlink("ir.actions.server", actions, _SUPERUSER)
            registry.unlink("base.automation", registry.all_ids("base.automation"), _SUPERUSER)
            for rule in rules:
                self.add_rule(rule)

    def find(self, name: str) -> tuple[int, int]:
        """The ids of the rule named ``name`` (archived too) and of its webhook action, to
        change the records as someone would in Odoo; KeyError when there is none."""
        for rule_id in self._registry.all_ids("base.automation"):
            actions = self._webhook_actions(rule_id)
            if self._value("base.automation", rule_id, "name") == name and actions:
                return rule_id, actions[0]
        raise KeyError(f"no automation rule {name!r} with a webhook action")

    def deliveries(self) -> list[SentWebhook]:
        """Every webhook handed to delivery so far, oldest first, with its outcome."""
        return list(self.sender.records)

    def _value(self, model: str, record_id: int, name: str) -> Any:
        return self._registry.value(model, record_id, name)

    def _field_ids(self, model: str, names: list[str]) -> list[int]:
        return [
            self._registry.search("ir.model.fields", [("model", "=", model), ("name", "=", n)])[0]
            for n in names
        ]

    def _field_names(self, ids: list[int]) -> list[str]:
        return [str(self._value("ir.model.fields", i, "name")) for i in ids]

    def _webhook_actions(self, rule_id: int) -> list[int]:
        return [
            action_id
            for action_id in self._value("base.automation", rule_id, "action_server_ids")
            if self._value("ir.actions.server", action_id, "state") == "webhook"
        ]

    def _as_rule(self, rule_id: int, action_id: int) -> WebhookRule:
        def rule(name: str) -> Any:
            return self._value("base.automation", rule_id, name)

        def action(name: str) -> Any:
            return self._value("ir.actions.server", action_id, name)

        domain = rule("filter_domain")
        return WebhookRule(
            name=action("name"),
            model=rule("model_name"),
            trigger_fields=self._field_names(rule("trigger_field_ids")),
            domain=[list(term) if isinstance(term, tuple) else term
                    for term in ast.literal_eval(domain)] if domain else [],
            fields=self._field_names(action("webhook_field_ids")),
            trigger=rule("trigger"),
            active=bool(rule("active")),
            url=action("webhook_url") or None,
        )  # fmt: skip

    # ------------------------------------------------------------- firing
    def _on_change(self, change: RecordChange) -> None:
        if not self.supported or change.model in ("base.automation", "ir.actions.server"):
            return
        triggers = _ON_CREATE if change.created else _ON_WRITE
        for rule_id in self._registry.all_ids("base.automation"):
            if not self._value("base.automation", rule_id, "active"):
                continue  # archived: "hidden and will not be executed"
            if self._value("base.automation", rule_id, "model_name") != change.model:
                continue
            if self._value("base.automation", rule_id, "trigger") not in triggers:
                continue
            for action_id in self._webhook_actions(rule_id):
                rule = self._as_rule(rule_id, action_id)
                if rule.trigger_fields and not change.changed.intersection(rule.trigger_fields):
                    continue
                tree = parse_domain(self._registry, rule.model, rule.domain)
                if evaluate(self._registry, rule.model, change.record_id, tree):
                    self._send(f"{rule.name}(#{action_id})", rule, change.record_id)

    def _send(self, action: str, rule: WebhookRule, record_id: int) -> None:
        # The rule runs and reads the record inside the transaction. Up to 18 the POST
        # leaves at once (even if the transaction then rolls back); from 19 it waits
        # for the commit.
        self._sent += 1
        body = self._payload(action, rule, record_id)
        event_id = f"odoo-webhook-{self._sent}"

        def send() -> None:
            self.sender.enqueue(event_id, action, body, url=rule.url)

        if self._registry.version.webhooks_after_commit:
            self._registry.after_commit(send)
        else:
            send()

    def _payload(self, action: str, rule: WebhookRule, record_id: int) -> bytes:
        values: dict[str, Any] = {"_action": action, "_id": record_id, "_model": rule.model}
        if rule.fields:
            # Odoo reads the fields with load=None, which adds "id" too.
            values.update(self._registry.read(rule.model, [record_id], rule.fields, load=None)[0])
        return json.dumps(values, sort_keys=True, default=str).encode()
