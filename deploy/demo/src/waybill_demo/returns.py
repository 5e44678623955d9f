"""The demo's returns: a few shipped orders come back, and each must reach its end state.

After the orders have shipped, accounting invoices them (the Odoo sandbox's
admin API), the shop asks for each return on the odoo-gateway's RMA API
(``POST /returns``, an operator's token), and the warehouse's dock receives
and inspects each parcel once it is announced there (the WMS sandbox's
admin API: the sandboxes do not talk to each other, so the parcel's arrival
is the demo's to say). One unit of each return of more than one comes back
broken; the last return comes back broken whole, so inspection accepts
nothing.

End states, checked in Odoo and the mail sink: a return with something
accepted has exactly one posted credit note and its customer one return
label email and one credit email; the one with nothing accepted has no
credit note, an exception on its delivery in Odoo for customer service, and
only the label email.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from waybill_demo.admin_calls import json_of, path_part

__all__ = ["ReturnOutcome", "render_returns", "run_returns"]

CREDITED = "credited"
REJECTED = "rejected"  # inspection accepted nothing: customer service takes it


@dataclass
class ReturnOutcome:
    ref: str
    sale_order: str
    return_id: str
    expected: str  # credited | rejected
    lines: list[dict[str, Any]] = field(default_factory=list)
    dock: str = "-"
    credit_notes: int | None = None
    emails: str = "-"
    reached: bool = False


async def run_returns(
    http: aiohttp.ClientSession,
    *,
    odoo: str,
    wms: str,
    gateway: str,
    operator_token: str | None,
    mail: str | None,
    shipped: list[tuple[str, str, list[dict[str, Any]]]],
    deadline: float,
) -> list[ReturnOutcome]:
    """Return each of ``shipped`` (ref, sale order, lines); the outcomes, observed until
    each reached its end state or ``deadline`` passed."""
    # RMA ids are unique for ever (the gateway remembers them across runs of the stack).
    run = uuid.uuid4().hex[:6]
    outcomes = [
        ReturnOutcome(
            ref=ref,
            sale_order=sale_order,
            return_id=f"RMA-{run}-{n:02d}",
            expected=REJECTED if n == len(shipped) else CREDITED,
            lines=lines,
        )
        for n, (ref, sale_order, lines) in enumerate(shipped, start=1)
    ]
    headers = {"Authorization": f"Bearer {operator_token}"} if operator_token else {}
    for outcome in outcomes:
        async with http.post(
            f"{odoo}/_sandbox/odoo/orders/{path_part(outcome.sale_order)}/invoice"
        ) as r:
            await json_of(r)
        plan: dict[str, Any] = {"reject_all": True}
        if outcome.expected == CREDITED:
            # One unit broken, when the return holds more than one: something is accepted.
            units = sum(line["quantity"] for line in outcome.lines)
            broken = [{"sku": outcome.lines[0]["sku"], "damaged": 1}] if units > 1 else []
            plan = {"lines": broken}
        async with http.put(
            f"{wms}/_sandbox/returns/{path_part(outcome.return_id)}/inspection", json=plan
        ) as r:
            await json_of(r)
        body = {
            "rma_id": outcome.return_id,
            "order_ref": outcome.ref,
            "lines": [{"sku": line["sku"], "quantity": line["quantity"],
                       "reason": "does not fit"} for line in outcome.lines],
        }  # fmt: skip
        async with http.post(f"{gateway}/returns", json=body, headers=headers) as r:
            await json_of(r)
    while time.monotonic() < deadline:
        await _arrive_at_the_dock(http, wms, outcomes)
        for outcome in outcomes:
            if not outcome.reached:
                await _observe(http, odoo, mail, outcome)
        if all(outcome.reached for outcome in outcomes):
            break
        await asyncio.sleep(0.25)
    return outcomes


async def _arrive_at_the_dock(
    http: aiohttp.ClientSession, wms: str, outcomes: list[ReturnOutcome]
) -> None:
    """Every return announced at the dock and still expected: its parcel arrives, inspected."""
    async with http.get(f"{wms}/_sandbox/returns") as r:
        known = {found["client_return_ref"]: found for found in (await json_of(r))["returns"]}
    for outcome in outcomes:
        found = known.get(outcome.return_id)
        if found is None:
            continue
        outcome.dock = found["status"]
        if found["status"] == "expected":
            # Received and inspected in one go (the dock's default).
            async with http.post(
                f"{wms}/_sandbox/returns/{path_part(outcome.return_id)}/receive"
            ) as r:
                outcome.dock = (await json_of(r))["status"]


async def _observe(
    http: aiohttp.ClientSession, odoo: str, mail: str | None, outcome: ReturnOutcome
) -> None:
    async with http.get(
        f"{odoo}/_sandbox/odoo/orders/{path_part(outcome.sale_order)}/invoices"
    ) as r:
        moves = await json_of(r)
    notes = [m for m in moves if m["move_type"] == "out_refund" and m["state"] == "posted"]
    outcome.credit_notes = len(notes)
    if outcome.expected == CREDITED:
        outcome.reached = outcome.dock == "inspected" and len(notes) == 1
    else:
        async with http.get(f"{odoo}/_sandbox/odoo/pickings/{path_part(outcome.ref)}") as r:
            picking = await json_of(r)
        outcome.reached = outcome.dock == "inspected" and not notes and bool(picking["activities"])
    if outcome.reached and mail is not None:
        kinds = await _return_emails(http, mail, outcome.ref)
        outcome.emails = f"{kinds.get('return_label', 0)}/{kinds.get('return_credited', 0)}"
        # Once each: a second email is as wrong as none.
        wanted = 1 if outcome.expected == CREDITED else 0
        outcome.reached = (
            kinds.get("return_label") == 1 and kinds.get("return_credited", 0) == wanted
        )


async def _return_emails(http: aiohttp.ClientSession, mail: str, ref: str) -> dict[str, int]:
    """The order's return emails in the SMTP sink, by kind."""
    async with http.get(f"{mail}/_sandbox/mail") as r:
        summary = await json_of(r)
    counts: dict[str, int] = {}
    for message in summary["messages"]:
        headers = message.get("headers", {})
        kind = headers.get("X-Waybill-Notification-Kind", "")
        if headers.get("X-Waybill-Order-Ref") == ref and kind.startswith("return_"):
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def render_returns(outcomes: list[ReturnOutcome]) -> str:
    rows = [("return", "order", "expected", "dock", "credit notes", "emails (label/credit)", "ok")]
    for o in outcomes:
        credit = "-" if o.credit_notes is None else str(o.credit_notes)
        rows.append((o.return_id, o.ref, o.expected, o.dock, credit, o.emails,
                     "yes" if o.reached else "NO"))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    done = sum(o.reached for o in outcomes)
    lines.append(f"\n{done} of {len(outcomes)} returns reached their expected end state")
    return "\n".join(lines)
