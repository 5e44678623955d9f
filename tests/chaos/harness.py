"""The chaos harness: the real multi-process local stack, supervised, two replicas of every
service, a burst of orders through it, and ways to hurt it while the burst is under way.

The stack is the bench's (:func:`tests.bench.mesh_stack.benchmark_stack`): `waybill up`'s
LocalStack with the sandboxes in a profile, in a temporary state folder. The harness adds
what `waybill up`'s foreground loop does, supervision (a crashed child is started again
after a pause), from a thread of its own, and the partners' safety nets tightened (the
gateway's Odoo poll, the bridge's WMS poll, the router's tracking reconciliation) so a
webhook lost while a receiver was down is caught up in seconds, not hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext

from tests.bench.burst import (
    BurstFailed,
    count_stored,
    create_orders,
    get_json,
    restock,
    wait_finished,
)
from tests.bench.mesh_stack import admin_seed_file, benchmark_stack
from tests.chaos.counts import ChaosCounts, PartnerUrls, labels_sold, read_counts
from waybill_contracts import SubjectMap
from waybill_contracts.events.order import ShipmentRecordedInOdoo
from waybill_runtime.bus.client import WaybillNatsClient, connect_client
from waybill_runtime.local.stack import LocalStack, replica_name, wait_ready
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.declarations import ODOO_VERSION, ODOO_VERSION_ENV
from waybill_sandboxes.profile import SandboxProfile

CHAOS_LOGS = Path(".waybill") / "chaos-logs"
"""Where the logs of a failed chaos run are kept (the stack's state folder is temporary)."""

REPLICAS = 2

SAFETY_NETS = {
    # The Odoo the counts are read for (tests.chaos.counts.ONE_PER_ORDER_CALLS), whatever
    # the environment says.
    ODOO_VERSION_ENV: ODOO_VERSION,
    # A webhook answered 503 by a killed receiver is caught up by these; their defaults
    # (30 s, 60 s, 6 h) are right for production and too slow for a test.
    "WAYBILL_ODOO_POLL_INTERVAL_S": "3",
    "WAYBILL_WMS_RECONCILE_INTERVAL_S": "3",
    "WAYBILL_TRACKING_QUIET_AFTER_S": "8",
    "WAYBILL_TRACKING_RECONCILE_INTERVAL_S": "2",
}

STALL_S = 240.0
"""How long a chaos burst may make no progress before it counts as hung. A replica killed
between writing its intent to call a partner and the call leaves the intent in doubt for a
minute (the runtime's ``OnceOnly``); the message waiting on it is retried on the services'
own backoff (1, 5, 30, 120 s ...), so its order may stand still for about 160 s."""


@contextlib.contextmanager
def chaos_stack(
    *,
    cluster: int = 1,
    profile: SandboxProfile = SandboxProfile.BENCHMARK,
    settings: Mapping[str, str] = {},
) -> Iterator[LocalStack]:
    """A started local stack, :data:`REPLICAS` of every service, the safety nets tightened;
    ``cluster=3``: a three-node NATS cluster."""
    with benchmark_stack(
        replicas=REPLICAS,
        cluster=cluster,
        profile=profile,
        settings={**SAFETY_NETS, **settings},
        failed_logs=CHAOS_LOGS,
    ) as stack:
        yield stack


@dataclass
class Supervisor:
    """`waybill up`'s supervision of a stack, from a thread: crashed children start again."""

    stack: LocalStack
    said: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                lines = self.stack.supervise()
            for line in lines:
                print(f"supervisor: {line}", flush=True)
            self.said.extend(lines)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No supervision meanwhile (a test that stops nats-server on purpose keeps it down)."""
        with self._lock:
            yield

    def restarts_of(self, name: str) -> int:
        """How often ``name`` was started again."""
        return sum(line.startswith(f"{name} started again") for line in self.said)


@contextlib.contextmanager
def supervising(stack: LocalStack) -> Iterator[Supervisor]:
    supervisor = Supervisor(stack)
    thread = threading.Thread(target=supervisor._run, name="chaos-supervisor", daemon=True)
    thread.start()
    try:
        yield supervisor
    finally:
        supervisor._stop.set()
        thread.join()


def kill_replica(stack: LocalStack, service: str, replica: int) -> int:
    """SIGKILL one instance of ``service`` (0: the first); returns the killed pid."""
    pid = stack.children[replica_name(service, replica)].pid
    os.kill(pid, signal.SIGKILL)
    return pid


async def back_up(stack: LocalStack, service: str, replica: int, killed_pid: int) -> None:
    """Wait until the supervisor started the killed instance again and it is ready."""
    assert stack.plan is not None
    name, url = replica_name(service, replica), stack.plan.replica_urls(service)[replica]

    async def pid() -> int:
        return stack.children[name].pid

    await eventually(
        pid, until=lambda now: now != killed_pid, timeout_s=120, what=f"{name} started again"
    )
    # The stack's own readiness wait, as at start.
    ready = await asyncio.to_thread(wait_ready, f"{url}/readyz", time.monotonic() + 120)
    assert ready, f"{name} was started again but is not ready"


TRACKING_LOOKUPS = ("list_trackers", "get_tracker", "get_track")
"""The carriers' tracking lookups (carrier A's trackers, carrier B's tracks), by operation."""


async def webhooks_failed(carrier_url: str) -> int:
    """Webhooks the carrier gave up on (every retry refused or unanswered)."""
    sent = await asyncio.to_thread(get_json, f"{carrier_url}/_sandbox/webhooks")
    return sum(webhook["outcome"] == "failed" for webhook in sent["webhooks"])


async def tracking_lookups(carrier_url: str) -> int:
    """Tracking lookups the carrier answered (what reconciliation asks)."""
    calls = await asyncio.to_thread(get_json, f"{carrier_url}/_sandbox/calls")
    return sum(int(calls.get(operation, 0)) for operation in TRACKING_LOOKUPS)


@dataclass
class Burst:
    """A burst of orders created in the stack's Odoo, followed from an admin connection."""

    stack: LocalStack
    nc: WaybillNatsClient
    js: JetStreamContext
    subjects: SubjectMap
    urls: PartnerUrls
    orders: list[str]

    async def shipments_recorded(self) -> int:
        """Shipments recorded in Odoo so far (how far the burst has got); -1 while the
        server does not answer (a test may have taken it away)."""
        recorded = self.subjects.subject_for(ShipmentRecordedInOdoo)
        try:
            return await count_stored(self.js, self.subjects.events_stream.name, recorded)
        except NatsError:
            return -1

    async def reached(self, shipments: int) -> int:
        """Wait until at least ``shipments`` are recorded in Odoo; returns how many are."""
        return await eventually(
            self.shipments_recorded,
            until=lambda done: done >= shipments,
            timeout_s=300,
            interval_s=0.2,
            what=f"{shipments} shipments recorded in Odoo",
        )

    async def labels_bought(self) -> int:
        """Labels the carriers sold so far."""
        return sum(await asyncio.gather(*(labels_sold(url) for url in self.urls.carriers)))

    async def finished(self) -> ChaosCounts:
        """Wait until every order is delivered and nothing is left to consume; the counts."""
        try:
            await wait_finished(self.js, self.subjects, len(self.orders), stall_s=STALL_S)
        except BurstFailed:
            # Hung: the counts still say what was lost and where, beside the stall.
            print(f"chaos counts when it hung: {await read_counts(self.urls, self.orders)}")
            raise
        return await read_counts(self.urls, self.orders)


@contextlib.asynccontextmanager
async def burst(stack: LocalStack, orders: int, *, seed: int = 18) -> AsyncIterator[Burst]:
    """Create ``orders`` orders in Odoo at once (stock put in first) and follow them."""
    urls = PartnerUrls.of(stack)
    assert stack.plan is not None
    await restock(urls.odoo, stack.plan.offered("odoo")["password"], orders)

    async def expected(error: Exception) -> None:
        """A test that takes nats-server away expects these; the client reconnects."""

    # Reconnecting for ever, quietly: a test may take nats-server away under it.
    nc = await connect_client(
        stack.nats_url,
        nkeys_seed=admin_seed_file(stack),
        name="chaos",
        connect_timeout=5,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=expected,
    )
    try:
        refs = await create_orders(urls.odoo, orders, seed=seed)
        yield Burst(stack, nc, nc.jetstream(), SubjectMap(stack.subject_prefix), urls, refs)
    finally:
        await nc.close()
