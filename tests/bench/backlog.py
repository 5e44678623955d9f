"""The express lane behind a backlog inside the mesh (issue 18: an express order
released last, behind 5,000 standard ones, gets its label within a few seconds).

In the burst (``e2e.py``) the orders queue wherever the stack is narrowest,
which need not be after their lane is decided. Here the backlog is made on
purpose, as ``tests/e2e/test_express_lane.py`` makes it: the carrier-router is
held (stopped, its durables kept) until a booking waits for each of the N
standard orders, then one urgent order is released, and once its booking
waits too the router is resumed and drains them all. What is reported is
what the lane is for: the rank of the urgent order's label among the N + 1,
and the seconds from starting the router again (its process start included)
to that label and to the last.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
from nats.js.client import JetStreamContext

from tests.bench.burst import (
    BurstFailed,
    count_stored,
    create_orders,
    create_urgent_order,
    outcome,
    restock,
    store_times,
    wait_finished,
)
from tests.bench.e2e import Runner
from tests.bench.mesh_stack import admin_seed_file, benchmark_stack
from waybill_contracts import SubjectMap
from waybill_contracts.commands import BookShipment
from waybill_contracts.events.shipping import ShipmentBooked
from waybill_runtime.bus.client import connect_client
from waybill_runtime.local.stack import LocalStack

HELD = "carrier-router"
"""The service held back: the bookings (carrier labels) are the backlog."""


class BacklogFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One run: N standard orders waiting for labels, one urgent order released after them."""

    standard_orders: int
    express_label_rank: int
    """1 when the urgent order's label was the first bought after resuming, N + 1 the last."""
    express_after_resume_s: float
    """From starting the carrier-router again (its process start included) to the urgent
    order's label."""
    backlog_drained_s: float
    """From starting the carrier-router again to the last label of the N + 1."""
    express_release_to_label_s: float
    """The urgent order's release to its label: the hold's wait included."""


async def wait_bookings(
    js: JetStreamContext, subjects: SubjectMap, count: int, *, stall_s: float = 60.0
) -> None:
    """Until ``count`` booking commands (either lane) are stored, or none came for ``stall_s``."""
    stream, subject = subjects.commands_stream.name, subjects.subject_for(BookShipment)
    stored, last_progress = -1, time.monotonic()
    while True:
        now_stored = await count_stored(js, stream, subject)
        if now_stored >= count:
            return
        if now_stored != stored:
            stored, last_progress = now_stored, time.monotonic()
        elif time.monotonic() - last_progress > stall_s:
            raise BurstFailed(f"{now_stored} of {count} bookings after {stall_s:.0f} s without one")
        await asyncio.sleep(0.5)


async def _backlog(stack: LocalStack, orders: int, seed: int) -> BacklogFigures:
    assert stack.plan is not None
    subjects = SubjectMap(stack.subject_prefix)
    nc = await connect_client(
        stack.nats_url, nkeys_seed=admin_seed_file(stack), name="bench-backlog", connect_timeout=5
    )
    try:
        js = nc.jetstream()
        odoo = stack.plan.offered("odoo")
        odoo_url = odoo["url"]
        await restock(odoo_url, odoo["password"], orders + 1)
        carriers = [stack.plan.offered(p)["url"] for p in ("carrier-a", "carrier-b")]
        await asyncio.to_thread(stack.hold, HELD)
        await create_orders(odoo_url, orders, seed=seed)
        await wait_bookings(js, subjects, orders)
        urgent = await create_urgent_order(odoo_url)
        await wait_bookings(js, subjects, orders + 1)
        resumed_at = time.time()  # the same clock as the server's store times: one machine
        await asyncio.to_thread(stack.resume, HELD)
        await wait_finished(js, subjects, orders + 1)
        result = await outcome(nc, subjects, orders + 1, odoo_url, carriers, express_order=urgent)
        labels = await store_times(nc, subjects, subjects.subject_for(ShipmentBooked))
    finally:
        await nc.close()
    if result.done_in_odoo != orders + 1 or len(labels) != orders + 1:
        raise BurstFailed(
            f"orders lost: {orders + 1} created, {result.done_in_odoo} pickings done in Odoo, "
            f"{len(labels)} labels"
        )
    if result.duplicate_labels:
        raise BurstFailed(f"{result.duplicate_labels} labels bought twice")
    assert result.express_label_rank is not None and result.express_to_label_s is not None
    return BacklogFigures(
        standard_orders=orders,
        express_label_rank=result.express_label_rank,
        express_after_resume_s=labels[urgent] - resumed_at,
        backlog_drained_s=max(labels.values()) - resumed_at,
        express_release_to_label_s=result.express_to_label_s,
    )


def run_backlog(orders: int, runner: Runner, *, seed: int = 18) -> BacklogFigures:
    """The backlog run on a stack of its own; prints a line when done."""
    print(f"backlog     {orders:>7,} orders: starting the local stack", flush=True)
    with benchmark_stack() as stack:
        figures: BacklogFigures = runner(_backlog(stack, orders, seed))
    print(
        f"backlog     {orders:>7,} orders: the urgent order's label "
        f"{figures.express_label_rank:,} of {orders + 1:,}, "
        f"{figures.express_after_resume_s:.2f} s after the carrier-router started again",
        flush=True,
    )
    return figures


def backlog_table(figures: BacklogFigures) -> str:
    """The run's figures, one per line."""
    total = figures.standard_orders + 1
    rows = [
        ("standard orders waiting for labels", f"{figures.standard_orders:,}"),
        ("the urgent order's label, rank", f"{figures.express_label_rank:,} of {total:,}"),
        ("carrier-router started → urgent label s", f"{figures.express_after_resume_s:.2f}"),
        ("carrier-router started → last label s", f"{figures.backlog_drained_s:.2f}"),
        ("urgent release → label s (hold included)", f"{figures.express_release_to_label_s:.2f}"),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)
