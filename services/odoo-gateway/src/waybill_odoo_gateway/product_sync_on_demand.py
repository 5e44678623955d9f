"""``StartProductSync``: an operator runs a product master sync now, whatever its schedule.

The control tower's "sync products now" and ``waybill sync products`` send
it. The run is the scheduled one's (:class:`~waybill_odoo_gateway.product_master.ProductMaster`):
the products written since the last run, or the rest of a run a crash cut
off. One run per action: the action id keys a once-only effect whose result
is the run's batch id, so a redelivered action finds the run it started.
A gateway that dies mid-run leaves the effect in doubt; the redelivery after
that carries the stored run on from its next page, as the schedule would.
"""

from __future__ import annotations

import logging

from waybill_contracts.operations import StartProductSync
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.gateway import Gateway
from waybill_runtime.bus.consumer import HandlerContext

__all__ = ["start_product_sync"]

log = logging.getLogger("waybill.odoo.products")


async def start_product_sync(
    gateway: Gateway, command: StartProductSync, ctx: HandlerContext[OdooGatewaySettings]
) -> None:
    """Handle :class:`StartProductSync`: one product master run for this action."""

    async def run() -> str:
        log.info(
            "product sync started by %s (action %s)%s",
            command.operator,
            command.action_id,
            f": {command.note}" if command.note else "",
        )
        finished = await gateway.products.run()
        return finished.batch_id

    batch_id = await ctx.runtime.once_only(str).run(f"odoo:product-sync:{command.action_id}", run)
    log.info(
        "product sync %s ran for %s's action %s", batch_id, command.operator, command.action_id
    )
