"""``CreateReturnInOdoo``: the return picking of an RMA, made by Odoo's return wizard once.

The orchestrator sends it for a return requested through the gateway's RMA
API (a return made in Odoo has its picking already). It waits for no event in
answer: the picking is found again by the RMA reference when the warehouse's
inspection is posted (``ReceiveReturnInOdoo`` without a return picking id).
"""

from __future__ import annotations

import logging

from waybill_contracts.return_commands import CreateReturnInOdoo
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.gateway import Gateway
from waybill_odoo_gateway.return_pickings import (
    ReturnedLine,
    ReturnRequest,
    create_return,
    find_return,
)
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.outcomes import PermanentError

__all__ = ["create_return_in_odoo"]

log = logging.getLogger("waybill.odoo.returns")


async def create_return_in_odoo(
    gateway: Gateway, command: CreateReturnInOdoo, ctx: HandlerContext[OdooGatewaySettings]
) -> None:
    """Handle :class:`CreateReturnInOdoo`: the return picking made once per return id."""
    async with gateway.pickings.hold(command.odoo_picking_id):
        delivery = await gateway.picking_for(command.odoo_picking_id, command.order_ref)
        if not delivery.outgoing:
            raise PermanentError(
                f"{delivery.name} is not a delivery: return {command.return_id} cannot be made "
                "from it"
            )
        request = ReturnRequest(
            reference=command.return_id,
            delivery=delivery.name,
            lines=tuple(
                ReturnedLine(sku=line.sku, quantity=line.quantity.value) for line in command.lines
            ),
        )

        async def make() -> int:
            return (await create_return(gateway.odoo, request)).id

        async def made() -> int | None:
            found = await find_return(gateway.odoo, command.return_id, delivery.name)
            return found.id if found is not None else None

        picking_id = await ctx.runtime.once_only(int).run(
            f"odoo:return:{command.return_id}:create", make, recover=made
        )
    log.info(
        "return %s: Odoo return picking %d of %s", command.return_id, picking_id, delivery.name
    )
