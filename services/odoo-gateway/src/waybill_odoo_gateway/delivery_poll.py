"""The safety net under Odoo's webhooks: poll for deliveries that became ready or cancelled.

Odoo sends each webhook once, with a 1 s timeout, and up to 18 before its
transaction commits, so some are lost or premature. Every round asks Odoo
for outgoing pickings (and incoming ones: customer returns made in Odoo) in
state ``assigned`` or ``cancel`` written since the
stored watermark (minus a small overlap, since ``write_date`` is the start
of Odoo's transaction, to the second) and sends each through the same path
as a webhook. The watermark only moves once a round published everything it
found; a picking that cannot become an order (no address, say) is logged and
skipped, and comes back when someone edits it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from nats.js.kv import KeyValue

from waybill_odoo_gateway.changed_since import (
    Cursor,
    advance_watermark,
    page_written_after,
    read_watermark,
)
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.deliveries import PICKING_FIELDS, Picking, UnshippableOrder
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_errors import OdooLoginRejected, OdooRefused
from waybill_odoo_gateway.odoo_values import earlier, text
from waybill_odoo_gateway.order_facts import OrderFacts, Seen
from waybill_runtime.cancellation import raise_if_cancelled

__all__ = ["WATERMARK_KEY", "DeliveryPoll"]

log = logging.getLogger("waybill.odoo.poll")

WATERMARK_KEY = "odoo.outgoing_pickings.write_date"
"""Where the poll keeps the newest ``write_date`` it has fully handled."""


class DeliveryPoll:
    """One poll round at a time over Odoo's outgoing pickings."""

    def __init__(
        self,
        odoo: OdooClient,
        facts: OrderFacts,
        watermarks: KeyValue,
        settings: OdooGatewaySettings,
        *,
        count: Callable[[Seen], None] = lambda seen: None,
    ) -> None:
        self._odoo = odoo
        self._count = count
        self._facts = facts
        self._watermarks = watermarks
        self._settings = settings

    async def watermark(self) -> str | None:
        """The stored watermark (an Odoo datetime), None before the first full round."""
        return await read_watermark(self._watermarks, WATERMARK_KEY)

    async def poll_once(self) -> dict[Seen, int]:
        """One round: publish what changed since the watermark; returns what it saw."""
        try:
            return await self._round()
        finally:
            raise_if_cancelled()

    async def _round(self) -> dict[Seen, int]:
        try:
            await self._odoo.connect()
        except OdooLoginRejected:
            return {}  # the login keeper has said why, once; no use asking Odoo
        since = await self.watermark()
        domain: list[object] = [
            # Incoming too: a customer's return made in Odoo (odoo_returns.py).
            ("picking_type_code", "in", ["outgoing", "incoming"]),
            ("state", "in", ["assigned", "cancel"]),
        ]
        if since is not None:
            domain.append(("write_date", ">", earlier(since, self._settings.odoo_poll_overlap_s)))
        seen: dict[Seen, int] = {}
        newest = since
        cursor: Cursor | None = None
        while True:
            rows, cursor = await page_written_after(
                self._odoo,
                "stock.picking",
                domain,
                PICKING_FIELDS,
                after=cursor,
                size=self._settings.odoo_poll_page_size,
            )
            for row in rows:
                picking = Picking.from_row(row)
                outcome = await self._look_at(picking)
                seen[outcome] = seen.get(outcome, 0) + 1
                self._count(outcome)
                written = text(row.get("write_date"))
                if written is not None and (newest is None or written > newest):
                    newest = written
            if cursor is None:
                break
        if newest is not None and newest != since:
            await advance_watermark(self._watermarks, WATERMARK_KEY, newest)
        if seen.get(Seen.RELEASED) or seen.get(Seen.CANCELLED):
            log.info(
                "poll found %d released and %d cancelled order(s)",
                seen.get(Seen.RELEASED, 0),
                seen.get(Seen.CANCELLED, 0),
            )
        return seen

    async def _look_at(self, picking: Picking) -> Seen:
        try:
            return await self._facts.on_picking_row(picking)
        except (UnshippableOrder, OdooRefused) as refused:
            # Retrying will not help until someone edits the picking, which
            # moves its write_date past the watermark again.
            log.warning("skipping Odoo picking %s: %s", picking.name, refused)
            return Seen.FAILED
