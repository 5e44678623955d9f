"""When inventory reconciliation runs start, and which run is stuck.

Every ``WAYBILL_DEADLINE_SWEEP_INTERVAL_S`` each instance looks at the schedule
key (``stock-run-schedule`` in the workflow bucket: the latest run's id and
start). When ``WAYBILL_INVENTORY_RECONCILE_INTERVAL_S`` has passed since that
start, it claims the next run with compare-and-set (one instance wins, the
others see the new run) and starts it (:meth:`StockRuns.start`). A crash
between the claim and the start is made good on the next round: a scheduled
run without a record is started then. ``0`` (the default) schedules nothing.

A run not complete by ``WAYBILL_INVENTORY_RECONCILE_DEADLINE_S`` after its
start is stuck, like an order past its stage's deadline: the gauge
``waybill_inventory_reconciliation_stuck`` is 1 (the latest run's figure;
dashboards take the max over instances) and one warning per run and instance
names it. Nothing re-asks the partners: a snapshot that failed for good is a
dead letter at the gateway or the bridge, where it can be replayed.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import msgspec
from nats.js.kv import KeyValue
from prometheus_client import Gauge

from waybill_orchestrator.config import OrchestratorSettings
from waybill_orchestrator.handlers import STOCK_RUNS, WORKFLOW_BUCKET
from waybill_orchestrator.run_records import read_record, write_record
from waybill_orchestrator.stock_runs import StockRunRecord, StockRuns
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.periodic import every
from waybill_runtime.service import Runtime

__all__ = ["SCHEDULE_KEY", "ReconciliationSchedule", "reconciliation_schedule"]

log = logging.getLogger("waybill.orchestrator.stock")

SCHEDULE_KEY = "stock-run-schedule"


class ScheduledRun(msgspec.Struct, kw_only=True, frozen=True):
    reconciliation_id: str
    started_at: datetime


def stuck_gauge(metrics: MetricsRegistry) -> Gauge:
    """The gauge of a stuck run, at 0 from the start (also with runs switched off), so an
    alert on it needs no ``absent()``."""
    gauge = metrics.gauge(
        "waybill_inventory_reconciliation_stuck",
        "1 while the latest inventory reconciliation run is past its deadline unfinished.",
    )
    gauge.set(0)
    return gauge


class ReconciliationSchedule:
    """Starts the runs when due; tells whether the latest one is stuck."""

    def __init__(
        self, kv: KeyValue, runs: StockRuns, metrics: MetricsRegistry, *, interval_s: float
    ) -> None:
        self._kv = kv
        self._runs = runs
        self._interval_s = interval_s
        self._stuck = stuck_gauge(metrics)
        self._warned: set[str] = set()

    async def latest(self) -> tuple[ScheduledRun | None, int | None]:
        return await read_record(self._kv, SCHEDULE_KEY, ScheduledRun)

    async def tick(self) -> StockRunRecord | None:
        """Start a run if one is due; check the latest for its deadline; returns its record."""
        scheduled, revision = await self.latest()
        now = self._runs.clock()
        if scheduled is None or (now - scheduled.started_at).total_seconds() >= self._interval_s:
            claimed = ScheduledRun(
                reconciliation_id=f"rec-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
                started_at=now,
            )
            if not await write_record(
                self._kv, SCHEDULE_KEY, claimed, revision=revision, attempt=0
            ):
                return None  # another instance claimed it; the next round looks again
            scheduled = claimed
            log.info("inventory reconciliation %s started", claimed.reconciliation_id)
        record, _ = await self._runs.read(scheduled.reconciliation_id)
        if record is None:
            await self._runs.start(scheduled.reconciliation_id)
            record, _ = await self._runs.read(scheduled.reconciliation_id)
        self._report(record, now)
        return record

    def _report(self, record: StockRunRecord | None, now: datetime) -> None:
        stuck = record is not None and record.stuck(now)
        self._stuck.set(1 if stuck else 0)
        if record is not None and stuck and record.reconciliation_id not in self._warned:
            self._warned.add(record.reconciliation_id)
            log.warning(
                "inventory reconciliation %s is stuck: not complete by its deadline %s "
                "(odoo pages %s of %s, warehouse pages %s of %s); look for dead letters of the "
                "odoo-gateway and the wms-bridge",
                record.reconciliation_id,
                record.deadline_at.isoformat(),
                len(record.odoo_pages),
                record.odoo_last or "?",
                len(record.warehouse_pages),
                record.warehouse_last or "?",
            )


@contextlib.asynccontextmanager
async def reconciliation_schedule(
    runtime: Runtime[OrchestratorSettings],
) -> AsyncIterator[None]:
    """Start reconciliation runs every ``inventory_reconcile_interval_s`` (0: never)."""
    settings = runtime.settings
    if not settings.inventory_reconcile_interval_s:
        stuck_gauge(runtime.metrics)
        yield
        return
    schedule = ReconciliationSchedule(
        runtime.buckets[WORKFLOW_BUCKET],
        runtime.resource(STOCK_RUNS),
        runtime.metrics,
        interval_s=settings.inventory_reconcile_interval_s,
    )
    async with every(
        settings.deadline_sweep_interval_s,
        schedule.tick,
        name="inventory reconciliation schedule",
        first_after_s=0.0,
    ):
        yield
