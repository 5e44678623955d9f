"""A bad day for the bus itself: nats-server restarts while orders are in flight.

Every service reconnects on its own; what was in flight when the server went
away is redelivered or republished, and the effects stay once: one label per
shipment, one tracking number per picking, one shipped email per order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path

import nats
import pytest

from tests.e2e.mesh import ALL_SERVICES, running_mesh
from tests.e2e.test_order_to_ship import (
    all_shipped,
    purchases_per_shipment,
    release_orders,
    settled_shipped_emails,
)
from waybill_runtime.testing.authenticated import AuthenticatedServer
from waybill_runtime.testing.waiting import eventually

# 40 orders, a nats-server restart and every service reconnecting: make long.
pytestmark = [pytest.mark.long, pytest.mark.timeout(480)]


async def test_a_nats_server_restart_mid_flow_loses_no_order_and_repeats_no_effect(
    fresh_nats_server: AuthenticatedServer,
    nats_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="waybill")
    url = fresh_nats_server.client_url
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        async with running_mesh(
            nc, url, nats_prefix, services=ALL_SERVICES, tmp_state_dir=str(tmp_path)
        ) as mesh:
            refs = release_orders(mesh, 40, seed=5)

            async def done() -> int:
                return sum(mesh.odoo.picking(ref).state == "done" for ref in refs)

            # Restart once the flow is well under way, with orders at every stage.
            await eventually(done, until=lambda n: n >= 5, timeout_s=120, what="5 shipped")
            in_flight_at_restart = len(refs) - await done()
            await asyncio.to_thread(fresh_nats_server.restart)
            await all_shipped(mesh, refs)
            # Every service (each its own connection) noticed and came back.
            reconnected = [r for r in caplog.records if r.getMessage() == "reconnected to NATS"]
            assert len(reconnected) >= len(ALL_SERVICES)
            emails = await settled_shipped_emails(mesh, refs, timeout_s=120)
            pickings = [mesh.odoo.picking(ref) for ref in refs]
    finally:
        await nc.close()
    assert in_flight_at_restart > 0  # the restart did fall in the middle of the flow
    assert Counter(emails) == Counter({ref: 1 for ref in refs})
    bought = purchases_per_shipment(mesh)
    assert sum(bought.values()) == len(refs) and set(bought.values()) == {1}
    tracking = [p.carrier_tracking_ref for p in pickings]
    assert all(tracking) and len(set(tracking)) == len(refs)
