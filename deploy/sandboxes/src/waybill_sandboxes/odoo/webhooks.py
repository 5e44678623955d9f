"""Outgoing webhooks, sent the way an Odoo automation rule's "Send Webhook Notification" does.

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

import json
from typing import Any

import msgspec

from waybill_sandboxes.delivery import DeliveryPolicy, SentWebhook, WebhookSender
from waybill_sandboxes.odoo.domain import evaluate, parse_domain
from waybill_sandboxes.odoo.registry import RecordChange, Registry

# What Odoo's server action does: requests.post(..., timeout=1), no retry.
ODOO_DELIVERY = DeliveryPolicy(max_attempts=1, timeout_s=1.0)


class WebhookRule(msgspec.Struct, frozen=True, kw_only=True):
    """An automation rule with a "Send Webhook Notification" action."""

    name: str  # the server action's name, shown in ``_action``
    model: str
    trigger_fields: list[str] = []  # fire when one of these changes; empty: on any change
    domain: list[Any] = []  # the record must match this after the change
    fields: list[str] = []  # the fields sent beside _action, _id and _model


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


class OdooWebhooks:
    """The automation rules of one sandbox; their POSTs go through a shared sender."""

    def __init__(self, registry: Registry, *, url: str | None = None) -> None:
        self._registry = registry
        self._rules: list[tuple[int, WebhookRule]] = []
        self._next_action_id = 1
        self._sent = 0
        self.sender = WebhookSender(sign=lambda body: {}, url=url, policy=ODOO_DELIVERY)
        registry.listeners.append(self._on_change)

    @property
    def supported(self) -> bool:
        """Whether this Odoo version has the webhook server action (17+)."""
        return self._registry.version.has_webhooks

    def rules(self) -> list[WebhookRule]:
        """The active rules, in the order they were added."""
        return [rule for _action_id, rule in self._rules]

    def add_rule(self, rule: WebhookRule) -> int:
        """Activate a rule; returns its server action id (the ``#<id>`` in ``_action``)."""
        if not self.supported:
            raise ValueError(
                f"Odoo {self._registry.version.major} has no webhook action: "
                "choose Odoo 17 or newer, or poll"
            )
        if rule.model not in self._registry.models:
            raise ValueError(f"unknown model {rule.model!r} in webhook rule {rule.name!r}")
        for name in [*rule.fields, *rule.trigger_fields]:
            if name not in self._registry.models[rule.model].fields:
                raise ValueError(f"unknown field {rule.model}.{name} in webhook rule {rule.name!r}")
        try:
            parse_domain(self._registry, rule.model, rule.domain)
        except Exception as invalid:
            raise ValueError(f"invalid domain in webhook rule {rule.name!r}: {invalid}") from None
        action_id = self._next_action_id
        self._next_action_id += 1
        self._rules.append((action_id, rule))
        return action_id

    def replace_rules(self, rules: list[WebhookRule]) -> None:
        """Use exactly these rules from now on (all checked before any is replaced)."""
        previous, self._rules = self._rules, []
        try:
            for rule in rules:
                self.add_rule(rule)
        except Exception:
            self._rules = previous
            raise

    def deliveries(self) -> list[SentWebhook]:
        """Every webhook handed to delivery so far, oldest first, with its outcome."""
        return list(self.sender.records)

    def _on_change(self, change: RecordChange) -> None:
        for action_id, rule in self._rules:
            if rule.model != change.model:
                continue
            if rule.trigger_fields and not change.changed.intersection(rule.trigger_fields):
                continue
            tree = parse_domain(self._registry, rule.model, rule.domain)
            if evaluate(self._registry, rule.model, change.record_id, tree):
                # The rule runs and reads the record inside the transaction. Up to 18
                # the POST leaves at once (even if the transaction then rolls back);
                # from 19 it waits for the commit.
                self._sent += 1
                action = f"{rule.name}(#{action_id})"
                body = self._payload(action, rule, change.record_id)
                event_id = f"odoo-webhook-{self._sent}"

                def send(
                    event_id: str = event_id, action: str = action, body: bytes = body
                ) -> None:
                    self.sender.enqueue(event_id, action, body)

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
