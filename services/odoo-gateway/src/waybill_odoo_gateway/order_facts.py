"""Order released / order cancelled: decided from Odoo's current state, published once.

The release decides the order's lane (:func:`waybill_contracts.order_lane`):
an urgent picking, an express order or one promised soon is released on the
express lane, and every message it causes follows it there.

Webhooks, the poll and their repeats all end here. Each fact's message id is
derived from the picking (``fact_id("odoo", "stock.picking", id, "released")``),
so JetStream drops a repeat within its duplicate window; a marker in the
"watermarks" bucket, written after the publish, keeps a repeat out after the
window too (a replayed webhook, a poll after a restart). The markers have no
expiry on purpose: a picking edited months later must not start a second
shipment.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from waybill_contracts import Lane, fact_id, order_lane
from waybill_contracts.events import OrderCancelled, OrderReleased
from waybill_odoo_gateway.deliveries import DeliveryReader, Picking
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.recent import Recent
from waybill_runtime.resilience import KeyedLock

__all__ = ["OrderFacts", "Seen", "marker_key"]

log = logging.getLogger("waybill.odoo.orders")

# States a picking passes through before it is ready; a webhook that finds
# one of them may have come before its transaction committed.
_NOT_READY_YET = frozenset({"draft", "waiting", "confirmed"})


class Seen(enum.Enum):
    """What looking at a picking (or sale order) led to."""

    RELEASED = "released"
    CANCELLED = "cancelled"
    ALREADY_KNOWN = "already_known"
    NOT_READY = "not_ready"
    IGNORED = "ignored"
    GONE = "gone"
    FAILED = "failed"
    RETURN_REQUESTED = "return_requested"
    RETURN_CANCELLED = "return_cancelled"


class _Marker(msgspec.Struct, frozen=True):
    ref: str
    at: datetime


REMEMBERED_MARKERS = 4096
"""How many markers each gateway remembers seeing or writing (oldest forgotten first)."""


def marker_key(picking_id: int, fact: str) -> str:
    """The watermarks-bucket key marking that ``fact`` was published for a picking."""
    return f"odoo.picking.{picking_id}.{fact}"


class OrderFacts:
    """Publishes ``OrderReleased`` and ``OrderCancelled`` for Odoo deliveries, once each."""

    def __init__(
        self,
        odoo: OdooClient,
        reader: DeliveryReader,
        publisher: Publisher,
        marks: KeyValue,
        *,
        express_promised_within: timedelta | None = timedelta(hours=24),
        on_incoming: Callable[[Picking], Awaitable[Seen]] | None = None,
    ) -> None:
        """``express_promised_within``: an order promised sooner goes express (None: no date).
        ``on_incoming``: what decides on an incoming picking (a customer's return)."""
        self._on_incoming = on_incoming
        self._express_promised_within = express_promised_within
        self._odoo = odoo
        self._reader = reader
        self._publisher = publisher
        self._marks = marks
        # A webhook and a poll looking at one picking at once would both build
        # and publish its order; one at a time, the second finds the marker.
        self._pickings = KeyedLock()
        # Markers seen or written here: a marker is never deleted (see the module), so
        # the poll finding a picking released by webhook moments ago (every order, once
        # or twice), and webhooks repeated, need no read of the bucket for it.
        self._known_marks: Recent[str, bool] = Recent(REMEMBERED_MARKERS)

    async def on_picking(self, picking_id: int) -> Seen:
        """Re-read a picking from Odoo and publish what its state means."""
        async with self._pickings.hold(picking_id):
            picking = await self._reader.picking_to_decide(picking_id)
            if picking is None:
                return Seen.GONE
            return await self._decide(picking)

    async def on_picking_row(self, picking: Picking) -> Seen:
        """Like :meth:`on_picking` for a picking just read by the poll."""
        async with self._pickings.hold(picking.id):
            return await self._decide(picking)

    async def on_sale_order(self, order_id: int) -> Seen:
        """Re-read a sale order; when it is cancelled, so are its released deliveries."""
        orders = await self._odoo.call(
            "sale.order",
            "search_read",
            domain=[("id", "=", order_id)],
            fields=["name", "state", "picking_ids"],
        )
        if not orders:
            return Seen.GONE
        if orders[0].get("state") != "cancel":
            return Seen.NOT_READY
        picking_ids = [p for p in orders[0].get("picking_ids") or [] if isinstance(p, int)]
        outcomes = [await self.on_picking(picking_id) for picking_id in picking_ids]
        if Seen.CANCELLED in outcomes:
            return Seen.CANCELLED
        return Seen.ALREADY_KNOWN if Seen.ALREADY_KNOWN in outcomes else Seen.IGNORED

    async def _decide(self, picking: Picking) -> Seen:
        if not picking.outgoing:
            incoming = picking.row.get("picking_type_code") == "incoming"
            if incoming and self._on_incoming is not None:
                return await self._on_incoming(picking)
            return Seen.IGNORED
        if picking.state == "assigned":
            return await self._release(picking)
        if picking.state == "cancel":
            return await self._cancel(picking)
        return Seen.NOT_READY if picking.state in _NOT_READY_YET else Seen.IGNORED

    async def _release(self, picking: Picking) -> Seen:
        if await self._marked(picking.id, "released"):
            return Seen.ALREADY_KNOWN
        order = await self._reader.order(picking)
        released = OrderReleased(order=order, released_at=picking.write_date or _now())
        lane = self._lane(released)
        await self._publisher.publish(
            released, fact_id=fact_id("odoo", "stock.picking", picking.id, "released"), lane=lane
        )
        await self._mark(picking, "released")
        # DEBUG: a line an order (the JSON formatting, the filters, a write to stderr:
        # about 20 us of CPU) adds nothing the event stream, the auditor's trail and
        # the order's timeline do not already say.
        log.debug("order %s released (Odoo picking %d, %s)", picking.name, picking.id, lane)
        return Seen.RELEASED

    def _lane(self, released: OrderReleased) -> Lane:
        # The release time, not the clock: a release published late (the poll
        # catching up) is judged by when Odoo made it ready.
        return order_lane(
            released.order, now=released.released_at, promise_within=self._express_promised_within
        )

    async def _cancel(self, picking: Picking) -> Seen:
        # A delivery that never became an order has nothing to compensate.
        if not await self._marked(picking.id, "released"):
            return Seen.IGNORED
        if await self._marked(picking.id, "cancelled"):
            return Seen.ALREADY_KNOWN
        cancelled = OrderCancelled(
            order_ref=picking.name,
            odoo_picking_id=picking.id,
            odoo_sale_order_id=picking.sale_order_id,
            reason=await self._reason(picking),
            cancelled_at=picking.write_date or _now(),
        )
        await self._publisher.publish(
            cancelled, fact_id=fact_id("odoo", "stock.picking", picking.id, "cancelled")
        )
        await self._mark(picking, "cancelled")
        log.info("order %s cancelled in Odoo (picking %d)", picking.name, picking.id)
        return Seen.CANCELLED

    async def _reason(self, picking: Picking) -> str:
        if picking.sale_order_id is not None:
            orders = await self._odoo.call(
                "sale.order",
                "search_read",
                domain=[("id", "=", picking.sale_order_id)],
                fields=["name", "state"],
            )
            if orders and orders[0].get("state") == "cancel":
                return f"sale order {orders[0].get('name')} was cancelled in Odoo"
        return f"delivery {picking.name} was cancelled in Odoo"

    async def _marked(self, picking_id: int, fact: str) -> bool:
        key = marker_key(picking_id, fact)
        if key in self._known_marks:
            return True
        try:
            await self._marks.get(key)
        except KeyNotFoundError:
            return False
        self._known_marks.put(key, True)
        return True

    async def _mark(self, picking: Picking, fact: str) -> None:
        marker = msgspec.json.encode(_Marker(ref=picking.name, at=_now()))
        key = marker_key(picking.id, fact)
        await self._marks.put(key, marker)
        self._known_marks.put(key, True)


def _now() -> datetime:
    return datetime.now(UTC)
