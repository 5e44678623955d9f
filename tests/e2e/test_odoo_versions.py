"""The order flow on every Odoo version the sandbox speaks (16-19), set up as real
databases are by default (stock_sms's SMS confirmation on 16-18, JSON-2 on 19 since the
local stack hands the gateway an API key): what `make demo` checks, in a few orders.
`WAYBILL_SANDBOX_ODOO_VERSION=<n> make demo` runs the full demo on one version."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient

from tests.e2e.mesh import ALL_SERVICES, FLOW_SERVICES, running_mesh
from tests.e2e.test_order_to_ship import (
    all_shipped,
    purchases_per_shipment,
    release_orders,
    settled_shipped_emails,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.mark.parametrize("version", [16, 17, 18, 19])
async def test_orders_ship_and_are_validated_in_every_odoo_version(
    version: int, nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    async with running_mesh(
        nc,
        nats_url,
        nats_prefix,
        services=FLOW_SERVICES,
        odoo_version=version,
        tmp_state_dir=str(tmp_path),
        # 16 has no webhooks: the poll finds the orders.
        service_settings={"odoo-gateway": {"odoo_poll_interval_s": 1.0}},
    ) as mesh:
        refs = release_orders(mesh, 5)
        await all_shipped(mesh, refs, timeout_s=120)
        pickings = [mesh.odoo.picking(ref) for ref in refs]
    assert all(p.carrier_tracking_ref for p in pickings)
    assert all(len(p.messages) >= 1 for p in pickings)  # the shipment note
    assert all(not p.messages[0].body.startswith("&lt;") for p in pickings)  # HTML, not text
    calls = mesh.odoo.calls()
    jsonrpc = sum(n for op, n in calls.items() if op.startswith(("common.", "object.")))
    assert (jsonrpc == 0) == (version >= 19), calls


@pytest.mark.parametrize("version", [16, 19])
async def test_a_short_pick_ships_what_was_picked_under_the_ship_picked_policy(
    version: int, nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    async with running_mesh(
        nc,
        nats_url,
        nats_prefix,
        services=ALL_SERVICES,
        odoo_version=version,
        tmp_state_dir=str(tmp_path),
        service_settings={
            "odoo-gateway": {"odoo_poll_interval_s": 1.0},
            "orchestrator": {"short_pick_policy": "ship_picked"},
        },
    ) as mesh:
        order = mesh.odoo.create_order(lines=[("WB-0001", 3)])
        [ref] = order.pickings
        mesh.wms.warehouse.force_short_pick(ref, "WB-0001", 1.0)
        await all_shipped(mesh, [ref], timeout_s=120)
        emails = await settled_shipped_emails(mesh, [ref], timeout_s=60)
        shipped = mesh.odoo.picking(ref)
        pickings = mesh.odoo.order(order.name).pickings
        bought = purchases_per_shipment(mesh)
    assert [(m.demand, m.done) for m in shipped.moves] == [(3.0, 2.0)]  # picked 2 of 3
    [backorder_ref] = [p for p in pickings if p != ref]
    backorder = mesh.odoo.picking(backorder_ref)
    assert backorder.state != "done" and [m.demand for m in backorder.moves] == [1.0]
    assert sum(bought.values()) == 1  # one label
    assert emails == [ref]  # the customer told, once
