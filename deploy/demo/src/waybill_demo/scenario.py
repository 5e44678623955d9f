"""`make demo`: a finite order-to-ship run on the local stack that checks its own outcome.

It drives the partner sandboxes through their admin APIs, as an operator
with a test system would: creates orders in Odoo, takes carrier A down for
the first part of the run, cancels a few orders while the warehouse holds
them, forces one short pick, then waits until every order reached its
expected end state in Odoo; then a few shipped orders come back as returns
(:mod:`waybill_demo.returns`). It prints a summary table of each; the exit
code is 0 only when every order and every return got there.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from nats.aio.client import Client as NatsClient

from waybill_contracts import SubjectMap
from waybill_contracts.queries import OrderStatusRequest, OrderStatusResponse
from waybill_demo.admin_calls import json_of, path_part
from waybill_demo.returns import ReturnOutcome, render_returns, run_returns
from waybill_runtime.bus.client import connect_client
from waybill_runtime.queries import QueryError, ask
from waybill_runtime.security.permissions import OPERATOR, inbox_prefix

SKUS = [f"WB-{n:04d}" for n in range(1, 9)]


@dataclass(frozen=True)
class DemoEndpoints:
    odoo: str
    wms: str
    carrier_a: str
    nats_url: str
    subject_prefix: str = "waybill"
    # The operator's seed when NATS identities are on (the demo only asks queries).
    nkey_seed_file: str | None = None
    # The operator's TLS context when NATS runs with TLS (`waybill up --tls`).
    tls: ssl.SSLContext | None = None
    # Checked when the notifier / auditor run in the stack.
    mail: str | None = None
    auditor: str | None = None
    # A viewer's API token for the auditor (the local signing key's).
    auditor_token: str | None = None
    # The odoo-gateway's RMA API and an operator's token for it: returns are requested there.
    gateway: str | None = None
    operator_token: str | None = None


@dataclass(frozen=True)
class DemoPlan:
    orders: int = 50
    cancellations: int = 3
    short_picks: int = 1
    # Carrier A is down while this share of the orders (the first wave) ships.
    carrier_a_down_until: float = 0.5
    # Pause after carrier A is back, so an open circuit tries it again.
    carrier_a_recovery_s: float = 3.0
    # Shipped orders that come back afterwards (the last one rejected whole at inspection).
    returns: int = 4
    timeout_s: float = 300.0
    seed: int = 7

    @classmethod
    def for_orders(cls, orders: int, *, timeout_s: float = 300.0) -> DemoPlan:
        """A plan for ``orders`` orders: at most half of them cancelled or short-picked."""
        if orders < 1:
            raise ValueError(f"a demo needs at least one order, not {orders}")
        short_picks = 1 if orders >= 2 else 0
        cancellations = max(0, min(3, orders // 2 - short_picks))
        return cls(
            orders=orders,
            cancellations=cancellations,
            short_picks=short_picks,
            returns=min(4, orders - cancellations - short_picks),
            timeout_s=timeout_s,
        )


@dataclass
class OrderOutcome:
    ref: str
    expected: str  # shipped | cancelled | held
    sale_order: str = ""
    state: str = "?"
    carrier: str = ""
    tracking: str = ""
    emails: int | None = None
    audited: int | None = None
    reached: bool = False
    lines: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DemoReport:
    outcomes: list[OrderOutcome] = field(default_factory=list)
    returns: list[ReturnOutcome] = field(default_factory=list)
    carrier_a_restored_after: int = 0

    @property
    def unfinished(self) -> list[OrderOutcome]:
        return [o for o in self.outcomes if not o.reached]

    @property
    def returns_unfinished(self) -> list[ReturnOutcome]:
        return [r for r in self.returns if not r.reached]


async def run_demo(endpoints: DemoEndpoints, plan: DemoPlan) -> DemoReport:
    """Two waves of orders: the first while carrier A is down, the second after it is back."""
    rng = random.Random(plan.seed)
    report = DemoReport()
    subjects = SubjectMap(endpoints.subject_prefix)
    special = rng.sample(range(plan.orders), plan.cancellations + plan.short_picks)
    expected_of = {i: "cancelled" for i in special[: plan.cancellations]}
    expected_of.update({i: "held" for i in special[plan.cancellations :]})
    first_wave = max(1, round(plan.orders * plan.carrier_a_down_until))
    deadline = time.monotonic() + plan.timeout_s
    async with aiohttp.ClientSession() as http:
        nc = await connect_client(
            endpoints.nats_url,
            connect_timeout=5,
            nkeys_seed=endpoints.nkey_seed_file,
            tls=endpoints.tls,
            inbox_prefix=inbox_prefix(OPERATOR),
        )
        try:
            await _put_fault(http, endpoints.carrier_a, {"outage": True})
            for wave in (range(first_wave), range(first_wave, plan.orders)):
                if time.monotonic() >= deadline:
                    break  # out of time: the report names what did not finish
                outcomes = [
                    await _release_order(http, endpoints, rng, expected_of.get(i, "shipped"))
                    for i in wave
                ]
                report.outcomes += outcomes
                await _cancel_and_release(http, endpoints, outcomes, deadline)
                await _wait_for_end_states(http, nc, subjects, endpoints, outcomes, deadline)
                if wave.start == 0:
                    await _clear_faults(http, endpoints.carrier_a)
                    report.carrier_a_restored_after = len(outcomes)
                    # An open circuit waits before it tries carrier A again.
                    await asyncio.sleep(plan.carrier_a_recovery_s)
            if endpoints.gateway is not None and plan.returns > 0:
                shipped = [
                    (o.ref, o.sale_order, o.lines)
                    for o in report.outcomes
                    if o.expected == "shipped" and o.reached
                ]
                report.returns = await run_returns(
                    http,
                    odoo=endpoints.odoo,
                    wms=endpoints.wms,
                    gateway=endpoints.gateway,
                    operator_token=endpoints.operator_token,
                    mail=endpoints.mail,
                    shipped=shipped[: plan.returns],
                    deadline=deadline,
                )
        finally:
            await _clear_faults(http, endpoints.carrier_a)
            await nc.close()
    return report


async def _release_order(
    http: aiohttp.ClientSession, endpoints: DemoEndpoints, rng: random.Random, expected: str
) -> OrderOutcome:
    """Create a confirmed order in Odoo; arrange the warehouse for a cancel or a short pick."""
    lines = [
        {"sku": sku, "quantity": rng.randint(1, 3)} for sku in rng.sample(SKUS, rng.randint(1, 3))
    ]
    async with http.post(f"{endpoints.odoo}/_sandbox/odoo/orders", json={"lines": lines}) as r:
        order = await json_of(r)
    outcome = OrderOutcome(
        ref=order["pickings"][0], expected=expected, sale_order=order["name"], lines=lines
    )
    wms_order = f"{endpoints.wms}/_sandbox/orders/{path_part(outcome.ref)}"
    if expected != "shipped":
        # The warehouse keeps the order before picking, so the cancel or the
        # short pick happens at a known point of its life.
        await _post(http, f"{wms_order}/hold", {"stage": "picked"})
    if expected == "held":
        await _post(http, f"{wms_order}/short-pick", {})
    return outcome


async def _cancel_and_release(
    http: aiohttp.ClientSession,
    endpoints: DemoEndpoints,
    outcomes: list[OrderOutcome],
    deadline: float,
) -> None:
    # Cancel in Odoo once the warehouse has the order: compensation, not an
    # order that never left Odoo.
    for outcome in outcomes:
        if outcome.expected == "cancelled":
            await _wait_until_in_warehouse(http, endpoints.wms, outcome.ref, deadline)
            await _post(
                http,
                f"{endpoints.odoo}/_sandbox/odoo/orders/{path_part(outcome.sale_order)}/cancel",
                {},
            )
    for outcome in outcomes:
        if outcome.expected != "shipped":
            await _post(
                http, f"{endpoints.wms}/_sandbox/orders/{path_part(outcome.ref)}/release", {}
            )


async def _wait_until_in_warehouse(
    http: aiohttp.ClientSession, wms: str, ref: str, deadline: float
) -> None:
    while time.monotonic() < deadline:
        async with http.get(f"{wms}/_sandbox/orders") as response:
            known = await json_of(response)
        if any(o.get("client_order_ref") == ref for o in known["orders"]):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"order {ref} never reached the warehouse")


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
    async with http.post(url, json=body) as response:
        await json_of(response)


async def _put_fault(http: aiohttp.ClientSession, base: str, plan: dict[str, Any]) -> None:
    async with http.put(f"{base}/_sandbox/faults/*", json=plan) as response:
        await json_of(response)


async def _clear_faults(http: aiohttp.ClientSession, base: str) -> None:
    async with http.delete(f"{base}/_sandbox/faults") as response:
        if response.status >= 400:
            print(f"demo: could not clear carrier A faults ({response.status})")


async def _wait_for_end_states(
    http: aiohttp.ClientSession,
    nc: NatsClient,
    subjects: SubjectMap,
    endpoints: DemoEndpoints,
    outcomes: list[OrderOutcome],
    deadline: float,
) -> None:
    while time.monotonic() < deadline:
        for outcome in outcomes:
            if not outcome.reached:
                await _observe(http, nc, subjects, endpoints, outcome)
        if all(outcome.reached for outcome in outcomes):
            return
        # Each wave ends here (twice a run, in every demo the tests run): a whole second
        # between looks was mostly spent waiting after the last order had arrived.
        await asyncio.sleep(0.25)


async def _observe(
    http: aiohttp.ClientSession,
    nc: NatsClient,
    subjects: SubjectMap,
    endpoints: DemoEndpoints,
    outcome: OrderOutcome,
) -> None:
    async with http.get(f"{endpoints.odoo}/_sandbox/odoo/pickings/{path_part(outcome.ref)}") as r:
        picking = await json_of(r)
    outcome.state = picking["state"]
    outcome.tracking = picking.get("carrier_tracking_ref") or ""
    if outcome.expected == "shipped":
        outcome.reached = picking["state"] == "done" and bool(outcome.tracking)
    elif outcome.expected == "cancelled":
        outcome.reached = picking["state"] == "cancel" and bool(picking["messages"])
    else:
        outcome.reached = bool(picking["activities"]) and picking["state"] != "done"
    if outcome.reached and endpoints.auditor is not None:
        outcome.audited = await _audited_messages(
            http, endpoints.auditor, outcome.ref, endpoints.auditor_token
        )
        outcome.reached = outcome.audited > 0
    if outcome.reached and outcome.expected == "shipped" and endpoints.mail is not None:
        outcome.emails = (await _shipped_emails(http, endpoints.mail)).get(outcome.ref, 0)
        # Exactly one: a second email is as wrong as none.
        outcome.reached = outcome.emails == 1
    if outcome.reached and outcome.expected == "shipped" and not outcome.carrier:
        try:
            status = await ask(
                nc,
                subjects.query_subject("orchestrator", "order_status"),
                OrderStatusRequest(order_ref=outcome.ref),
                OrderStatusResponse,
                timeout=5,
            )
        except QueryError:
            return
        if status.shipment is not None:
            outcome.carrier = status.shipment.carrier


async def _shipped_emails(http: aiohttp.ClientSession, mail: str) -> dict[str, int]:
    """Shipped emails in the SMTP sink per order ref."""
    async with http.get(f"{mail}/_sandbox/mail") as response:
        summary = await json_of(response)
    counts: dict[str, int] = {}
    for message in summary["messages"]:
        headers = message.get("headers", {})
        if headers.get("X-Waybill-Notification-Kind") == "shipped":
            ref = headers.get("X-Waybill-Order-Ref", "")
            counts[ref] = counts.get(ref, 0) + 1
    return counts


async def _audited_messages(
    http: aiohttp.ClientSession, auditor: str, ref: str, token: str | None
) -> int:
    """How many events and commands the auditor's timeline of ``ref`` lists (0 if none)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(f"{auditor}/orders/{path_part(ref)}/timeline", headers=headers) as response:
        if response.status == 404:
            return 0
        timeline = await json_of(response)
    return len(timeline["entries"])


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def render_report(report: DemoReport) -> str:
    rows = [("order", "expected", "carrier", "tracking", "end state", "emails", "audited", "ok")]
    for o in report.outcomes:
        rows.append(
            (
                o.ref,
                o.expected,
                o.carrier or "-",
                o.tracking or "-",
                o.state,
                _count(o.emails),
                _count(o.audited),
                "yes" if o.reached else "NO",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    done = len(report.outcomes) - len(report.unfinished)
    lines.append(f"\n{done} of {len(report.outcomes)} orders reached their expected end state")
    if report.unfinished:
        lines.append("not finished: " + ", ".join(o.ref for o in report.unfinished))
    if report.returns:
        lines.append("\n" + render_returns(report.returns))
    return "\n".join(lines)
