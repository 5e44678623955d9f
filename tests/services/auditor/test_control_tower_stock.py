"""Inventory reconciliation in the control tower: the latest runs' reports on the overview,
newest first, each discrepancy with both figures; none yet says how to switch runs on."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from tests.services.auditor.tower import page, rows_of, running_tower, send
from waybill_contracts.events import InventoryReconciled
from waybill_contracts.model import Quantity, StockDiscrepancy
from waybill_runtime.testing.streams import settled


@pytest.fixture
def store_settings(backend: str, audit_url: str | None) -> dict[str, Any]:
    """The overview over each store: the SQLite file, and PostgreSQL."""
    return {"audit_database_url": audit_url} if audit_url else {}


def report(run: str, hour: int, *discrepancies: StockDiscrepancy) -> InventoryReconciled:
    return InventoryReconciled(
        reconciliation_id=run,
        odoo_snapshot_id=f"{run}-odoo",
        warehouse_snapshot_id=f"{run}-warehouse",
        skus_compared=12,
        discrepancies=discrepancies,
        reconciled_at=datetime(2026, 12, 6, hour, 0, tzinfo=UTC),
    )


async def test_the_overview_lists_the_latest_reconciliations_with_their_discrepancies(
    nc: NatsClient, nats_url: str, nats_prefix: str, store_settings: dict[str, Any]
) -> None:
    async with (
        running_tower(nats_url, nats_prefix, **store_settings) as tower,
        tower.session("viewer") as http,
    ):
        before = rows_of(await page(http, "/tower"), "table.reconciliations tbody tr")
        missing = StockDiscrepancy(
            sku="WB-0003",
            location="PICK-01",
            odoo_on_hand=Quantity(value=Decimal(215), uom="Units"),
            warehouse_on_hand=Quantity(value=Decimal(211), uom="EA"),
        )
        unknown = StockDiscrepancy(
            sku="WB-0009",
            location="PICK-02",
            odoo_on_hand=None,
            warehouse_on_hand=Quantity(value=Decimal(3), uom="EA"),
        )
        for sent in (report("rec-1", 2), report("rec-2", 3, missing, unknown)):
            await send(
                nc,
                tower.subjects,
                sent,
                source="orchestrator",
                correlation=sent.reconciliation_id,
            )
        await settled(nc, tower.subjects, "auditor", "events")
        rows = rows_of(await page(http, "/tower"), "table.reconciliations tbody tr")
        async with http.get("/tower/reconciliations/rec-2/report.csv") as as_csv:
            assert as_csv.status == 200 and as_csv.content_type == "text/csv"
            assert "attachment" in as_csv.headers["Content-Disposition"]
            lines = (await as_csv.text()).splitlines()
        async with http.get("/tower/reconciliations/rec-2/report.json") as as_json:
            document = await as_json.json()
        async with http.get("/tower/reconciliations/rec-9/report.csv") as missing_run:
            assert missing_run.status == 404
    assert before == [
        ["No reconciliation has run (WAYBILL_INVENTORY_RECONCILE_INTERVAL_S on the orchestrator)."]
    ]
    assert rows == [
        [
            "rec-2",
            "2026-12-06 03:00 UTC",
            "12",
            "WB-0003 at PICK-01: Odoo 215 Units, warehouse 211 EA ; "
            "WB-0009 at PICK-02: Odoo absent, warehouse 3 EA",
            "CSV · JSON",
        ],
        ["rec-1", "2026-12-06 02:00 UTC", "12", "none", "CSV · JSON"],
    ]
    assert lines == [
        "sku,location,odoo,warehouse",
        "WB-0003,PICK-01,215 Units,211 EA",
        "WB-0009,PICK-02,absent,3 EA",
    ]
    assert document["reconciliation_id"] == "rec-2" and len(document["discrepancies"]) == 2
