"""Issue 20, the parts the branch has end to end: the real odoo-gateway, orchestrator and
carrier-router take a customer's RMA (the gateway's API) to a return label bought and Odoo's
return picking made, and a return made by an Odoo user, cancelled before the parcel came, to
its label voided. The warehouse's side (ExpectReturn, receipt, inspection) is the wms-bridge's,
not on this branch yet: the returns stop awaiting the parcel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client as NatsClient

from tests.e2e.mesh import events_of, running_mesh
from waybill_contracts.events import (
    ReturnCancelled,
    ReturnLabelBooked,
    ReturnLabelVoided,
    ReturnRequested,
)
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.tokens import bearer
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.odoo import OdooSandbox
from waybill_sandboxes.odoo.methods import call_kw

pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.timeout(300)]

SERVICES = ("odoo-gateway", "orchestrator", "carrier-router")


def delivered(odoo: OdooSandbox) -> tuple[str, int]:
    """A delivered order of 2 x WB-0001: (its delivery's name, id)."""
    order = odoo.create_order(lines=[("WB-0001", 2)])
    odoo.deliver_order(order.name)
    [name] = odoo.order(order.name).pickings
    return str(name), odoo.picking(name).id


def returned_by_a_user(odoo: OdooSandbox, delivery_id: int) -> int:
    """Odoo's return wizard on the delivery, as a user runs it (17): the return picking."""
    registry, admin = odoo.registry, odoo.admin
    [move] = call_kw(
        registry,
        admin,
        "stock.move",
        "search_read",
        [[("picking_id", "=", delivery_id)], ["product_id", "location_id"]],
    )
    context = {
        "active_id": delivery_id,
        "active_ids": [delivery_id],
        "active_model": "stock.picking",
    }
    line: dict[str, Any] = {
        "product_id": move["product_id"][0],
        "move_id": move["id"],
        "quantity": 1.0,
        "to_refund": True,
    }
    wizard = call_kw(
        registry,
        admin,
        "stock.return.picking",
        "create",
        [
            {
                "picking_id": delivery_id,
                "product_return_moves": [(0, 0, line)],
                "location_id": move["location_id"][0],
            }
        ],
        {"context": context},
    )
    action = call_kw(
        registry, admin, "stock.return.picking", "create_returns", [[wizard]], {"context": context}
    )
    return int(action["res_id"])


async def test_an_rma_gets_its_label_and_odoo_return_and_a_cancelled_return_its_label_voided(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    async with running_mesh(
        nc,
        nats_url,
        nats_prefix,
        services=SERVICES,
        odoo_version=17,
        tmp_state_dir=str(tmp_path),
        service_settings={"odoo-gateway": {"odoo_poll_interval_s": 0.5}},
    ) as mesh:
        odoo = mesh.odoo
        rma_order, _rma_delivery = delivered(odoo)
        assert mesh.plan.api_keys is not None
        shop = bearer(mesh.plan.api_keys, "operator", subject="shop")
        body = {
            "rma_id": "RMA-E2E-1",
            "order_ref": rma_order,
            "lines": [{"sku": "WB-0001", "quantity": 1, "reason": "too big"}],
        }
        async with (
            aiohttp.ClientSession(mesh.plan.service_url("odoo-gateway"), headers=shop) as http,
            http.post("/returns", json=body) as answer,
        ):
            assert answer.status == 202, await answer.text()
        marked = f"Return of {rma_order} (RMA-E2E-1)"
        made = await eventually(
            lambda: _pickings(odoo, marked),
            until=bool,
            what="the RMA's return picking in Odoo",
        )
        # A return an Odoo user made, cancelled before the parcel came.
        odoo_order, odoo_delivery = delivered(odoo)
        return_id = returned_by_a_user(odoo, odoo_delivery)
        booked = await eventually(
            lambda: events_of(nc, mesh.subjects, ReturnLabelBooked),
            until=lambda found: len(found) >= 2,
            what="both return labels bought",
        )
        call_kw(odoo.registry, odoo.admin, "stock.picking", "action_cancel", [[return_id]])
        [voided] = await eventually(
            lambda: events_of(nc, mesh.subjects, ReturnLabelVoided),
            what="the cancelled return's label voided",
        )
        requested = await events_of(nc, mesh.subjects, ReturnRequested)
        cancelled = await events_of(nc, mesh.subjects, ReturnCancelled)
        letters = await dead_letters(nc, mesh.subjects)
    by_return = {r.return_id: r for r in requested}
    [from_odoo] = [r for r in requested if r.odoo_return_picking_id == return_id]
    assert sorted(by_return) == sorted(["RMA-E2E-1", from_odoo.return_id])
    assert by_return["RMA-E2E-1"].odoo_return_picking_id is None
    assert from_odoo.order_ref == odoo_order
    assert len(made) == 1
    assert {b.return_id for b in booked} == set(by_return)
    assert [c.return_id for c in cancelled] == [from_odoo.return_id]
    assert voided.return_id == from_odoo.return_id
    assert letters == []


async def _pickings(odoo: OdooSandbox, origin: str) -> list[Any]:
    return list(
        call_kw(
            odoo.registry,
            odoo.admin,
            "stock.picking",
            "search_read",
            [[("origin", "=", origin)], ["state"]],
        )
    )
