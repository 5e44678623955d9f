"""Releasing orders to the warehouse and cancelling them, each effect made once per order ref.

Release: the WMS is idempotent on the client order ref, and the bridge also
records its intent under ``wms-release:<ref>`` (the runtime's ``OnceOnly``),
so a redelivered command returns the stored answer without calling the WMS,
and one whose earlier attempt died mid-call looks the order up by ref first.

Cancel: a cancel that finds no order in the WMS stores a tombstone under the
same key, so a release still waiting in its retries (the WMS was down) does
not create the order afterwards. A cancel the WMS refuses because the goods
have already shipped is reported as ``WarehouseOrderCancelRefused`` with the
WMS's reason (announcing "cancelled" would be false); the orchestrator puts
the order in front of operations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from waybill_contracts import Lane, MessageContext
from waybill_contracts.model import Order
from waybill_runtime.idempotency import OnceOnly
from waybill_wms_bridge.ledger import FactLedger
from waybill_wms_bridge.lifecycle import (
    WarehouseFact,
    accepted_fact,
    cancel_refused_fact,
    cancelled_fact,
)
from waybill_wms_bridge.settled import SettledOrders
from waybill_wms_bridge.wms_client import WmsClient, WmsConflict
from waybill_wms_bridge.wms_wire import (
    OrderPriority,
    OrderStatus,
    WmsLineRequest,
    WmsOrder,
    WmsOrderRequest,
    WmsShipTo,
)

__all__ = ["ReleasedOrder", "WarehouseOrders", "order_request", "release_key"]

log = logging.getLogger("waybill.wms_bridge.orders")


class ReleasedOrder(msgspec.Struct, frozen=True, kw_only=True):
    """What the bridge keeps about one release (the stored result of the effect)."""

    order_id: str | None
    """The WMS's id of the order; None when a cancel came before the WMS ever had it."""
    warehouse: str = ""
    created_at: datetime | None = None


NEVER_RELEASED = ReleasedOrder(order_id=None)


def release_key(order_ref: str) -> str:
    """The idempotency key of releasing ``order_ref`` to the warehouse."""
    return f"wms-release:{order_ref}"


def _remember(order: WmsOrder) -> ReleasedOrder:
    return ReleasedOrder(
        order_id=order.order_id, warehouse=order.warehouse, created_at=order.created_at
    )


def order_request(
    order: Order, default_warehouse: str, *, lane: Lane = Lane.STANDARD
) -> WmsOrderRequest:
    """The WMS outbound order for ``order``; the same order on the same lane, the same request.

    An order on the express lane is sent with high priority: the warehouse
    works it first, and its webhooks come back with the priority, which is
    how the facts they report find the express lane again.
    """
    address, customer = order.ship_to, order.customer
    return WmsOrderRequest(
        client_order_ref=order.ref,
        warehouse=order.warehouse or default_warehouse,
        ship_to=WmsShipTo(
            name=address.name,
            street1=address.street,
            street2=address.street2 or "",
            city=address.city,
            postal_code=address.postal_code,
            state=address.state or "",
            country=address.country_code,
            phone=customer.phone or "",
            email=customer.email or "",
        ),
        lines=[
            WmsLineRequest(
                line_no=number, sku=line.sku, qty=float(line.quantity.value), uom=line.quantity.uom
            )
            for number, line in enumerate(order.lines, start=1)
        ],
        service_level=str(order.service_level),
        priority=OrderPriority.HIGH if lane is Lane.EXPRESS else OrderPriority.NORMAL,
    )


class WarehouseOrders:
    """Executes the warehouse commands against the WMS and reports the facts."""

    def __init__(
        self,
        client: WmsClient,
        ledger: FactLedger,
        once: OnceOnly[ReleasedOrder],
        *,
        default_warehouse: str,
        settled: SettledOrders | None = None,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._once = once
        self._default_warehouse = default_warehouse
        # The stages published here, so the webhooks that repeat them skip them.
        self._settled = settled or SettledOrders()

    async def _publish(
        self,
        order_ref: str,
        stage: str,
        fact_of: Callable[[], WarehouseFact],
        cause: MessageContext | None,
    ) -> None:
        """Publish the fact of ``stage`` (made by ``fact_of``) unless it is out already."""
        async with self._settled.hold(order_ref):
            if stage in self._settled.stages_out(order_ref):
                return  # the WMS's webhook, which comes at once, brought it first
            await self._ledger.publish(fact_of(), cause=cause)
            self._settled.add_stage(order_ref, stage)

    async def _look_up(self, order_ref: str) -> ReleasedOrder | None:
        found = await self._client.find_order(order_ref)
        return _remember(found) if found is not None else None

    async def release(self, order: Order, *, cause: MessageContext | None = None) -> None:
        """Create the WMS order for ``order`` once, then report it accepted."""
        lane = cause.lane if cause is not None else Lane.STANDARD
        request = order_request(order, self._default_warehouse, lane=lane)

        async def create() -> ReleasedOrder:
            return _remember(await self._client.create_order(request))

        released = await self._once.run(
            release_key(order.ref), create, recover=lambda: self._look_up(order.ref)
        )
        order_id, created_at = released.order_id, released.created_at
        if order_id is None or created_at is None:
            log.info("order %s was cancelled before it reached the warehouse", order.ref)
            await self._cancel_late_creation(order.ref)
            return
        await self._publish(
            order.ref,
            "accepted",
            lambda: accepted_fact(order.ref, order_id, released.warehouse, created_at),
            cause,
        )

    async def _cancel_late_creation(self, order_ref: str) -> None:
        # A release whose create call was in flight when the cancel found no
        # order may still have created it: take that order back out.
        found = await self._client.find_order(order_ref)
        if found is not None and found.status != OrderStatus.CANCELLED:
            log.warning("cancelling %s, created in the WMS after it was cancelled", order_ref)
            await self._client.cancel_order(found.order_id)

    async def cancel(self, order_ref: str, *, cause: MessageContext | None = None) -> None:
        """Cancel the WMS order of ``order_ref`` and report it cancelled, or refused."""

        async def find_or_tombstone() -> ReleasedOrder:
            return await self._look_up(order_ref) or NEVER_RELEASED

        released = await self._once.run(
            release_key(order_ref), find_or_tombstone, recover=lambda: self._look_up(order_ref)
        )
        if released.order_id is None:
            log.info("order %s never reached the warehouse; nothing to cancel there", order_ref)
            await self._publish(
                order_ref,
                "cancelled",
                lambda: cancelled_fact(order_ref, None, datetime.now(UTC)),
                cause,
            )
            return
        try:
            cancelled = await self._client.cancel_order(released.order_id)
        except WmsConflict as refused:
            log.warning(
                "the WMS refused to cancel %s (order %s): %s",
                order_ref,
                released.order_id,
                refused.detail,
            )
            fact = cancel_refused_fact(
                order_ref, released.order_id, refused.detail, datetime.now(UTC)
            )
            await self._ledger.publish(fact, cause=cause)
            return
        at = cancelled.cancelled_at or cancelled.updated_at
        await self._publish(
            order_ref, "cancelled", lambda: cancelled_fact(order_ref, cancelled.order_id, at), cause
        )
