"""What a reconciled freight invoice means for the orders: costs into Odoo, discrepancies to ops.

The carrier-router reconciles each carrier invoice and announces it
(``FreightInvoiceReconciled``); the orchestrator, which knows each order's
picking, decides what follows (the design's rule: it sends every command):

- each matched line → ``RecordFreightCostInOdoo``: the billed amount becomes
  the picking's ``carrier_price``;
- each discrepancy → ``ExceptionRaised`` (code ``freight_<kind>``, the order
  not held: its goods are gone already) and, when the line names an order
  with a picking, ``PostExceptionInOdoo`` on that picking, as order
  exceptions reach people.

Every message's id is derived from the carrier, invoice and line, so a report
seen twice sends nothing twice. The order's state is only read, never
changed: freight follows the order, it does not move it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from waybill_contracts import fact_id
from waybill_contracts.commands import PostExceptionInOdoo, RecordFreightCostInOdoo
from waybill_contracts.events import ExceptionRaised, FreightInvoiceReconciled
from waybill_contracts.model import FreightDiscrepancy
from waybill_orchestrator.config import OrchestratorSettings
from waybill_orchestrator.handlers import WORKFLOW
from waybill_orchestrator.state import OrderState
from waybill_runtime.bus.consumer import HandlerContext

__all__ = ["on_freight_invoice_reconciled"]

log = logging.getLogger("waybill.orchestrator.freight")

NO_ORDER_STAGE = "freight"
"""The stage of a freight exception that names no order (a shipment Waybill never booked)."""


async def on_freight_invoice_reconciled(
    report: FreightInvoiceReconciled, ctx: HandlerContext[OrchestratorSettings]
) -> None:
    """Send the billed costs to Odoo and raise an exception per discrepancy."""
    store = ctx.resource(WORKFLOW)
    for match in report.matched_lines:
        state, _ = await store.read(match.order_ref)
        if state is None:
            log.warning(
                "freight invoice %s of %s bills order %s, which the orchestrator no longer "
                "keeps: its carrier_price is left as booked",
                report.invoice_id,
                report.carrier,
                match.order_ref,
            )
            continue
        command = RecordFreightCostInOdoo(
            order_ref=state.order_ref,
            odoo_picking_id=state.odoo_picking_id,
            shipment_id=match.shipment_id,
            carrier=report.carrier,
            invoice_id=report.invoice_id,
            billed=match.billed,
        )
        await ctx.publish(command, fact_id=fact_id("freight.cost", command.business_key()))
    for found in report.discrepancies:
        state = (await store.read(found.order_ref))[0] if found.order_ref else None
        await _raise(report, found, state, ctx)


async def _raise(
    report: FreightInvoiceReconciled,
    found: FreightDiscrepancy,
    state: OrderState | None,
    ctx: HandlerContext[OrchestratorSettings],
) -> None:
    exception_id = f"freight:{report.carrier}:{report.invoice_id}:{found.line_id}"
    summary = _summary(report, found)
    raised = ExceptionRaised(
        exception_id=exception_id,
        order_ref=found.order_ref,
        stage=state.stage.value if state is not None else NO_ORDER_STAGE,
        code=f"freight_{found.kind}",
        summary=summary,
        detail=found.reason,
        order_held=False,
        raised_at=datetime.now(UTC),
    )
    await ctx.publish(raised, fact_id=fact_id("exception", exception_id))
    if state is None:
        return  # no picking to put it on: the control tower and the notifier show it
    post = PostExceptionInOdoo(
        exception_id=exception_id,
        order_ref=state.order_ref,
        odoo_picking_id=state.odoo_picking_id,
        odoo_sale_order_id=state.odoo_sale_order_id,
        summary=summary,
        detail=found.reason,
        assignee_login=ctx.settings.ops_assignee_login,
    )
    await ctx.publish(post, fact_id=fact_id("odoo.exception", exception_id))


def _summary(report: FreightInvoiceReconciled, found: FreightDiscrepancy) -> str:
    what = {
        "over_tolerance": "billed other than quoted",
        "unknown_label": "bills a shipment Waybill never booked",
        "malformed": "has a line that cannot be read",
    }[found.kind]
    subject = found.tracking_number or found.carrier_reference or found.line_id
    return f"Freight invoice {report.invoice_id} ({report.carrier}) {what}: {subject}"
