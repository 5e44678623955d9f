"""Issue 20's acceptance: delivered orders come back through the whole mesh. Each return gets
one return label, one receipt at the warehouse, the right stock moves in Odoo (resellable units
back in stock, damaged ones scrapped) and exactly one credit note for the accepted lines; the
customer is told once of each step.

The orders go out through the mesh (order to ship, delivered), accounting invoices them in the
Odoo sandbox, and the shop asks for each return on the odoo-gateway's RMA API. The customer's
parcel reaching the dock is the one thing a test does by hand (the sandboxes do not talk to
each other): the WMS sandbox's dock receives and inspects each return once it is announced.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client as NatsClient

from tests.e2e.mesh import ALL_SERVICES, running_mesh
from waybill_contracts import Message, SubjectMap
from waybill_contracts.events import DeliveryRecordedInOdoo, ReturnCompleted
from waybill_runtime.testing.streams import dead_letters, stored_in
from waybill_runtime.testing.tokens import bearer
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.odoo.accounting import invoice_delivered
from waybill_sandboxes.odoo.seed import ADMIN_UID
from waybill_sandboxes.wms.return_records import InspectionPlan, LineFinding
from waybill_sandboxes.wms.returns_dock import UnknownReturn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

LINES = [("WB-0001", 2.0), ("WB-0002", 1.0)]
DAMAGED = LineFinding(sku="WB-0001", damaged=1.0)  # one of the two came back broken


async def stored(nc: NatsClient, subjects: SubjectMap, kind: type[Message]) -> list[Any]:
    return [d.message for d in await stored_in(nc, subjects, subjects.events_stream)
            if isinstance(d.message, kind)]  # fmt: skip


async def test_delivered_orders_come_back_with_one_label_receipt_and_credit_note_each(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    await returns_come_back(nc, nats_url, nats_prefix, 4)


@pytest.mark.long
async def test_a_hundred_delivered_orders_come_back_each_with_one_of_everything(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    # The acceptance's hundred, apart from make test (about a minute on 2 cores).
    await returns_come_back(nc, nats_url, nats_prefix, 100)


async def returns_come_back(nc: NatsClient, nats_url: str, nats_prefix: str, returns: int) -> None:
    """``returns`` orders out through the mesh and back, each checked to its end."""
    async with running_mesh(nc, nats_url, nats_prefix, services=ALL_SERVICES) as mesh:
        odoo, subjects = mesh.odoo, mesh.subjects
        orders = [odoo.create_order(lines=list(LINES)) for _ in range(returns)]
        refs = {order.pickings[0]: order for order in orders}
        await eventually(
            lambda: stored(nc, subjects, DeliveryRecordedInOdoo),
            until=lambda found: len({d.order_ref for d in found}) >= returns,
            timeout_s=600,
            what=f"{returns} orders delivered",
        )
        with odoo.registry.transaction():  # accounting invoices what was delivered
            for order in orders:
                assert invoice_delivered(odoo.registry, order.id, ADMIN_UID) is not None
        rma = {ref: f"RMA-{n:04d}" for n, ref in enumerate(refs, start=1)}
        for return_id in rma.values():
            mesh.wms.returns.plan_inspection(return_id, InspectionPlan(lines=[DAMAGED]))
        gateway = mesh.plan.service_url("odoo-gateway")
        assert mesh.plan.api_keys is not None
        async with aiohttp.ClientSession(headers=bearer(mesh.plan.api_keys, "operator")) as http:
            for ref, return_id in rma.items():
                lines = [{"sku": sku, "quantity": qty, "reason": "changed my mind"}
                         for sku, qty in LINES]  # fmt: skip
                body = {"rma_id": return_id, "order_ref": ref, "lines": lines}
                async with http.post(f"{gateway}/returns", json=body) as answer:
                    assert answer.status == 202, await answer.text()

        # The customer drops each parcel off; it reaches the dock once announced there.
        waiting = set(rma.values())

        def arrive() -> set[str]:
            for return_id in sorted(waiting):
                try:
                    mesh.wms.returns.find(return_id)
                except UnknownReturn:
                    continue
                mesh.wms.returns.receive(return_id)
                mesh.wms.returns.inspect(return_id)
                waiting.discard(return_id)
            return waiting

        async def arrived() -> set[str]:
            return arrive()

        await eventually(arrived, until=lambda left: not left, timeout_s=300,
                         what="every return announced at the warehouse's dock")  # fmt: skip
        completed = await eventually(
            lambda: stored(nc, subjects, ReturnCompleted),
            until=lambda found: len({c.return_id for c in found}) >= returns,
            timeout_s=300,
            what=f"{returns} returns completed",
        )
        letters = await dead_letters(nc, subjects)
        mails = list(mesh.mail.smtp.messages)
        return_labels = Counter(
            p.reference for c in (mesh.carrier_a, mesh.carrier_b) for p in c.purchases
            if p.is_return
        )  # fmt: skip
        registry = odoo.registry

        def search(model: str, domain: list[Any]) -> list[int]:
            return list(registry.search(model, domain))

        credit_notes = {
            order.name: search("account.move", [("move_type", "=", "out_refund"),
                                                 ("invoice_origin", "=", order.name)])
            for order in orders
        }  # fmt: skip
        return_pickings = {
            return_id: [(p, registry.value("stock.picking", p, "state"))
                        for p in search("stock.picking", [("origin", "ilike", return_id)])]
            for return_id in rma.values()
        }  # fmt: skip
        invoiced = {
            order.name: [registry.value("account.move", m, "amount_total")
                         for m in search("account.move", [("move_type", "=", "out_invoice"),
                                                           ("invoice_origin", "=", order.name)])]
            for order in orders
        }  # fmt: skip
        credited = {
            name: [registry.value("account.move", m, "amount_total") for m in notes]
            for name, notes in credit_notes.items()
        }
        scraps = Counter(
            registry.value("stock.scrap", scrap, "origin") for scrap in search("stock.scrap", [])
        )
    assert letters == []
    assert {c.return_id for c in completed} == set(rma.values())
    # One return label each (the carriers' purchases of return labels, by Waybill's reference).
    assert len(return_labels) == returns and set(return_labels.values()) == {1}
    # One receipt each at the warehouse, inspected once.
    assert all(mesh.wms.returns.find(r).status == "inspected" for r in rma.values())
    # Exactly one posted credit note per order, for the accepted lines: one WB-0001 and the
    # WB-0002 (the broken WB-0001 is not credited).
    for order in orders:
        [note] = credit_notes[order.name]
        assert registry.value("account.move", note, "state") == "posted"
        [invoice_total], [credit_total] = invoiced[order.name], credited[order.name]
        assert 0 < credit_total < invoice_total, (order.name, invoice_total, credit_total)
    # One return picking each in Odoo, received.
    assert all([state for _, state in found] == ["done"] for found in return_pickings.values()), (
        return_pickings
    )
    # The damaged unit of each return scrapped once.
    assert sum(scraps.values()) == returns
    # Emails once each: the return label and the credit confirmation per order.
    kinds = Counter(
        (m.headers.get("X-Waybill-Order-Ref"), m.headers.get("X-Waybill-Notification-Kind"))
        for m in mails
    )
    for ref in refs:
        assert kinds[(ref, "return_label")] == 1, kinds
        assert kinds[(ref, "return_credited")] == 1, kinds
