"""One burst through the whole mesh: N orders created in Odoo at once, followed to the end.

An order is done when its shipment and its delivery are recorded in Odoo
(the last effects of the happy path) and every durable consumer of the mesh
has nothing pending: only then has every service finished its work for it
(notifications and the audit trail included), so the CPU read at that moment
is the burst's whole cost. Latencies come from the events stream, by the
server's own store time: release is *order released*, the label is *shipment
booked*, Odoo-done is *shipment recorded in Odoo*.

After the N standard orders one urgent order (Odoo's priority star) is
created, released last behind the whole burst: its release→label time and
the rank of its label among all labels show what the express lane does
under a backlog (docs/architecture.md, "Lanes").
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext

from waybill_contracts import SubjectMap
from waybill_contracts.events.order import (
    DeliveryRecordedInOdoo,
    OrderReleased,
    ShipmentRecordedInOdoo,
)
from waybill_contracts.events.shipping import ShipmentBooked
from waybill_demo.scenario import SKUS


class BurstFailed(Exception):
    """The mesh stopped making progress, or orders were lost or duplicated."""


@dataclass(frozen=True)
class BusCounters:
    """What the server has stored and received so far."""

    stream_messages: int  # events and commands stored
    kv_writes: int  # writes to every KV bucket
    nats_msgs_in: int  # every message clients sent the server (requests, acks, KV reads...)
    msgs_in_by_client: dict[str, int] = field(default_factory=dict)
    """The same by connection name (a service's connections are named after it)."""


@dataclass
class BurstOutcome:
    """What one burst produced, read after the mesh drained."""

    orders: int
    span_s: float  # first order released to the last shipment recorded in Odoo
    to_label_s: list[float] = field(default_factory=list)
    to_odoo_done_s: list[float] = field(default_factory=list)
    done_in_odoo: int = 0
    duplicate_labels: int = 0
    express_to_label_s: float | None = None
    """Release to label of the urgent order released after the burst."""
    express_label_rank: int | None = None
    """1 when its label was the first bought of the burst, orders + 1 when the last."""

    @property
    def orders_per_s(self) -> float:
        return self.orders / self.span_s if self.span_s > 0 else float("inf")


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` quantile (0.5 = median), by the nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


async def bus_counters(js: JetStreamContext, subjects: SubjectMap, monitor_url: str) -> BusCounters:
    streams = {info.config.name: info.state.last_seq for info in await js.streams_info()}
    stored = sum(
        streams.get(spec.name, 0) for spec in (subjects.events_stream, subjects.commands_stream)
    )
    kv = sum(seq for name, seq in streams.items() if name and name.startswith("KV_"))
    varz = await asyncio.to_thread(get_json, f"{monitor_url}/varz")
    in_msgs = varz.get("in_msgs")
    connz = await asyncio.to_thread(get_json, f"{monitor_url}/connz?limit=4096")
    by_client: dict[str, int] = {}
    connections = connz.get("connections")
    for connection in connections if isinstance(connections, list) else []:
        name, sent = connection.get("name") or "(unnamed)", connection.get("in_msgs")
        if isinstance(sent, int):
            by_client[name] = by_client.get(name, 0) + sent
    return BusCounters(stored, kv, in_msgs if isinstance(in_msgs, int) else 0, by_client)


def get_json(url: str) -> Any:
    """The JSON document at ``url`` (a sandbox's admin route, the server's monitoring)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


MOST_PER_LINE = 3
"""The largest quantity of a burst's order line."""


async def _json_rpc(http: aiohttp.ClientSession, url: str, service: str, *args: object) -> object:
    body = {
        "jsonrpc": "2.0",
        "method": "call",
        "params": {"service": service, "method": args[0], "args": list(args[1:])},
        "id": 1,
    }
    async with http.post(f"{url}/jsonrpc", json=body) as response:
        answer = await response.json()
    if "error" in answer:
        raise BurstFailed(f"Odoo refused {args[0]}: {answer['error'].get('message')}")
    return answer.get("result")


async def restock(odoo_url: str, password: str, orders: int) -> None:
    """Enough stock in Odoo for every order of the burst, put in over Odoo's JSON-RPC.

    The demo stock ships a few hundred orders; an order Odoo cannot reserve is never
    released, which would read as a lost order.
    """
    db, login = "waybill", "admin"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        uid = await _json_rpc(http, odoo_url, "common", "login", db, login, password)
        quants = await _json_rpc(
            http,
            odoo_url,
            "object",
            "execute_kw",
            db,
            uid,
            password,
            "stock.quant",
            "search_read",
            [[]],
            {"fields": ["id", "quantity"]},
        )
        assert isinstance(quants, list)
        for quant in quants:
            quantity = float(quant["quantity"]) + orders * MOST_PER_LINE
            await _json_rpc(
                http,
                odoo_url,
                "object",
                "execute_kw",
                db,
                uid,
                password,
                "stock.quant",
                "write",
                [[quant["id"]], {"quantity": quantity}],
            )


async def create_orders(odoo_url: str, count: int, *, seed: int) -> list[str]:
    """Create ``count`` confirmed orders in the Odoo sandbox, a few requests at a time;
    returns their delivery pickings' names (what the mesh calls the order ref)."""
    rng = random.Random(seed)
    bodies = [
        {
            "lines": [
                {"sku": sku, "quantity": rng.randint(1, MOST_PER_LINE)}
                for sku in rng.sample(SKUS, 2)
            ]
        }
        for _ in range(count)
    ]
    gate = asyncio.Semaphore(16)

    async def create(http: aiohttp.ClientSession, body: Mapping[str, object]) -> str:
        async with gate, http.post(f"{odoo_url}/_sandbox/odoo/orders", json=body) as response:
            if response.status >= 300:
                raise BurstFailed(f"the Odoo sandbox refused an order: HTTP {response.status}")
            order = await response.json()
        return str(order["pickings"][0])

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        return list(await asyncio.gather(*(create(http, body) for body in bodies)))


async def create_urgent_order(odoo_url: str) -> str:
    """One order whose delivery is starred urgent in Odoo; its delivery picking's name."""
    body = {"lines": [{"sku": SKUS[0], "quantity": 1}], "urgent": True}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
        http.post(f"{odoo_url}/_sandbox/odoo/orders", json=body) as response,
    ):
        if response.status >= 300:
            raise BurstFailed(f"the Odoo sandbox refused the urgent order: HTTP {response.status}")
        order = await response.json()
    return str(order["pickings"][0])


async def count_stored(js: JetStreamContext, stream: str, subject: str) -> int:
    """Messages stored on ``subject`` and its express twin (a fact stored again counts again)."""
    info = await js.stream_info(stream, subjects_filter=f"{subject}.>")
    express = sum((info.state.subjects or {}).values())
    info = await js.stream_info(stream, subjects_filter=subject)
    return express + sum((info.state.subjects or {}).values())


async def _stored_by_subject(js: JetStreamContext, subjects: SubjectMap) -> str:
    """How many of each event and command are stored: where the stalled orders stopped."""
    counts: dict[str, int] = {}
    for stream in (subjects.events_stream, subjects.commands_stream, subjects.dlq_stream):
        info = await js.stream_info(stream.name, subjects_filter=">")
        counts.update(info.state.subjects or {})
    prefix = f"{subjects.prefix}."
    return ", ".join(f"{s.removeprefix(prefix)} {n}" for s, n in sorted(counts.items()))


async def _unfinished(js: JetStreamContext, subjects: SubjectMap) -> int:
    """Messages some durable consumer of the mesh has not yet acknowledged."""
    left = 0
    for stream in (subjects.events_stream, subjects.commands_stream):
        for consumer in await js.consumers_info(stream.name):
            left += (consumer.num_pending or 0) + (consumer.num_ack_pending or 0)
    return left


async def wait_finished(
    js: JetStreamContext, subjects: SubjectMap, orders: int, *, stall_s: float = 60.0
) -> None:
    """Poll until every order's delivery is recorded in Odoo and nothing is left to consume."""
    events = subjects.events_stream.name
    recorded = subjects.subject_for(ShipmentRecordedInOdoo)
    delivered = subjects.subject_for(DeliveryRecordedInOdoo)
    last_seen, last_progress = (-1, -1, -1), time.monotonic()
    while True:
        try:
            seen = (
                await count_stored(js, events, recorded),
                await count_stored(js, events, delivered),
                await _unfinished(js, subjects),
            )
        except NatsError:
            # The server is away or electing a leader (the chaos tests do that on purpose):
            # no answer is no progress, and the stall check below still bounds the wait.
            seen = last_seen
        if seen[0] >= orders and seen[1] >= orders and seen[2] == 0:
            return
        if seen != last_seen:
            last_seen, last_progress = seen, time.monotonic()
        elif time.monotonic() - last_progress > stall_s:
            raise BurstFailed(
                f"no progress for {stall_s:.0f} s: {seen[0]} of {orders} shipments and "
                f"{seen[1]} deliveries recorded in Odoo, {seen[2]} messages not yet consumed; "
                f"stored so far: {await _stored_by_subject(js, subjects)}"
            )
        await asyncio.sleep(0.5)


async def store_times(nc: NatsClient, subjects: SubjectMap, subject: str) -> dict[str, float]:
    """Each order's first message on ``subject`` or its twin: its store time (s), by order."""
    times: dict[str, float] = {}
    for on_lane in subjects.lane_subjects(subject):
        for order, at in (
            await _lane_store_times(nc, subjects.events_stream.name, on_lane)
        ).items():
            times[order] = min(at, times.get(order, at))
    return times


async def _lane_store_times(nc: NatsClient, stream: str, subject: str) -> dict[str, float]:
    js = nc.jetstream()
    info = await js.stream_info(stream, subjects_filter=subject)
    expected = sum((info.state.subjects or {}).values())
    # An ephemeral consumer of the harness's own: the services' durables are not touched.
    subscription = await js.pull_subscribe(subject, stream=stream)
    times: dict[str, float] = {}
    read = 0
    try:
        while read < expected:
            for msg in await subscription.fetch(min(1000, expected - read), timeout=10):
                read += 1
                order = (msg.headers or {}).get("ce-correlationid", "")
                stored = msg.metadata.timestamp.timestamp()
                times[order] = min(stored, times.get(order, stored))
                await msg.ack()
    finally:
        await subscription.unsubscribe()
    return times


async def outcome(
    nc: NatsClient,
    subjects: SubjectMap,
    orders: int,
    odoo_url: str,
    carrier_urls: list[str],
    *,
    express_order: str | None = None,
) -> BurstOutcome:
    """Latencies, rate and the loss and duplicate checks of a finished burst.

    ``orders`` counts the urgent ``express_order`` too; the latency lists
    hold the standard orders only, the urgent one has figures of its own.
    """
    released = await store_times(nc, subjects, subjects.subject_for(OrderReleased))
    booked = await store_times(nc, subjects, subjects.subject_for(ShipmentBooked))
    recorded = await store_times(nc, subjects, subjects.subject_for(ShipmentRecordedInOdoo))
    span = max(recorded.values(), default=0.0) - min(released.values(), default=0.0)
    result = BurstOutcome(orders=orders, span_s=span)
    for order, at in released.items():
        if order == express_order:
            if order in booked:
                result.express_to_label_s = booked[order] - at
                result.express_label_rank = 1 + sum(t < booked[order] for t in booked.values())
            continue
        if order in booked:
            result.to_label_s.append(booked[order] - at)
        if order in recorded:
            result.to_odoo_done_s.append(recorded[order] - at)
    pickings = await asyncio.to_thread(get_json, f"{odoo_url}/_sandbox/odoo/pickings?state=done")
    result.done_in_odoo = len(pickings) if isinstance(pickings, list) else 0
    for url in carrier_urls:
        purchases = await asyncio.to_thread(get_json, f"{url}/_sandbox/purchases")
        result.duplicate_labels += sum(max(0, int(n) - 1) for n in labels_per_reference(purchases))
    return result


def labels_per_reference(document: object) -> list[int]:
    """Labels bought per reference, from a carrier sandbox's ``GET /_sandbox/purchases``
    (``{"per_reference": {reference: labels bought}, ...}``)."""
    if isinstance(document, dict):
        inner = document.get("per_reference")
        if isinstance(inner, dict):
            return [int(n) for n in inner.values() if isinstance(n, int)]
    return []
