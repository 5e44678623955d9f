"""What the carrier billed for a shipment, on its picking: ``carrier_price``.

Booking writes the quoted price (:mod:`waybill_odoo_gateway.shipment_recording`);
once the carrier's invoice has been reconciled, the billed amount replaces it.
Each invoice line is written once (an effect-once record keyed by carrier,
invoice and shipment): a command seen again changes nothing, and a later
invoice for the same shipment (a carrier's correction) writes its own amount.
"""

from __future__ import annotations

import logging

from waybill_contracts.commands import RecordFreightCostInOdoo
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.gateway import Gateway
from waybill_runtime.bus.consumer import HandlerContext

__all__ = ["record_freight_cost"]

log = logging.getLogger("waybill.odoo.freight")


async def record_freight_cost(
    gateway: Gateway, command: RecordFreightCostInOdoo, ctx: HandlerContext[OdooGatewaySettings]
) -> None:
    """Handle :class:`RecordFreightCostInOdoo`: write ``carrier_price`` on the picking once."""
    async with gateway.pickings.hold(command.odoo_picking_id):
        picking = await gateway.picking_for(command.odoo_picking_id, command.order_ref)

        async def write_price() -> bool:
            # Odoo's carrier_price is a float in the company's currency; the carrier
            # accounts are kept in one currency (see the carrier-router's README).
            await gateway.odoo.call(
                "stock.picking",
                "write",
                [picking.id],
                vals={"carrier_price": float(command.billed.amount)},
            )
            return True

        # Writing the same price twice is harmless, so an interrupted write is redone.
        await ctx.runtime.once_only(bool).run(f"odoo:freight:{command.business_key()}", write_price)
    log.info(
        "picking %s: carrier_price %s %s from %s invoice %s",
        picking.name,
        command.billed.amount,
        command.billed.currency,
        command.carrier,
        command.invoice_id,
    )
