"""The deadline sweep: finds orders late in their stage, and messages left unsent.

Runs on every instance (`periodic.every`); instances racing on one order are
kept apart by compare-and-set, and the loser sees the deadline already moved.
The sweep also publishes and clears outboxes left longer than their grace (a
crash between a write and its publish, or an order whose next write has not
come). It reads
the open orders only (the index of :mod:`waybill_orchestrator.open_orders`):
finished orders cannot be late, and the bucket keeps them all. An order this
instance wrote less than the outbox grace ago, and not late, is not read at all
(see :meth:`~waybill_orchestrator.workflow.WorkflowStore.written_lately`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from waybill_orchestrator.changes import DeadlineCheck
from waybill_orchestrator.config import OrchestratorSettings
from waybill_orchestrator.handlers import RETURNS, WORKFLOW
from waybill_orchestrator.return_state import ReturnStage
from waybill_orchestrator.stages import FINAL, Stage
from waybill_orchestrator.state import OrderState
from waybill_orchestrator.stuck_orders import StageCensus, StuckOrderGauges
from waybill_orchestrator.workflow import WorkflowStore
from waybill_runtime.periodic import every
from waybill_runtime.service import Runtime

log = logging.getLogger("waybill.orchestrator")


@dataclass
class SweepReport:
    """What one sweep did."""

    orders: int = 0
    late: int = 0
    resent: int = 0
    escalated: int = 0
    flushed: int = 0
    failed: int = 0
    census: StageCensus = field(default_factory=StageCensus)
    """The open orders by stage, as they were before this sweep acted."""


async def index_open_orders(store: WorkflowStore) -> int:
    """Index every open order of the bucket that is not indexed; returns how many were.

    Orders stored before the index existed are found this way, once per instance
    start: the one time the sweep's work depends on the bucket's whole history.
    """
    indexed = set(await store.open_keys())
    added = 0
    for key in await store.keys():
        if key in indexed:
            continue
        state, _ = await store.read_key(key)
        if state is not None and state.stage not in FINAL:
            await store.open_orders.add(key)
            added += 1
    return added


ESCALATED = frozenset({Stage.HELD, ReturnStage.EXCEPTION})
"""Where a deadline passed twice leaves an order (held) or a return (exception)."""


async def sweep(store: WorkflowStore) -> SweepReport:
    """Check every open order (or return, in a return store) once; a failure on one does not
    stop the others."""
    report = SweepReport()
    for key in await store.open_keys():
        report.orders += 1
        try:
            await _check(store, key, report)
        except Exception as error:
            report.failed += 1
            log.warning("deadline check of %s failed (%s: %s)", key, type(error).__name__, error)
    if report.late or report.flushed or report.failed:
        log.info("deadline sweep: %s", report)
    return report


async def _check(store: WorkflowStore, key: str, report: SweepReport) -> None:
    now = store.clock()
    lately = store.written_lately(key)
    if lately is not None and not store.finished(lately) and not _due(lately, now):
        # Written here moments ago, not late: nothing to do, nothing to read.
        if isinstance(lately, OrderState):
            report.census.count(lately, now)
        return
    state, revision = await store.read_key(key)
    if state is None or revision is None:
        return  # indexed, its first state not yet written (or never, after a crash)
    if store.outbox_overdue(state) or (state.outbox and store.finished(state)):
        # Left by a crash between a write and its publish, or published and waiting
        # for the order's next write to clear it (see waybill_orchestrator.workflow).
        report.flushed += 1
        await store.send_pending(key, state, revision)
    if store.finished(state):
        # Finished while a crash kept its index key from being removed.
        await store.open_orders.remove(key)
        return
    if isinstance(state, OrderState):
        report.census.count(state, now)
    if not _due(state, now):
        return
    report.late += 1
    decision = await store.apply(state.workflow_ref, DeadlineCheck(at=now))
    if decision.changed and decision.state is not None:
        if decision.state.stage in ESCALATED:
            report.escalated += 1
        else:
            report.resent += 1


def _due(state: OrderState, now: datetime) -> bool:
    """True once the order (or return) is past its stage's deadline."""
    return state.deadline_at is not None and now >= state.deadline_at


@contextlib.asynccontextmanager
async def deadline_sweeper(runtime: Runtime[OrchestratorSettings]) -> AsyncIterator[None]:
    """Sweep the workflow bucket every ``deadline_sweep_interval_s`` while the service runs."""
    store = runtime.resource(WORKFLOW)
    returns = runtime.resource(RETURNS)
    gauges = StuckOrderGauges(runtime.metrics)
    indexed = False

    async def work() -> None:
        nonlocal indexed
        if not indexed:
            added = await index_open_orders(store)
            if added:
                log.info("indexed %d open orders stored before the open-orders index", added)
            indexed = True
        gauges.publish((await sweep(store)).census)
        await sweep(returns)  # reminders, re-sent steps, parcels that never came

    async with every(runtime.settings.deadline_sweep_interval_s, work, name="deadline sweep"):
        yield
