"""Product master sync runs as the control tower shows them, and each run's report.

A run's end is one ``ProductSyncCompleted`` (keyed by its batch id), with
what it read, what the warehouse took, and every product refused (by
Waybill's checks or the warehouse) or unmapped (no internal reference in
Odoo, say), each with its reason. The runs page lists the latest runs; a
run's report is those problems, one row each, as CSV (for a spreadsheet)
or JSON (for a script).
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import datetime

import msgspec

from waybill_auditor.store import AuditStore
from waybill_contracts import SubjectMap
from waybill_contracts.events import ProductSyncCompleted

__all__ = ["REPORT_COLUMNS", "ProductSyncRun", "ReportLine", "product_sync_runs", "report_csv"]

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


def report_csv(run: ProductSyncRun) -> str:
    """The run's report as CSV: a header, then one row per product it could not sync."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REPORT_COLUMNS)
    for line in run.lines:
        writer.writerow(
            [
                line.problem,
                line.sku,
                "" if line.odoo_product_id is None else line.odoo_product_id,
                line.name,
                line.reason,
            ]
        )
    return out.getvalue()
