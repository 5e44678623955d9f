"""The end-to-end stage: bursts of orders through the local stack, cost per order per process.

For each burst size a fresh stack is started (so no burst inherits another's
history), N orders are created in the Odoo sandbox at once, and the mesh is
followed until every order is shipped, recorded in Odoo and delivered, and no
consumer has anything left. Each process's CPU over that window, divided by N,
is its cost per order. The services' cost should not depend on N: the ratio
of the largest burst's to the smallest's says whether something does work in
proportion to everything in flight.

Beside it, the floor: what the bus itself would cost for the messages and KV
writes an order makes, at the price per message the runtime stage measured in
the same run.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.bench.burst import (
    BurstFailed,
    BurstOutcome,
    bus_counters,
    create_orders,
    create_urgent_order,
    outcome,
    percentile,
    restock,
    wait_finished,
)
from tests.bench.mesh_stack import NATS_SERVER, admin_seed_file, benchmark_stack, process_ids
from tests.bench.processes import cpu_of, peak_rss_mib
from tests.bench.traffic import Traffic
from waybill_contracts import SubjectMap
from waybill_runtime.bus.client import connect_client
from waybill_runtime.local.stack import LocalStack

DEFAULT_BURSTS = (100, 400)


@dataclass(frozen=True)
class BurstFigures:
    """One burst: the outcome, and every process's CPU ms per order and peak RSS."""

    outcome: BurstOutcome
    cpu_ms_per_order: dict[str, float]  # by process name
    peak_rss_mib: dict[str, float]
    services: tuple[str, ...]
    stream_messages_per_order: float
    kv_writes_per_order: float
    nats_msgs_in_per_order: float
    nats_msgs_in_per_order_by_service: dict[str, float] = field(default_factory=dict)
    """What each service sent the server per order: its publishes, acks, requests, KV reads."""
    traffic: list[tuple[str, float]] = field(default_factory=list)
    """Messages per order by purpose, when counted (``--e2e-traffic``)."""

    @property
    def services_cpu_ms(self) -> float:
        return sum(self.cpu_ms_per_order[name] for name in self.services)


async def _burst(
    stack: LocalStack, orders: int, seed: int, *, count_traffic: bool = False
) -> BurstFigures:
    assert stack.nats is not None and stack.plan is not None
    subjects = SubjectMap(stack.subject_prefix)
    nc = await connect_client(
        stack.nats_url, nkeys_seed=admin_seed_file(stack), name="bench-e2e", connect_timeout=5
    )
    try:
        js = nc.jetstream()
        pids = process_ids(stack)
        odoo = stack.plan.offered("odoo")
        odoo_url = odoo["url"]
        await restock(odoo_url, odoo["password"], orders)
        carriers = [stack.plan.offered(p)["url"] for p in ("carrier-a", "carrier-b")]
        before_bus = await bus_counters(js, subjects, stack.nats.monitor_url)
        traffic = Traffic()
        watcher = None
        if count_traffic:
            watcher = await connect_client(
                stack.nats_url, nkeys_seed=admin_seed_file(stack), name="bench-traffic"
            )
            await traffic.start(watcher)
        before_cpu = cpu_of(pids)
        await create_orders(odoo_url, orders, seed=seed)
        urgent = await create_urgent_order(odoo_url)
        orders += 1  # from here on, the urgent order counts as one of the burst
        await wait_finished(js, subjects, orders)
        after_cpu = cpu_of(pids)
        if watcher is not None:
            await traffic.stop()
            await watcher.close()
        after_bus = await bus_counters(js, subjects, stack.nats.monitor_url)
        result = await outcome(nc, subjects, orders, odoo_url, carriers, express_order=urgent)
    finally:
        await nc.close()
    if result.done_in_odoo != orders or len(result.to_odoo_done_s) != orders - 1:
        raise BurstFailed(
            f"orders lost: {orders} created, {result.done_in_odoo} pickings done in Odoo, "
            f"{len(result.to_odoo_done_s)} shipments recorded"
        )
    if result.duplicate_labels:
        raise BurstFailed(f"{result.duplicate_labels} labels bought twice")
    return BurstFigures(
        outcome=result,
        cpu_ms_per_order={
            name: (after_cpu[name] - before_cpu[name]) / orders * 1000 for name in pids
        },
        peak_rss_mib={name: peak_rss_mib(pid) for name, pid in pids.items()},
        services=tuple(stack.services),
        stream_messages_per_order=(after_bus.stream_messages - before_bus.stream_messages) / orders,
        kv_writes_per_order=(after_bus.kv_writes - before_bus.kv_writes) / orders,
        nats_msgs_in_per_order=(after_bus.nats_msgs_in - before_bus.nats_msgs_in) / orders,
        nats_msgs_in_per_order_by_service={
            name: (
                after_bus.msgs_in_by_client.get(name, 0) - before_bus.msgs_in_by_client.get(name, 0)
            )
            / orders
            for name in stack.services
        },
        traffic=traffic.per_order(orders)
        if traffic.complete
        else [("(incomplete: the watcher was cut off)", 0.0)],
    )


# asyncio.run or uvloop.run: the bursts' harness runs on the loop the services use.
Runner = Callable[[Coroutine[Any, Any, Any]], Any]


def run_bursts(
    bursts: Sequence[int], runner: Runner, *, seed: int = 18, count_traffic: bool = False
) -> list[BurstFigures]:
    """Each burst on a stack of its own, smallest first; prints a line per burst."""
    figures = []
    for orders in bursts:
        print(f"e2e burst   {orders:>7,} orders: starting the local stack", flush=True)
        with benchmark_stack() as stack:
            burst: BurstFigures = runner(_burst(stack, orders, seed, count_traffic=count_traffic))
        figures.append(burst)
        print(
            f"e2e burst   {orders:>7,} orders {burst.outcome.orders_per_s:>7,.1f} orders/s "
            f"{burst.services_cpu_ms:>7,.1f} ms CPU/order (services)",
            flush=True,
        )
    return figures


def _cell(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def e2e_table(figures: Sequence[BurstFigures], runtime_us_per_msg: float | None) -> str:
    """Per burst: rate, latencies, CPU per order per process, memory, the floor; the ratio."""
    if not figures:
        return ""
    services = list(figures[0].services)
    others = [n for n in figures[0].cpu_ms_per_order if n not in services and n != NATS_SERVER]
    names = [*services, NATS_SERVER, *others]
    header = ["", *(f"{f.outcome.orders:,} orders" for f in figures)]
    rows: list[list[str]] = [header]
    rows.append(["orders/s", *(_cell(f.outcome.orders_per_s) for f in figures)])
    for label, attribute in (
        ("release→label", "to_label_s"),
        ("release→Odoo done", "to_odoo_done_s"),
    ):
        for share, tag in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            rows.append(
                [
                    f"{label} {tag} s",
                    *(_cell(percentile(getattr(f.outcome, attribute), share), 2) for f in figures),
                ]
            )
    rows.append(
        [
            "express order release→label s",
            *(_cell(f.outcome.express_to_label_s or float("nan"), 2) for f in figures),
        ]
    )
    rows.append(
        [
            "  its label's rank",
            *(f"{f.outcome.express_label_rank or 0:,} of {f.outcome.orders:,}" for f in figures),
        ]
    )
    rows.append(["CPU ms/order, six services", *(_cell(f.services_cpu_ms) for f in figures)])
    for name in names:
        rows.append([f"  CPU ms/order {name}", *(_cell(f.cpu_ms_per_order[name]) for f in figures)])
    for name in names:
        rows.append([f"  peak RSS MiB {name}", *(_cell(f.peak_rss_mib[name]) for f in figures)])
    rows.append(["stream messages/order", *(_cell(f.stream_messages_per_order) for f in figures)])
    rows.append(["KV writes/order", *(_cell(f.kv_writes_per_order) for f in figures)])
    rows.append(["NATS msgs in/order", *(_cell(f.nats_msgs_in_per_order) for f in figures)])
    for name in services:
        rows.append(
            [
                f"  NATS msgs in/order {name}",
                *(_cell(f.nats_msgs_in_per_order_by_service.get(name, 0.0)) for f in figures),
            ]
        )
    if runtime_us_per_msg is not None:
        rows.append(
            [
                f"floor ms/order ({runtime_us_per_msg:,.0f} µs/op)",
                *(
                    _cell(
                        (f.stream_messages_per_order + f.kv_writes_per_order)
                        * runtime_us_per_msg
                        / 1000
                    )
                    for f in figures
                ),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    smallest, largest = figures[0], figures[-1]
    if len(figures) > 1 and smallest.services_cpu_ms > 0:
        ratio = largest.services_cpu_ms / smallest.services_cpu_ms
        lines += [
            "",
            f"services' CPU per order, {largest.outcome.orders:,} vs "
            f"{smallest.outcome.orders:,} orders: {ratio:.2f} (1.00 = flat as bursts grow)",
        ]
    lines.append(
        "floor: (stream messages + KV writes) per order times the runtime stage's CPU per message"
    )
    return "\n".join(lines)
