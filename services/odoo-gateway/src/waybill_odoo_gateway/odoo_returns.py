"""Returns made in Odoo: a return picking an Odoo user made from a delivery (the return
wizard) becomes ``ReturnRequested``; cancelled before receipt, ``ReturnCancelled``.

Found the way orders are: the webhook of a picking (an automation rule on
incoming transfers, if Odoo has one) and the poll, which reads incoming
pickings beside outgoing ones. A return picking is an incoming picking whose
moves were returned from delivered moves (``origin_returned_move_id``, on
every version; 17+ also set the picking's ``return_id``). Its return id is the
picking's name (``WH/IN/00007``); the delivery, customer and address are the
delivered order's.

Those the gateway made itself for an RMA (origin ``Return of WH/OUT/00001
(RMA-7)``) were requested through its API already and are left alone (and so is one
not marked yet: the wizard makes the picking and the gateway marks it in a second call,
so a picking with exactly the lines of an RMA still waiting for its picking is that
RMA's, see :meth:`RmaLedger.awaiting_picking`), as are
returns validated in Odoo before the gateway saw them open (the goods are back:
no label is needed). Each fact is published once: its message id comes from
the picking and a marker in the watermarks bucket keeps it out after
JetStream's duplicate window, as for orders.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from waybill_contracts import fact_id
from waybill_contracts.events import ReturnCancelled
from waybill_contracts.model import Quantity
from waybill_contracts.returns import ReturnLine
from waybill_odoo_gateway.deliveries import DeliveryReader, Picking
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_values import decimal_quantity, many2one_id, text
from waybill_odoo_gateway.order_facts import Seen, marker_key
from waybill_odoo_gateway.return_pickings import with_skus
from waybill_odoo_gateway.return_requests import return_requested
from waybill_odoo_gateway.rma_ledger import RmaLedger
from waybill_runtime.bus.publisher import Publisher

__all__ = ["RECEIPT_MARK", "ReturnFacts", "ReturnSeen", "receipt_marker"]

log = logging.getLogger("waybill.odoo.returns")

# The mark return_pickings.create_return puts on the pickings it makes for an RMA.
_RMA_MARK = re.compile(r"^Return of .+ \(.+\)$")
_OPEN = frozenset({"confirmed", "waiting", "assigned"})


RECEIPT_MARK = "return_receiving"
"""The fact the receipt of a return picking began (``return_receipt.py``): a picking that
receiving then cancels (nothing came back) is no cancellation of the return."""


def receipt_marker(picking_id: int) -> str:
    """The watermarks-bucket key saying the gateway is receiving the return picking."""
    return marker_key(picking_id, RECEIPT_MARK)


class ReturnSeen(msgspec.Struct, frozen=True):
    """What the watermarks bucket keeps of a return picking announced."""

    ref: str
    delivery: str
    at: datetime


class ReturnFacts:
    """Publishes ``ReturnRequested`` and ``ReturnCancelled`` for Odoo's return pickings."""

    def __init__(
        self,
        odoo: OdooClient,
        reader: DeliveryReader,
        publisher: Publisher,
        marks: KeyValue,
        rmas: KeyValue,
        carrier_names: Mapping[str, str],
    ) -> None:
        self._odoo = odoo
        self._reader = reader
        self._publisher = publisher
        self._marks = marks
        self._rmas = rmas
        self._carrier_names = carrier_names

    async def on_incoming(self, picking: Picking) -> Seen:
        """Decide on an incoming picking (the caller holds its lock)."""
        if _RMA_MARK.match(text(picking.row.get("origin")) or ""):
            return Seen.IGNORED  # an RMA's, requested through the API
        if picking.state == "draft":
            return Seen.NOT_READY
        if picking.state in _OPEN:
            if await self._marked(picking.id, "requested"):
                return Seen.ALREADY_KNOWN
            return await self._request(picking)
        if picking.state == "cancel":
            return await self._cancel(picking)
        return Seen.IGNORED  # done: received in Odoo before anyone needed a label

    async def _request(self, picking: Picking) -> Seen:
        moves = await self._odoo.call(
            "stock.move",
            "read",
            picking.move_ids,
            fields=["product_id", "product_uom_qty", "origin_returned_move_id", "state"],
        )
        returned = [m for m in moves if many2one_id(m.get("origin_returned_move_id"))]
        if not returned:
            return Seen.IGNORED  # a receipt from a vendor, not a return
        delivered = {many2one_id(m["origin_returned_move_id"]) for m in returned}
        origins = await self._odoo.call(
            "stock.move", "read", sorted(d for d in delivered if d), fields=["picking_id"]
        )
        delivery_ids = {many2one_id(row.get("picking_id")) for row in origins}
        delivery_ids.discard(None)
        if len(delivery_ids) != 1:
            log.warning(
                "return %s returns moves of %d deliveries: not announced (one order per return)",
                picking.name,
                len(delivery_ids),
            )
            return Seen.IGNORED
        delivery = await self._reader.picking(delivery_ids.pop() or 0)
        if delivery is None:
            return Seen.IGNORED
        lines = tuple(
            ReturnLine(
                line_no=number,
                sku=sku,
                quantity=Quantity(value=decimal_quantity(row["product_uom_qty"]), uom="Units"),
                odoo_move_id=many2one_id(row["origin_returned_move_id"]),
            )
            for number, (sku, row) in enumerate(await with_skus(self._odoo, returned), start=1)
            if decimal_quantity(row["product_uom_qty"]) > Decimal(0)
        )
        if not lines:
            return Seen.IGNORED
        rma = await RmaLedger(self._rmas, delivery).load()
        making = await rma.awaiting_picking(
            self._odoo, ((line.sku, line.quantity.value) for line in lines)
        )
        if making is not None:
            log.info(
                "return picking %s has the lines of RMA %s, which is waiting for its picking: "
                "it is that RMA's, not marked yet (not announced again)",
                picking.name,
                making,
            )
            return Seen.IGNORED
        requested = await return_requested(
            self._reader,
            self._carrier_names,
            delivery,
            return_id=picking.name,
            lines=lines,
            return_picking_id=picking.id,
            requested_at=picking.write_date or datetime.now(UTC),
        )
        await self._publisher.publish(
            requested, fact_id=fact_id("odoo", "stock.picking", picking.id, "return_requested")
        )
        await self._mark(picking, delivery.name, "requested")
        log.info("return %s requested in Odoo for order %s", picking.name, delivery.name)
        return Seen.RETURN_REQUESTED

    async def _cancel(self, picking: Picking) -> Seen:
        requested = await self._marker(picking.id, "requested")
        if requested is None:
            return Seen.IGNORED  # never announced: nothing to call off
        if await self._marked(picking.id, "cancelled"):
            return Seen.ALREADY_KNOWN
        if await self._receiving(picking.id):
            return Seen.IGNORED  # cancelled by its receipt: nothing came back
        cancelled = ReturnCancelled(
            return_id=picking.name,
            order_ref=requested.delivery,
            reason=f"return {picking.name} was cancelled in Odoo",
            cancelled_at=picking.write_date or datetime.now(UTC),
        )
        await self._publisher.publish(
            cancelled, fact_id=fact_id("odoo", "stock.picking", picking.id, "return_cancelled")
        )
        await self._mark(picking, requested.delivery, "cancelled")
        log.info("return %s cancelled in Odoo", picking.name)
        return Seen.RETURN_CANCELLED

    async def _marker(self, picking_id: int, fact: str) -> ReturnSeen | None:
        try:
            entry = await self._marks.get(marker_key(picking_id, f"return_{fact}"))
        except KeyNotFoundError:
            return None
        return msgspec.json.decode(entry.value or b"", type=ReturnSeen)

    async def _receiving(self, picking_id: int) -> bool:
        try:
            await self._marks.get(receipt_marker(picking_id))
        except KeyNotFoundError:
            return False
        return True

    async def _marked(self, picking_id: int, fact: str) -> bool:
        return await self._marker(picking_id, fact) is not None

    async def _mark(self, picking: Picking, delivery: str, fact: str) -> None:
        seen = ReturnSeen(ref=picking.name, delivery=delivery, at=datetime.now(UTC))
        await self._marks.put(marker_key(picking.id, f"return_{fact}"), msgspec.json.encode(seen))
