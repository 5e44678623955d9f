"""The four counts every chaos test ends on, read from the partners' sandboxes over their APIs.

What the partners saw is the truth of a chaos run: a label bought twice is
paid twice whatever Waybill's own streams say. So nothing here reads NATS:

- lost orders: an order created in Odoo whose delivery is not done, or whose
  delivery was never recorded (no "Delivered on" note), at the end;
- duplicate labels: purchases beyond the first per shipment reference at each
  carrier (``GET /_sandbox/purchases``);
- duplicate emails: emails beyond the first of a kind per order in the SMTP sink
  (``GET /_sandbox/mail``, by the notifier's ``X-Waybill-*`` headers), told apart
  by Message-ID (the same one handed over again is the one email retransmitted);
- duplicate Odoo writes: per picking, shipment notes and delivery notes beyond
  the first (its chatter, ``GET /_sandbox/odoo/pickings``), and tracking writes
  and validations beyond one per order (``stock.picking.write`` and
  ``stock.picking.button_validate`` calls, ``GET /_sandbox/calls``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.bench.burst import get_json, labels_per_reference
from waybill_runtime.local.stack import LocalStack

SHIPMENT_NOTE = "Shipped with"
"""How the odoo-gateway's shipment note begins (its ``shipment_note``)."""
DELIVERY_NOTE = "Delivered on"
"""How the odoo-gateway's delivery note begins (its ``delivery_note``)."""
ONE_PER_ORDER_CALLS = ("stock.picking.write", "stock.picking.button_validate")
"""The Odoo calls the gateway makes once per order on the happy path: the tracking write
(tracking ref, carrier, price in one ``write``) and the validation (the local stack's Odoo is
17, which validates without a wizard once quantities are written)."""


@dataclass(frozen=True)
class ChaosCounts:
    """What a chaos run must leave at zero."""

    lost_orders: int
    duplicate_labels: int
    duplicate_emails: int
    duplicate_odoo_writes: int
    # What was lost or repeated, one line each, to read when a count is not zero.
    evidence: tuple[str, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        counts = (
            f"lost orders {self.lost_orders}, duplicate labels {self.duplicate_labels}, "
            f"duplicate emails {self.duplicate_emails}, "
            f"duplicate Odoo writes {self.duplicate_odoo_writes}"
        )
        return "; ".join((counts, *self.evidence))


NOTHING_LOST_OR_REPEATED = ChaosCounts(0, 0, 0, 0)


@dataclass(frozen=True)
class PartnerUrls:
    """Where the stack's sandboxes answer their admin routes."""

    odoo: str
    carriers: tuple[str, ...]
    mail: str

    @classmethod
    def of(cls, stack: LocalStack) -> PartnerUrls:
        assert stack.plan is not None, "the stack is not started"
        plan = stack.plan
        return cls(
            odoo=plan.offered("odoo")["url"],
            carriers=tuple(plan.offered(c)["url"] for c in ("carrier-a", "carrier-b")),
            mail=f"http://{plan.host}:{plan.port('mail', 'http')}",
        )


def repeated(items: Iterable[Hashable]) -> dict[Hashable, int]:
    """The items seen more than once, with how many times each was repeated."""
    return {item: n - 1 for item, n in Counter(items).items() if n > 1}


async def _labels_per_reference(carrier_url: str) -> list[int]:
    return labels_per_reference(
        await asyncio.to_thread(get_json, f"{carrier_url}/_sandbox/purchases")
    )


async def labels_sold(carrier_url: str) -> int:
    """Labels a carrier sandbox sold, every purchase counted."""
    return sum(await _labels_per_reference(carrier_url))


def _notes(picking: dict[str, Any]) -> list[str]:
    """The gateway's shipment and delivery notes on a picking, by kind, one entry per note."""
    bodies = [str(message.get("body", "")) for message in picking.get("messages", [])]
    return [kind for body in bodies for kind in (SHIPMENT_NOTE, DELIVERY_NOTE) if kind in body]


async def read_counts(urls: PartnerUrls, orders: Sequence[str]) -> ChaosCounts:
    """The four counts for ``orders`` (their delivery pickings' names)."""
    pickings = await asyncio.to_thread(get_json, f"{urls.odoo}/_sandbox/odoo/pickings")
    by_name = {str(p["name"]): p for p in pickings}
    lost: list[str] = []
    odoo_writes: dict[Hashable, int] = {}
    for ref in orders:
        picking = by_name.get(ref)
        notes = [] if picking is None else _notes(picking)
        if picking is None or picking["state"] != "done" or DELIVERY_NOTE not in notes:
            lost.append(f"{ref} ({'missing' if picking is None else picking['state']})")
        odoo_writes.update({(ref, note): n for note, n in repeated(notes).items()})
    calls = await asyncio.to_thread(get_json, f"{urls.odoo}/_sandbox/calls")
    for call in ONE_PER_ORDER_CALLS:
        made = int(calls.get(call, 0))
        # Fewer calls than orders done: this count reads the wrong thing, it would pass blind.
        assert made >= len(orders) - len(lost), f"{made} {call} calls for {len(orders)} orders"
        if made > len(orders):
            odoo_writes[call] = made - len(orders)
    labels = 0
    for url in urls.carriers:
        labels += sum(n - 1 for n in await _labels_per_reference(url) if n > 1)
    mail = await asyncio.to_thread(get_json, f"{urls.mail}/_sandbox/mail")
    # By order and kind, one Message-ID: a second one is a second email. The same
    # Message-ID handed to the relay again is a retransmission of the one email
    # (RFC 5322 3.6.4: the id names one message; mail stores fold such copies): what
    # a replica killed after the relay accepted it and before the result was recorded
    # leaves, since SMTP has no way to ask whether a message arrived. Reported, and
    # bounded by the kills, but not a duplicate.
    sent: dict[tuple[Any, Any], list[str]] = {}
    for m in mail["messages"]:
        headers = m["headers"]
        kind = (headers.get("X-Waybill-Order-Ref"), headers.get("X-Waybill-Notification-Kind"))
        sent.setdefault(kind, []).append(str(headers.get("Message-ID")))
    emails = {kind: len(set(ids)) - 1 for kind, ids in sent.items() if len(set(ids)) > 1}
    resent = {
        kind: len(ids) - len(set(ids)) for kind, ids in sent.items() if len(ids) > len(set(ids))
    }
    return ChaosCounts(
        lost_orders=len(lost),
        duplicate_labels=labels,
        duplicate_emails=sum(emails.values()),
        duplicate_odoo_writes=sum(odoo_writes.values()),
        evidence=(
            *(f"lost: {order}" for order in lost),
            *(
                f"email repeated {n}x: {kind}, Message-IDs {sorted(set(sent[kind]))}"
                for kind, n in emails.items()
            ),
            *(f"email retransmitted {n}x, same Message-ID: {kind}" for kind, n in resent.items()),
            *(f"Odoo write repeated {n}x: {write}" for write, n in odoo_writes.items()),
        ),
    )


def assert_nothing_lost_or_repeated(counts: ChaosCounts) -> None:
    """The final assertion of every chaos test: all four counts, by name, at zero."""
    print(f"chaos counts: {counts}", flush=True)
    assert counts == NOTHING_LOST_OR_REPEATED, f"chaos counts: {counts}"
