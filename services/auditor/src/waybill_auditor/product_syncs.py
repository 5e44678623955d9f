"""Product master sync runs as the control tower shows them, and each run's report.

A run's end is one ``ProductSyncCompleted`` (keyed by its batch id), with
what it read, what the warehouse took, and every product refused (by
Waybill's checks or the warehouse) or unmapped (no internal reference in
Odoo, say), each with its reason. The runs page lists the latest runs; a
run's report is those problems, one row each, as CSV (for a spreadsheet)
or JSON (for a script).

A run under way is one whose pages were seen (``ProductsChanged`` read from
Odoo, ``ProductsSynced`` answered by the warehouse) and whose end was not. It
is stuck, like an order past its stage's deadline, when nothing was heard of
it for ``WAYBILL_PRODUCT_SYNC_STUCK_AFTER_S``: a large catalogue may take long,
but a run that stopped moving waits for a person (a gateway that cannot reach
Odoo, a page dead-lettered).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import msgspec

from waybill_auditor.reports import csv_of
from waybill_auditor.store import AuditStore
from waybill_contracts import SubjectMap
from waybill_contracts.events import ProductsChanged, ProductsSynced, ProductSyncCompleted

__all__ = [
    "REPORT_COLUMNS",
    "ProductSyncRun",
    "ProductSyncUnderWay",
    "ReportLine",
    "product_sync_runs",
    "product_syncs_under_way",
    "report_csv",
]

log = logging.getLogger(__name__)

_decode = msgspec.json.Decoder(ProductSyncCompleted).decode

REPORT_COLUMNS = ("problem", "sku", "odoo_product_id", "name", "reason")


class ReportLine(msgspec.Struct, frozen=True, kw_only=True):
    """One product a run could not sync: refused (``rejected``) or never sendable
    (``unmapped``), and why."""

    problem: str
    sku: str = ""
    odoo_product_id: int | None = None
    name: str = ""
    reason: str


class ProductSyncRun(msgspec.Struct, frozen=True, kw_only=True):
    """One finished run: its counts, its duration and its report's lines."""

    batch_id: str
    started_at: datetime
    completed_at: datetime
    pages: int
    products: int
    accepted: int
    rejected: int
    unmapped: int
    lines: tuple[ReportLine, ...]

    @property
    def duration_s(self) -> float:
        return (self.completed_at - self.started_at).total_seconds()


def _run_of(done: ProductSyncCompleted) -> ProductSyncRun:
    lines = (
        *(ReportLine(problem="rejected", sku=r.sku, reason=r.reason) for r in done.rejected),
        *(
            ReportLine(
                problem="unmapped", odoo_product_id=u.odoo_product_id, name=u.name, reason=u.reason
            )
            for u in done.unmapped
        ),
    )
    return ProductSyncRun(
        batch_id=done.batch_id,
        started_at=done.started_at,
        completed_at=done.completed_at,
        pages=done.pages,
        products=done.products,
        accepted=done.accepted,
        rejected=len(done.rejected),
        unmapped=len(done.unmapped),
        lines=lines,
    )


async def product_sync_runs(
    store: AuditStore, subjects: SubjectMap, *, limit: int
) -> list[ProductSyncRun]:
    """The latest ``limit`` finished runs, newest first."""
    runs = []
    for row in await store.latest_per_subject(subjects.ce_type_for(ProductSyncCompleted)):
        try:
            runs.append(_run_of(_decode(row.body)))
        except msgspec.DecodeError as error:
            # Recorded as sent; a body that breaks the contract cannot be reported on.
            log.warning("product sync report %s cannot be read: %s", row.id, error)
    runs.sort(key=lambda run: run.completed_at, reverse=True)
    return runs[:limit]


class ProductSyncUnderWay(msgspec.Struct, frozen=True, kw_only=True):
    """A run not finished yet: the last page read from Odoo, when it was last heard of."""

    batch_id: str
    pages_read: int
    last_heard_at: datetime
    stuck: bool


async def product_syncs_under_way(
    store: AuditStore, subjects: SubjectMap, *, stuck_after_s: float, now: datetime
) -> list[ProductSyncUnderWay]:
    """Every run seen and not finished, stuck ones first, then the longest quiet."""
    finished = {
        row.subject
        for row in await store.latest_per_subject(subjects.ce_type_for(ProductSyncCompleted))
    }
    # Each event's subject is its batch id; the latest page of each batch is all it takes.
    answered = {
        row.subject: row.time
        for row in await store.latest_per_subject(subjects.ce_type_for(ProductsSynced))
    }
    decode = msgspec.json.Decoder(ProductsChanged).decode
    found = []
    for row in await store.latest_per_subject(subjects.ce_type_for(ProductsChanged)):
        if row.subject in finished:
            continue
        try:
            page = decode(row.body).page
        except msgspec.DecodeError as error:
            log.warning("product page %s cannot be read: %s", row.id, error)
            continue
        heard = max(row.time, answered.get(row.subject, row.time))
        found.append(
            ProductSyncUnderWay(
                batch_id=row.subject,
                pages_read=page,
                last_heard_at=heard,
                stuck=now - heard > timedelta(seconds=stuck_after_s),
            )
        )
    found.sort(key=lambda run: (not run.stuck, run.last_heard_at))
    return found


def report_csv(run: ProductSyncRun) -> str:
    """The run's report as CSV: a header, then one row per product it could not sync."""
    return csv_of(
        REPORT_COLUMNS,
        (
            (line.problem, line.sku, line.odoo_product_id, line.name, line.reason)
            for line in run.lines
        ),
    )
