"""Reconciled freight invoices in the orchestrator: billed costs to the order's picking,
each discrepancy raised as an exception and put on the picking when there is one; a
report seen twice sends nothing twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.services.orchestrator.bus import commands, events, publish, wait_for_commands
from tests.services.orchestrator.journey import released
from waybill_contracts import SubjectMap
from waybill_contracts.commands import PostExceptionInOdoo, RecordFreightCostInOdoo
from waybill_contracts.events import ExceptionRaised, FreightInvoiceReconciled
from waybill_contracts.model import FreightDiscrepancy, FreightMatch, Money
from waybill_orchestrator.app import build_service
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import settled

BILLED_REF, WRONG_REF = "WH/OUT/00101", "WH/OUT/00102"


def usd(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="USD")


REPORT = FreightInvoiceReconciled(
    reconciliation_id="freight:carrier-a:cinv_1",
    carrier="carrier-a",
    invoice_id="cinv_1",
    lines=3,
    matched=1,
    matched_total=usd("9.35"),
    matched_lines=(
        FreightMatch(
            line_id="shp_1",
            shipment_id="shp-101",
            order_ref=BILLED_REF,
            quoted=usd("9.34"),
            billed=usd("9.35"),
        ),
    ),
    discrepancies=(
        FreightDiscrepancy(
            line_id="shp_2",
            kind="over_tolerance",
            carrier_reference="shp_2",
            tracking_number="EZ1000000002",
            shipment_id="shp-102",
            order_ref=WRONG_REF,
            quoted=usd("9.34"),
            billed=usd("13.34"),
            reason="billed 13.34 USD, quoted 9.34 USD: +4.00 beyond the tolerance of 0.01",
        ),
        FreightDiscrepancy(
            line_id="shp_nobody",
            kind="unknown_label",
            carrier_reference="shp_nobody",
            billed=usd("7.00"),
            reason="billed 7.00 USD for shp_nobody, which is no label Waybill booked",
        ),
    ),
    reconciled_at=datetime(2026, 12, 6, 21, 0, tzinfo=UTC),
)


@pytest.fixture
async def subjects(nats_url: str, nats_prefix: str) -> AsyncIterator[SubjectMap]:
    async with running_service(
        build_service(), nats_url=nats_url, subject_prefix=nats_prefix, retry_backoff_s=(0.1,)
    ):
        yield SubjectMap(nats_prefix)


async def test_costs_go_to_the_pickings_and_discrepancies_to_ops_once(
    nc: NatsClient, subjects: SubjectMap
) -> None:
    picking_of = {BILLED_REF: 101, WRONG_REF: 102}
    for ref, picking_id in picking_of.items():
        event = released(ref)
        order = msgspec.structs.replace(event.order, odoo_picking_id=picking_id)
        await publish(
            nc, subjects, msgspec.structs.replace(event, order=order), source="odoo-gateway"
        )
    await wait_for_commands(nc, subjects, {"ReleaseToWarehouse": 2})
    for _ in range(2):  # the router announced it again (a crash before it was marked done)
        await publish(nc, subjects, REPORT, source="carrier-router")
    await settled(nc, subjects, "orchestrator", "events")

    sent = [d.message for d in await commands(nc, subjects)]
    [cost] = [m for m in sent if isinstance(m, RecordFreightCostInOdoo)]
    assert (cost.order_ref, cost.odoo_picking_id) == (BILLED_REF, 101)
    assert (cost.carrier, cost.invoice_id, cost.shipment_id) == ("carrier-a", "cinv_1", "shp-101")
    assert cost.billed == usd("9.35")
    [post] = [m for m in sent if isinstance(m, PostExceptionInOdoo)]
    assert (post.order_ref, post.odoo_picking_id) == (WRONG_REF, 102)
    assert "+4.00" in (post.detail or "") and "EZ1000000002" in post.summary
    raised = {
        m.code: m for d in await events(nc, subjects) if isinstance(m := d.message, ExceptionRaised)
    }
    assert set(raised) == {"freight_over_tolerance", "freight_unknown_label"}
    assert raised["freight_over_tolerance"].order_ref == WRONG_REF
    assert raised["freight_over_tolerance"].exception_id == post.exception_id
    assert not raised["freight_over_tolerance"].order_held
    assert raised["freight_unknown_label"].order_ref is None
    assert raised["freight_unknown_label"].stage == "freight"
    events_raised = [
        d for d in await events(nc, subjects) if isinstance(d.message, ExceptionRaised)
    ]
    assert len(events_raised) == 2
