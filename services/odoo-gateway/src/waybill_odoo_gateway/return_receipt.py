"""``ReceiveReturnInOdoo``: the return picking received as the warehouse inspected it, once;
then ``ReturnStockPosted``.

Resellable units go back to stock, damaged ones are received and scrapped,
missing ones never arrive (``return_pickings.receive_return``). The return
picking is the command's, else the one made for the return id from the
delivery (an RMA's, marked with its reference).
"""

from __future__ import annotations

from datetime import UTC, datetime

from waybill_contracts import fact_id
from waybill_contracts.events import ReturnStockPosted
from waybill_contracts.return_commands import ReceiveReturnInOdoo
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.gateway import Gateway
from waybill_odoo_gateway.odoo_returns import receipt_marker
from waybill_odoo_gateway.return_pickings import InspectedLine, find_return, receive_return
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.outcomes import RetryLater

__all__ = ["receive_return_in_odoo"]

MARKS_BUCKET = "watermarks"


async def _return_picking(gateway: Gateway, command: ReceiveReturnInOdoo) -> int:
    if command.odoo_return_picking_id is not None:
        return command.odoo_return_picking_id
    delivery = await gateway.picking_for(command.odoo_picking_id, command.order_ref)
    made = await find_return(gateway.odoo, command.return_id, delivery.name)
    if made is None:
        # CreateReturnInOdoo may still be on its way (or waiting for Odoo): it is sent first,
        # so this waits for it; WAYBILL_MAX_DELIVER bounds the wait, then a dead letter.
        raise RetryLater(
            f"return {command.return_id}: no return picking of {delivery.name} made for it yet"
        )
    return made.id


async def receive_return_in_odoo(
    gateway: Gateway, command: ReceiveReturnInOdoo, ctx: HandlerContext[OdooGatewaySettings]
) -> None:
    """Handle :class:`ReceiveReturnInOdoo` and publish :class:`ReturnStockPosted`."""
    picking_id = await _return_picking(gateway, command)
    inspected = [
        InspectedLine(
            sku=line.sku,
            resellable=line.resellable.value,
            damaged=line.damaged.value,
            missing=line.missing.value,
        )
        for line in command.lines
    ]

    async def receive() -> int:
        return (await receive_return(gateway.odoo, picking_id, inspected)).id

    damaged = len({line.sku for line in inspected if line.damaged > 0})

    async def received() -> int | None:
        # Made when Odoo has the picking cancelled (nothing came back), or done with a done
        # scrap order per damaged product; otherwise the attempt stopped half way and
        # receive_return, which moves nothing twice, finishes it.
        rows = await gateway.odoo.call(
            "stock.picking", "search_read", domain=[("id", "=", picking_id)], fields=["state"]
        )
        state = rows[0]["state"] if rows else None
        if state == "cancel":
            return picking_id
        if state != "done":
            return None
        scraps = await gateway.odoo.call(
            "stock.scrap",
            "search_count",
            domain=[("picking_id", "=", picking_id), ("state", "=", "done")],
        )
        return picking_id if scraps >= damaged else None

    async with gateway.returns.hold(command.return_id), gateway.pickings.hold(picking_id):
        # Before Odoo may cancel it (nothing came back): the poll must not take that for the
        # customer cancelling the return.
        await ctx.runtime.buckets[MARKS_BUCKET].put(
            receipt_marker(picking_id), command.return_id.encode()
        )
        await ctx.runtime.once_only(int).run(
            f"odoo:return:{command.return_id}:receive:{picking_id}", receive, recover=received
        )
    posted = ReturnStockPosted(
        return_id=command.return_id,
        order_ref=command.order_ref,
        odoo_return_picking_id=picking_id,
        lines=command.lines,
        posted_at=datetime.now(UTC),
    )
    await ctx.publish(
        posted, fact_id=fact_id("odoo", "stock.picking", picking_id, "return_stock_posted")
    )
