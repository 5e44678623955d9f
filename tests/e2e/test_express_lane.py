"""An express order overtakes a backlog: the lanes end to end (Odoo → warehouse → carrier).

The carrier-router starts only once every standard order's booking waits
for it, so the backlog is made on purpose, not left to the machine's speed;
then one urgent order (Odoo's priority star) is released last. On the
express lane it waits in no queue: its label is among the first bought,
where a single queue would have it bought last. Asserted as an order of
events, never as a time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient

from tests.e2e.mesh import FLOW_SERVICES, running_mesh
from tests.e2e.test_order_to_ship import all_shipped, release_orders
from waybill_contracts import Lane
from waybill_contracts.commands import BookShipment
from waybill_contracts.events import OrderReleased, ShipmentBooked
from waybill_runtime.testing.streams import stored_messages
from waybill_runtime.testing.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BACKLOG = 60


async def test_an_urgent_order_released_last_gets_its_label_ahead_of_the_backlog(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    async with running_mesh(
        nc,
        nats_url,
        nats_prefix,
        services=FLOW_SERVICES,
        started_later=("carrier-router",),
        tmp_state_dir=str(tmp_path),
    ) as mesh:
        assert mesh.start_later is not None

        async def bookings_waiting() -> int:
            return len(await stored_messages(nc, mesh.subjects, BookShipment))

        standard = release_orders(mesh, BACKLOG)
        await eventually(
            bookings_waiting,
            until=lambda n: n >= BACKLOG,
            timeout_s=120,
            what="a booking waiting for every standard order",
        )
        urgent = mesh.odoo.create_order(lines=[("WB-0001", 1.0)], urgent=True).pickings[0]
        await eventually(
            bookings_waiting,
            until=lambda n: n > BACKLOG,
            timeout_s=60,
            what="the urgent order's booking",
        )
        await mesh.start_later("carrier-router")
        await all_shipped(mesh, [*standard, urgent])

        released = {
            m.order.ref: c.lane for m, c in await stored_messages(nc, mesh.subjects, OrderReleased)
        }
        booked = [
            (m.shipment.order_ref, c.lane)
            for m, c in await stored_messages(nc, mesh.subjects, ShipmentBooked)
        ]
        in_wms = {ref: mesh.wms.warehouse.order_by_ref(ref) for ref in (urgent, standard[0])}
        wms_priority = {ref: order.priority for ref, order in in_wms.items() if order is not None}

    # The lane was decided at release and followed the order through the warehouse.
    assert released[urgent] is Lane.EXPRESS
    assert {released[ref] for ref in standard} == {Lane.STANDARD}
    assert wms_priority == {urgent: "high", standard[0]: "normal"}
    assert dict(booked)[urgent] is Lane.EXPRESS
    # Bought among the first, not after the sixty that were waiting before it.
    position = [ref for ref, _ in booked].index(urgent)
    assert position < BACKLOG // 3, f"the urgent order's label was bought {position + 1}th"
