"""Freight reconciliation end to end: orders shipped through the whole mesh, the carriers'
invoices (two lines seeded wrong, one shipment nobody booked) reconciled by the
carrier-router, the billed costs on the Odoo pickings and the wrong lines in front of ops."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client as NatsClient

from tests.e2e.mesh import FLOW_SERVICES, Mesh, running_mesh, undeclared_senders
from tests.e2e.test_order_to_ship import all_shipped
from tests.services.orchestrator.bus import commands, events
from waybill_contracts.commands import RecordFreightCostInOdoo
from waybill_contracts.events import ExceptionRaised, FreightInvoiceReconciled, ShipmentBooked
from waybill_orchestrator.instructions import shipment_id_for
from waybill_runtime.testing.streams import settled
from waybill_runtime.testing.waiting import eventually

pytestmark = [pytest.mark.long, pytest.mark.timeout(300)]


async def seed_both(mesh: Mesh, path: str, body: dict[str, Any]) -> None:
    """Seed at both carriers: which one will carry a shipment is the router's choice."""
    async with aiohttp.ClientSession() as http:
        for carrier in ("carrier-a", "carrier-b"):
            url = mesh.plan.offered(carrier)["url"]
            async with http.post(f"{url}{path}", json=body) as answer:
                assert answer.status == 200, await answer.text()


async def test_wrong_freight_lines_are_flagged_and_billed_costs_reach_odoo(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    router = {"freight_reconcile_interval_s": 0.5, "freight_tolerance": "0.01"}
    async with running_mesh(
        nc,
        nats_url,
        nats_prefix,
        services=FLOW_SERVICES,
        service_settings={"carrier-router": router},
        # Carriers bill later than they sell: never a label the router is still recording.
        carrier_config={"bill_after_s": 2.0},
    ) as mesh:
        refs = [mesh.odoo.create_order(lines=[("WB-0001", 1.0)]).pickings[0] for _ in range(4)]
        over, surcharged, fine, also_fine = (shipment_id_for(ref, 1) for ref in refs)
        await seed_both(
            mesh, f"/_sandbox/billing/lines/{over}", {"kind": "overcharge", "amount": "4.00"}
        )
        await seed_both(
            mesh,
            f"/_sandbox/billing/lines/{surcharged}",
            {"kind": "surcharge", "name": "residential", "amount": "3.10"},
        )
        # A cent of fuel: within the tolerance, so it matches, and Odoo gets the cent.
        await seed_both(
            mesh, f"/_sandbox/billing/lines/{fine}", {"kind": "surcharge", "amount": "0.01"}
        )
        async with aiohttp.ClientSession() as http:
            url = mesh.plan.offered("carrier-a")["url"]
            body = {
                "carrier_reference": "shp_nobody",
                "tracking_number": "EZ1999999999",
                "amount": "7.00",
            }
            async with http.post(f"{url}/_sandbox/billing/unknown", json=body) as answer:
                assert answer.status == 200
        await all_shipped(mesh, refs)
        reports = await eventually(
            lambda: _reports(mesh),
            until=lambda found: sum(r.lines for r in found) >= 5,
            what="every label billed and reconciled",
        )
        await eventually(
            lambda: commands(nc, mesh.subjects),
            until=lambda found: (
                sum(isinstance(d.message, RecordFreightCostInOdoo) for d in found) >= 2
            ),
            what="the billed costs sent to Odoo",
        )
        await settled(nc, mesh.subjects, "odoo-gateway")
        booked = {
            d.message.shipment.shipment_id: d.message.shipment
            for d in await events(nc, mesh.subjects)
            if isinstance(d.message, ShipmentBooked)
        }
        raised = [
            d.message
            for d in await events(nc, mesh.subjects)
            if isinstance(d.message, ExceptionRaised)
        ]
        assert await undeclared_senders(nc, mesh.subjects) == []

    flagged = {
        d.shipment_id or d.carrier_reference: d.kind for r in reports for d in r.discrepancies
    }
    assert flagged == {
        over: "over_tolerance",
        surcharged: "over_tolerance",
        "shp_nobody": "unknown_label",
    }
    assert sorted(m.shipment_id for r in reports for m in r.matched_lines) == sorted(
        [fine, also_fine]
    )
    prices = await _billed_costs(mesh, refs)
    extra = {fine: Decimal("0.01")}  # matched: what was billed; flagged: still the quote
    for ref, shipment_id in zip(refs, (over, surcharged, fine, also_fine), strict=True):
        quoted = booked[shipment_id].cost.amount
        assert Decimal(str(prices[ref])) == quoted + extra.get(shipment_id, Decimal(0))
    codes = sorted(e.code for e in raised if e.code.startswith("freight_"))
    assert codes == ["freight_over_tolerance", "freight_over_tolerance", "freight_unknown_label"]
    for ref in refs[:2]:
        todos = [a.summary or "" for a in mesh.odoo.picking(ref).activities]
        assert any(s.startswith("Freight invoice") for s in todos), (ref, todos)
    for ref in refs[2:]:
        todos = [a.summary or "" for a in mesh.odoo.picking(ref).activities]
        assert not any(s.startswith("Freight") for s in todos), (ref, todos)


async def _reports(mesh: Mesh) -> list[FreightInvoiceReconciled]:
    return [
        d.message
        for d in await events(mesh.nc, mesh.subjects)
        if isinstance(d.message, FreightInvoiceReconciled)
    ]


async def _billed_costs(mesh: Mesh, refs: list[str]) -> dict[str, float | None]:
    prices: dict[str, float | None] = {}
    for ref in refs:
        picking = mesh.odoo.picking(ref)
        prices[ref] = mesh.odoo.registry.value("stock.picking", picking.id, "carrier_price")
    return prices
