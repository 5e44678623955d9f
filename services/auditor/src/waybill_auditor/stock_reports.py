"""Inventory reconciliation reports as the control tower shows them: the latest runs first.

Each run of the orchestrator's reconciliation publishes one ``InventoryReconciled``
(keyed by its run id), recorded in the trail like any event; the tower reads the
latest one per run and lists the newest runs with their discrepancies, so a
count that went wrong overnight is in front of the operators in the morning.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import msgspec

from waybill_auditor.reports import csv_of
from waybill_auditor.store import AuditStore
from waybill_contracts import SubjectMap
from waybill_contracts.events import InventoryReconciled
from waybill_contracts.model import Quantity

__all__ = [
    "DiscrepancyView",
    "ReconciliationView",
    "latest_reconciliations",
    "reconciliation_csv",
]

log = logging.getLogger(__name__)

_decode = msgspec.json.Decoder(InventoryReconciled).decode


class DiscrepancyView(msgspec.Struct, frozen=True, kw_only=True):
    """One shelf whose figures differ, in words."""

    sku: str
    location: str
    odoo: str
    warehouse: str


class ReconciliationView(msgspec.Struct, frozen=True, kw_only=True):
    """One run's report."""

    reconciliation_id: str
    reconciled_at: datetime
    shelves_compared: int
    discrepancies: tuple[DiscrepancyView, ...]


def _figure(quantity: Quantity | None) -> str:
    return "absent" if quantity is None else f"{quantity.value} {quantity.uom}"


async def latest_reconciliations(
    store: AuditStore, subjects: SubjectMap, limit: int
) -> list[ReconciliationView]:
    """The ``limit`` newest runs' reports, newest first."""
    found: list[ReconciliationView] = []
    for row in await store.latest_per_subject(subjects.ce_type_for(InventoryReconciled)):
        try:
            report = _decode(row.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            # Recorded as sent; a body that breaks the contract cannot say what differs.
            log.warning("inventory reconciliation report %s cannot be read: %s", row.id, error)
            continue
        found.append(
            ReconciliationView(
                reconciliation_id=report.reconciliation_id,
                reconciled_at=report.reconciled_at.astimezone(UTC),
                shelves_compared=report.skus_compared,
                discrepancies=tuple(
                    DiscrepancyView(
                        sku=d.sku,
                        location=d.location,
                        odoo=_figure(d.odoo_on_hand),
                        warehouse=_figure(d.warehouse_on_hand),
                    )
                    for d in report.discrepancies
                ),
            )
        )
    found.sort(key=lambda view: view.reconciled_at, reverse=True)
    return found[:limit]


def reconciliation_csv(view: ReconciliationView) -> str:
    """A run's report as CSV: one row per shelf whose figures differ."""
    return csv_of(
        ("sku", "location", "odoo", "warehouse"),
        ((d.sku, d.location, d.odoo, d.warehouse) for d in view.discrepancies),
    )
