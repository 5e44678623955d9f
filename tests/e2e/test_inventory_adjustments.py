"""Issue 19's acceptance: a damaged-stock adjustment made in the warehouse changes Odoo's
on-hand quantity once, in 16, 17, 18 and 19; one above the threshold waits for approval.

The WMS sandbox sends its signed ``inventory.adjusted`` webhook (twice: its duplicate
delivery mode), the real wms-bridge and odoo-gateway carry it, and the Odoo sandbox applies
it as a count in inventory mode.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from bs4 import BeautifulSoup
from nats.aio.client import Client as NatsClient

from tests.e2e.mesh import events_of, running_mesh
from tests.runtime.bus_helpers import send
from waybill_contracts.events import (
    InventoryAdjusted,
    InventoryAdjustmentApplied,
    InventoryAdjustmentHeld,
)
from waybill_contracts.operations import ApproveInventoryAdjustment
from waybill_runtime.testing.streams import dead_letters, settled
from waybill_runtime.testing.tokens import bearer
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.delivery import DeliveryMode, DeliveryPolicy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SERVICES = ("odoo-gateway", "wms-bridge")


async def html(http: aiohttp.ClientSession, path: str) -> BeautifulSoup:
    async with http.get(path, headers={"Accept": "text/html"}) as response:
        assert response.status == 200, await response.text()
        return BeautifulSoup(await response.text(), "html.parser")


@pytest.mark.parametrize("version", [16, 17, 18, 19])
async def test_a_damaged_stock_adjustment_changes_odoos_on_hand_once(
    version: int, nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    async with running_mesh(
        nc,
        nats_url,
        nats_prefix,
        services=SERVICES,
        odoo_version=version,
        tmp_state_dir=str(tmp_path),
    ) as mesh:
        mesh.wms.webhooks.configure(policy=DeliveryPolicy(mode=DeliveryMode.DUPLICATE))
        before = mesh.odoo.on_hand("WB-0001")
        # At the WMS's default location, which the local stack maps to WH/Stock.
        mesh.wms.warehouse.adjust_inventory("WB-0001", -2, "DAMAGED")
        await eventually(
            lambda: events_of(nc, mesh.subjects, InventoryAdjustmentApplied),
            what="the adjustment applied in Odoo",
        )
        await mesh.wms.settle()
        [sent] = mesh.wms.sent_webhooks("inventory.adjusted")
        await settled(nc, mesh.subjects, "odoo-gateway", "events")
        after = mesh.odoo.on_hand("WB-0001")
        moves = mesh.odoo.inventory_moves("WB-0001")
        letters = await dead_letters(nc, mesh.subjects)
    assert sent.deliveries == 2  # the same webhook delivered twice
    assert after == before - 2
    assert len(moves) == 1
    assert letters == []


async def test_a_large_adjustment_waits_for_an_operator_then_changes_odoo_once(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    async with running_mesh(
        nc,
        nats_url,
        nats_prefix,
        # The auditor too: it records the new events like any other, dead-lettering none.
        services=(*SERVICES, "auditor"),
        odoo_version=19,
        tmp_state_dir=str(tmp_path),
        service_settings={"odoo-gateway": {"inventory_approval_above": 50.0}},
    ) as mesh:
        before = mesh.odoo.on_hand("WB-0002")
        mesh.wms.warehouse.adjust_inventory("WB-0002", -60, "DAMAGED")
        [held] = await eventually(
            lambda: events_of(nc, mesh.subjects, InventoryAdjustmentHeld),
            what="the adjustment held",
        )
        await settled(nc, mesh.subjects, "odoo-gateway", "events")
        waiting = mesh.odoo.on_hand("WB-0002")
        [adjusted] = await events_of(nc, mesh.subjects, InventoryAdjusted)
        tower = mesh.plan.service_url("auditor")
        assert mesh.plan.api_keys is not None
        operator = bearer(mesh.plan.api_keys, "operator", subject="dana")
        async with aiohttp.ClientSession(tower, headers=operator) as http:
            # The operator sees it waiting on the control tower and approves it there (the
            # form sent twice is one action); someone else approves it again later.
            listed = await eventually(
                lambda: html(http, "/tower/adjustments"),
                until=lambda soup: bool(
                    soup.select("table.adjustments-waiting tr[data-reference]")
                ),
                what="the held adjustment on the tower",
            )
            [row] = listed.select("table.adjustments-waiting tr[data-reference]")
            assert row["data-reference"] == held.reference and "-60" in row.get_text()
            form = row.select_one("form")
            assert form is not None
            fields = {str(i["name"]): str(i.get("value", "")) for i in form.select("input")}
            for _ in range(2):
                async with http.post(
                    str(form["action"]), data=fields, allow_redirects=False
                ) as sent:
                    assert sent.status == 303
            [applied] = await eventually(
                lambda: events_of(nc, mesh.subjects, InventoryAdjustmentApplied),
                what="the adjustment applied in Odoo",
            )
            await send(
                nc,
                mesh.subjects,
                ApproveInventoryAdjustment(
                    action_id="act-2", operator="sam", reference=held.reference
                ),
            )
            shown = await eventually(
                lambda: html(http, "/tower/adjustments"),
                until=lambda soup: bool(
                    soup.select("table.adjustments-applied tr[data-reference]")
                ),
                what="the adjustment applied on the tower",
            )
        await settled(nc, mesh.subjects, "odoo-gateway", "events")
        await settled(nc, mesh.subjects, "odoo-gateway", "commands")
        after = mesh.odoo.on_hand("WB-0002")
        moves = mesh.odoo.inventory_moves("WB-0002")
        await settled(nc, mesh.subjects, "auditor", "events")
        letters = await dead_letters(nc, mesh.subjects)
    assert letters == []
    assert held.reference == adjusted.adjustment.reference
    assert waiting == before
    assert after == before - 60
    assert len(moves) == 1
    assert applied.approved_by == "dana"
    assert not shown.select("table.adjustments-waiting tr[data-reference]")
    [row] = shown.select("table.adjustments-applied tr[data-reference]")
    assert "dana" in row.get_text()
