"""Recording into the audit trail, with the metrics that count what it holds.

``waybill_audit_rows{kind}`` counts the rows stored (events, commands, dead
letters), ``waybill_audit_duplicates_total{kind}`` the redeliveries recognised,
``waybill_audit_orders{stage}`` the orders in each stage,
``waybill_audit_unconsumed_total{type}`` the messages no service but the
auditor consumes (:mod:`waybill_auditor.coverage`).
"""

from __future__ import annotations

import asyncio

from waybill_auditor.records import AuditRecord
from waybill_auditor.stages import Stage
from waybill_auditor.store import RESYNC, AuditDatabaseBusy, AuditStore, Change
from waybill_auditor.tower.live import LiveFeed, Update
from waybill_runtime.http import CheckResult
from waybill_runtime.metrics import Children, MetricsRegistry
from waybill_runtime.service import ResourceKey

__all__ = ["TRAIL", "AuditDatabaseBusy", "AuditTrail", "DatabaseWritable"]


class DatabaseWritable:
    """Readiness: the audit database takes a write now (one heartbeat row)."""

    name = "audit-db"

    def __init__(self, store: AuditStore) -> None:
        self.store = store

    async def check(self) -> CheckResult:
        try:
            await self.store.heartbeat()
        except Exception as error:
            return CheckResult(False, f"{self.store.location} takes no writes: {error}")
        return CheckResult(True, f"{self.store.location} takes writes")


class AuditTrail:
    """Records messages once each and keeps the audit metrics current."""

    def __init__(self, store: AuditStore, metrics: MetricsRegistry) -> None:
        self.store = store
        self._recount: asyncio.Task[None] | None = None
        self.feed = LiveFeed()
        """New rows, as they are stored, for the control tower's open pages."""
        self._rows = metrics.gauge("waybill_audit_rows", "Rows in the audit trail.", ("kind",))
        self._duplicates = metrics.counter(
            "waybill_audit_duplicates_total",
            "Messages delivered again that the audit trail already held.",
            ("kind",),
        )
        self._unconsumed = metrics.counter(
            "waybill_audit_unconsumed_total",
            "Events and commands no service but the auditor consumes: stored, not acted on.",
            ("type",),
        )
        self._orders = metrics.gauge(
            "waybill_audit_orders", "Orders the auditor knows, by stage.", ("stage",)
        )
        # Each label's child, looked up once: three a row (a tenth of a row's work in the
        # loop when each was a labels() call).
        self._rows_of = Children(self._rows)
        self._unconsumed_of = Children(self._unconsumed)
        self._orders_of = Children(self._orders)

    async def load_counts(self) -> None:
        """Set the gauges from the database (at start: it may hold earlier runs)."""
        kinds, stages = await self.store.counts()
        for kind, count in kinds.items():
            self._rows.labels(kind).set(count)
        # Every stage, so one emptied since (retention) reads 0, not its old count.
        for stage in Stage:
            self._orders.labels(stage.value).set(stages.get(stage, 0))

    async def record(self, record: AuditRecord) -> bool:
        """Store ``record`` unless already stored; True when it was new.

        The gauges and the live pages follow from :meth:`changed`, which the
        store calls for every new row (on PostgreSQL: rows any replica stored).
        """
        recorded = await self.store.record(record)
        if not recorded.new:
            self._duplicates.labels(record.kind).inc()
        return recorded.new

    def changed(self, change: Change) -> None:
        """A new row in the trail: count it, tell the open pages."""
        if change == RESYNC:
            # Rows other replicas stored may have gone unheard: count from the database.
            self._recount = asyncio.create_task(self.load_counts(), name="audit recount")
            self.feed.resync()
            return
        self._rows_of(change.kind).inc()
        if change.unconsumed:
            # Not rare (notifications nobody else consumes: 7 of an order's 22 messages in
            # the end-to-end stage). Each type's child is kept as the metric keeps it.
            self._unconsumed_of(change.type).inc()
        before, after = change.stage_before, change.stage_after
        if after is not None and before != after:
            if before is not None:
                self._orders_of(before.value).dec()
            self._orders_of(after.value).inc()
        if self.feed.listeners:  # an update is made only for open pages
            self.feed.announce(
                Update(kind=change.kind, type=change.type, order_ref=change.order_ref, stage=after)
            )


TRAIL = ResourceKey[AuditTrail]("audit-trail")
"""The running auditor's trail (opened in :mod:`waybill_auditor.app`)."""
