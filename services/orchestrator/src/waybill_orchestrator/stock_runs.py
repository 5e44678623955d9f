"""Inventory reconciliation runs: both snapshots asked for, their pages kept, compared once.

A run (:meth:`StockRuns.start`, from the schedule of
:mod:`~waybill_orchestrator.stock_schedule`) writes its record, then sends
``SnapshotOdooInventory`` and ``SnapshotWarehouseInventory`` with the snapshot
ids ``<run>-odoo`` and ``<run>-warehouse``. Each ``InventorySnapshotTaken``
page is stored under its own key in the workflow bucket (``stock-page.<run>.
<system>.<page>``, written once) and then marked in the run's record
(``stock-run.<run>``, compare-and-set, like an order's state). The writer
that completes the run (every page of both snapshots up to their last one)
compares them (:mod:`~waybill_orchestrator.stock_comparison`, the open orders
in flight allowed for) and stores the result in the record with its
completion, then publishes ``InventoryReconciled``; a page seen again after
that publishes the stored result again under the same fact id, which
JetStream keeps once. So a redelivered page counts once, and a crash between
the record and the publication is made good by the next sighting.

A page of a snapshot no run asked for (an unknown run, or one whose record
expired) cannot be placed: it is a dead letter naming the snapshot. A run
whose snapshots do not complete by its deadline is stuck (see the schedule).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_contracts import MessageContext, fact_id
from waybill_contracts.commands import SnapshotOdooInventory, SnapshotWarehouseInventory
from waybill_contracts.events import InventoryReconciled, InventorySnapshotTaken
from waybill_contracts.model import InventorySystem, StockDiscrepancy, StockLevel
from waybill_orchestrator.run_records import read_record, write_record
from waybill_orchestrator.stock_comparison import compare
from waybill_runtime.bus.expiring import write_expiring
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.idempotency import kv_key
from waybill_runtime.outcomes import PermanentError, TransientError

__all__ = ["RUN_PREFIX", "StockRunRecord", "StockRuns", "snapshot_id"]

RUN_PREFIX = "stock-run."
"""Keys of reconciliation runs in the workflow bucket (orders are ``order.``)."""
PAGE_PREFIX = "stock-page."
"""Keys of the snapshot pages a run has received."""

ExpectedDifferences = Callable[[], Awaitable[dict[str, Decimal]]]
"""Reads the expected difference (Odoo minus warehouse) per SKU of the orders in flight."""


class StockRunRecord(msgspec.Struct, kw_only=True, frozen=True):
    """What a reconciliation run has received so far, and its result once compared."""

    reconciliation_id: str
    started_at: datetime
    deadline_at: datetime
    odoo_pages: tuple[int, ...] = ()
    odoo_last: int | None = None
    warehouse_pages: tuple[int, ...] = ()
    warehouse_last: int | None = None
    completed_at: datetime | None = None
    shelves_compared: int = 0
    discrepancies: tuple[StockDiscrepancy, ...] = ()

    def pages(self, system: InventorySystem) -> tuple[tuple[int, ...], int | None]:
        if system == InventorySystem.ODOO:
            return self.odoo_pages, self.odoo_last
        return self.warehouse_pages, self.warehouse_last

    def complete(self) -> bool:
        for system in InventorySystem:
            seen, last = self.pages(system)
            if last is None or not set(range(1, last + 1)) <= set(seen):
                return False
        return True

    def stuck(self, now: datetime) -> bool:
        """Past its deadline and not complete: someone must look."""
        return self.completed_at is None and now >= self.deadline_at


class StockRunChanging(TransientError):
    """Every compare-and-set lost a race: the page is tried again later."""


def snapshot_id(reconciliation_id: str, system: InventorySystem) -> str:
    """The id of one side's snapshot of a run."""
    return f"{reconciliation_id}-{system}"


def _run_key(reconciliation_id: str) -> str:
    return RUN_PREFIX + kv_key(reconciliation_id)


def _page_key(reconciliation_id: str, system: InventorySystem, page: int) -> str:
    return f"{PAGE_PREFIX}{kv_key(reconciliation_id)}.{system}.{page}"


class _Page(msgspec.Struct, frozen=True):
    levels: tuple[StockLevel, ...]


class StockRuns:
    """The inventory reconciliation runs of one installation."""

    def __init__(
        self,
        kv: KeyValue,
        publisher: Publisher,
        expected: ExpectedDifferences,
        *,
        deadline_s: float,
        finished_ttl_s: float = 0.0,
        write_attempts: int = 25,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kv = kv
        self._publisher = publisher
        self._expected = expected
        self._deadline_s = deadline_s
        self._finished_ttl_s = finished_ttl_s
        self._write_attempts = write_attempts
        self.clock = clock

    async def read(self, reconciliation_id: str) -> tuple[StockRunRecord | None, int | None]:
        """The run's record and revision; ``(None, None)`` for a run never started."""
        return await read_record(self._kv, _run_key(reconciliation_id), StockRunRecord)

    async def start(self, reconciliation_id: str, cause: MessageContext | None = None) -> bool:
        """Write the run's record and ask for both snapshots; False if it existed already."""
        now = self.clock()
        record = StockRunRecord(
            reconciliation_id=reconciliation_id,
            started_at=now,
            deadline_at=now + timedelta(seconds=self._deadline_s),
        )
        try:
            await self._kv.create(_run_key(reconciliation_id), msgspec.json.encode(record))
        except KeyWrongLastSequenceError:
            return False
        odoo = SnapshotOdooInventory(
            snapshot_id=snapshot_id(reconciliation_id, InventorySystem.ODOO)
        )
        warehouse = SnapshotWarehouseInventory(
            snapshot_id=snapshot_id(reconciliation_id, InventorySystem.WAREHOUSE)
        )
        for command in (odoo, warehouse):
            # One correlation for the run: its snapshots' pages and its report follow it.
            await self._publisher.publish(
                command,
                cause=cause,
                fact_id=fact_id("orchestrator", "snapshot_inventory", command.snapshot_id),
                correlation_id=None if cause is not None else reconciliation_id,
            )
        return True

    async def page_taken(self, page: InventorySnapshotTaken, cause: MessageContext) -> None:
        """Keep one snapshot page; compare and announce once both snapshots are complete."""
        reconciliation_id = page.snapshot_id.removesuffix(f"-{page.system}")
        record, _ = await self.read(reconciliation_id)
        if reconciliation_id == page.snapshot_id or record is None:
            raise PermanentError(
                f"{page.system} snapshot {page.snapshot_id!r} (page {page.page}) belongs to no "
                "reconciliation run this orchestrator started (unknown, or finished long ago)"
            )
        await self._store_page(reconciliation_id, page)
        for attempt in range(self._write_attempts):
            record, revision = await self.read(reconciliation_id)
            if record is None or revision is None:
                raise PermanentError(f"reconciliation run {reconciliation_id} vanished mid-page")
            seen, last = record.pages(page.system)
            if page.page in seen:
                await self._announce_if_complete(record, cause)
                return
            updated = self._marked(record, page, seen, last)
            written = await self._written(updated, revision, attempt)
            if written is not None:
                await self._announce_if_complete(written, cause)
                return
        raise StockRunChanging(
            f"reconciliation run {reconciliation_id} changed under every attempt"
        )

    def _marked(
        self,
        record: StockRunRecord,
        page: InventorySnapshotTaken,
        seen: tuple[int, ...],
        last: int | None,
    ) -> StockRunRecord:
        seen = (*seen, page.page)
        last = page.page if page.last_page else last
        if page.system == InventorySystem.ODOO:
            return msgspec.structs.replace(record, odoo_pages=seen, odoo_last=last)
        return msgspec.structs.replace(record, warehouse_pages=seen, warehouse_last=last)

    async def _store_page(self, reconciliation_id: str, page: InventorySnapshotTaken) -> None:
        key = _page_key(reconciliation_id, page.system, page.page)
        value = msgspec.json.encode(_Page(page.levels))
        try:
            if self._finished_ttl_s:
                await write_expiring(self._kv, key, value, last=None, ttl_s=self._finished_ttl_s)
            else:
                await self._kv.create(key, value)
        except KeyWrongLastSequenceError:
            pass  # kept already: a redelivered page counts once

    async def _levels(self, record: StockRunRecord, system: InventorySystem) -> list[StockLevel]:
        seen, _ = record.pages(system)
        levels: list[StockLevel] = []
        for number in sorted(seen):
            entry = await self._kv.get(_page_key(record.reconciliation_id, system, number))
            levels.extend(msgspec.json.decode(entry.value or b"", type=_Page).levels)
        return levels

    async def _written(
        self, record: StockRunRecord, revision: int, attempt: int
    ) -> StockRunRecord | None:
        """Compare-and-set ``record`` (compared and closed if complete); None if someone wrote
        first."""
        if record.complete() and record.completed_at is None:
            shelves, discrepancies = compare(
                await self._levels(record, InventorySystem.ODOO),
                await self._levels(record, InventorySystem.WAREHOUSE),
                await self._expected(),
            )
            record = msgspec.structs.replace(
                record,
                completed_at=self.clock(),
                shelves_compared=shelves,
                discrepancies=discrepancies,
            )
        finished = record.completed_at is not None
        written = await write_record(
            self._kv,
            _run_key(record.reconciliation_id),
            record,
            revision=revision,
            attempt=attempt,
            expire_after_s=self._finished_ttl_s if finished else 0.0,
        )
        return record if written else None

    async def _announce_if_complete(self, done: StockRunRecord, cause: MessageContext) -> None:
        if done.completed_at is None:
            return
        reconciled = InventoryReconciled(
            reconciliation_id=done.reconciliation_id,
            odoo_snapshot_id=snapshot_id(done.reconciliation_id, InventorySystem.ODOO),
            warehouse_snapshot_id=snapshot_id(done.reconciliation_id, InventorySystem.WAREHOUSE),
            skus_compared=done.shelves_compared,
            discrepancies=done.discrepancies,
            reconciled_at=done.completed_at,
        )
        await self._publisher.publish(
            reconciled,
            cause=cause,
            fact_id=fact_id("orchestrator", "inventory_reconciled", done.reconciliation_id),
        )
