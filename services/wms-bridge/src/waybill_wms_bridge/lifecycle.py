"""What a WMS order snapshot means in Waybill's words: the facts of every stage it reached.

Webhooks and the reconciliation poll both hand an order snapshot to
:func:`order_facts`, which returns one fact per stage the order has reached,
oldest stage first. Each fact's id comes from the order ref and the stage, so
the same stage seen by a webhook, a duplicate webhook and a poll is stored
once, and a snapshot that arrives late (a "picked" webhook after "packed")
can only repeat facts that already exist: it never adds a second "packed" or
takes the order back.

Times: ``accepted_at`` is the WMS's creation time and ``cancelled_at`` its
cancellation time; picked/short-picked/packed carry the snapshot's
``updated_at``, which is exact for the stage the snapshot is in and an upper
bound for earlier stages recovered from a later snapshot.

The WMS's ``shipped`` stage is ``WarehouseOrderShipped`` (the goods left the
dock, with the shipped quantities); Waybill's own shipped stage is Odoo
recording the booked shipment, which this fact does not replace. A cancel the
WMS refuses is ``WarehouseOrderCancelRefused``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from waybill_contracts import Event, Lane, fact_id
from waybill_contracts.events import (
    InventoryAdjusted,
    WarehouseOrderAccepted,
    WarehouseOrderCancelled,
    WarehouseOrderCancelRefused,
    WarehouseOrderPacked,
    WarehouseOrderPicked,
    WarehouseOrderShipped,
    WarehouseOrderShortPicked,
)
from waybill_contracts.model import (
    Dimensions,
    FulfilledLine,
    Parcel,
    ParcelItem,
    Quantity,
    StockAdjustment,
)
from waybill_wms_bridge.wms_wire import (
    OrderPriority,
    OrderStatus,
    WmsInventoryAdjustment,
    WmsOrder,
    WmsOrderLine,
    WmsParcel,
)

__all__ = [
    "OrderFacts",
    "UnmappableWmsData",
    "WarehouseFact",
    "accepted_fact",
    "cancel_refused_fact",
    "cancelled_fact",
    "inventory_fact",
    "order_facts",
    "order_stages",
    "stage_fact_id",
    "wms_order_lane",
    "wms_quantity",
]

# Stages after picking finished, whatever its outcome.
_PICKING_DONE = frozenset(
    {OrderStatus.PICKED, OrderStatus.PACKED, OrderStatus.SHIPPED, OrderStatus.SHORT_PICKED}
)
_PACKED = frozenset({OrderStatus.PACKED, OrderStatus.SHIPPED})
# The WMS reports no unit on parcel contents or adjustments; Odoo's default unit.
_DEFAULT_UOM = "Units"


class UnmappableWmsData(ValueError):
    """The WMS sent something that cannot become a valid contract message (says what)."""


@dataclass(frozen=True, slots=True)
class WarehouseFact:
    """One fact to publish and the id derived from it (``Nats-Msg-Id``)."""

    id: str
    message: Event
    stage: str
    """What the fact is about, for logs: accepted, picked, packed, inventory..."""
    lane: Lane | None = None
    """The lane it goes out on; None: its cause's (standard without one)."""
    since: datetime | None = None
    """When its WMS order was created (the WMS's clock): no publish of the fact can be
    older, so while this is recent any earlier publish is inside JetStream's duplicate
    window (:class:`~waybill_wms_bridge.ledger.FactLedger`). None: not known."""


def stage_fact_id(order_ref: str, stage: str) -> str:
    """The id of the fact "order ``order_ref`` reached ``stage``": the same on every sighting."""
    return fact_id("wms-bridge", "warehouse_order", order_ref, stage)


def wms_quantity(value: float, uom: str) -> Quantity:
    """A WMS figure as a contract quantity (the WMS's unit, EA when it names none)."""
    # repr() gives the shortest text that reads back as the same float, so
    # 2.0 becomes "2" and 0.1 stays "0.1" rather than 0.1000000000000000055...
    return _quantity(repr(float(value)), uom or _DEFAULT_UOM)


@functools.lru_cache(maxsize=1024)
def _quantity(figure: str, uom: str) -> Quantity:
    # An order's lines, parcels and stages repeat a handful of figures, and a
    # quantity is immutable: each figure and unit is made into one once (keyed on
    # the text, so -0.0 and 0.0 stay apart).
    number = Decimal(figure)
    if number == number.to_integral_value():
        number = number.quantize(Decimal(1))
    return Quantity(value=number, uom=uom)


def _fact(
    message: Event,
    order_ref: str,
    stage: str,
    lane: Lane | None = None,
    since: datetime | None = None,
) -> WarehouseFact:
    # Values that break the contract (a negative weight) are refused by the
    # runtime's publisher, naming the field, before anything is sent.
    return WarehouseFact(
        id=stage_fact_id(order_ref, stage), message=message, stage=stage, lane=lane, since=since
    )


def accepted_fact(
    order_ref: str,
    warehouse_order_id: str,
    warehouse: str | None,
    accepted_at: datetime,
    *,
    lane: Lane | None = None,
) -> WarehouseFact:
    """The warehouse has the order (created now or found from before) since ``accepted_at``."""
    message = WarehouseOrderAccepted(
        order_ref=order_ref,
        warehouse_order_id=warehouse_order_id,
        warehouse=warehouse or None,
        accepted_at=accepted_at,
    )
    return _fact(message, order_ref, "accepted", lane, since=accepted_at)


def cancelled_fact(
    order_ref: str,
    warehouse_order_id: str | None,
    cancelled_at: datetime,
    *,
    lane: Lane | None = None,
    since: datetime | None = None,
) -> WarehouseFact:
    """The warehouse order is cancelled (or never existed when the cancel came)."""
    message = WarehouseOrderCancelled(
        order_ref=order_ref, warehouse_order_id=warehouse_order_id, cancelled_at=cancelled_at
    )
    return _fact(message, order_ref, "cancelled", lane, since)


def cancel_refused_fact(
    order_ref: str, warehouse_order_id: str, reason: str, refused_at: datetime
) -> WarehouseFact:
    """The warehouse would not cancel the order (it has shipped)."""
    message = WarehouseOrderCancelRefused(
        order_ref=order_ref,
        warehouse_order_id=warehouse_order_id,
        reason=reason or "the warehouse refused the cancel",
        refused_at=refused_at,
    )
    return _fact(message, order_ref, "cancel_refused")


def _fulfilled(line: WmsOrderLine, done: float | None = None) -> FulfilledLine:
    """``line`` with its picked quantity, or ``done`` (the shipped one) when given."""
    return FulfilledLine(
        sku=line.sku,
        ordered=wms_quantity(line.qty_ordered, line.uom),
        fulfilled=wms_quantity(line.qty_picked if done is None else done, line.uom),
    )


def _parcel(parcel: WmsParcel, uom_of: dict[str, str]) -> Parcel:
    sizes = (parcel.length_cm, parcel.width_cm, parcel.height_cm)
    return Parcel(
        reference=parcel.sscc,
        weight_kg=parcel.weight_kg,
        dimensions=(
            Dimensions(length_cm=sizes[0], width_cm=sizes[1], height_cm=sizes[2])
            if all(size > 0 for size in sizes)
            else None  # not measured
        ),
        contents=tuple(
            ParcelItem(sku=item.sku, quantity=wms_quantity(item.qty, uom_of.get(item.sku, "")))
            for item in parcel.contents
        ),
    )


def _is_short(order: WmsOrder) -> bool:
    return order.short_picked or order.status == OrderStatus.SHORT_PICKED


def _accepted_fact(order: WmsOrder, lane: Lane) -> WarehouseFact:
    return accepted_fact(
        order.client_order_ref, order.order_id, order.warehouse, order.created_at, lane=lane
    )


def _picking_fact(order: WmsOrder, lane: Lane) -> WarehouseFact:
    ref, at = order.client_order_ref, order.updated_at
    if _is_short(order):
        shortages = tuple(
            _fulfilled(line) for line in order.lines if line.qty_picked < line.qty_ordered
        )
        if not shortages:
            raise UnmappableWmsData(f"the WMS reports {ref} short-picked but no line is short")
        short = WarehouseOrderShortPicked(
            order_ref=ref, warehouse_order_id=order.order_id, shortages=shortages, reported_at=at
        )
        return _fact(short, ref, "short_picked", lane, order.created_at)
    picked = WarehouseOrderPicked(
        order_ref=ref,
        warehouse_order_id=order.order_id,
        lines=tuple(_fulfilled(line) for line in order.lines),
        picked_at=at,
    )
    return _fact(picked, ref, "picked", lane, order.created_at)


def _packing_fact(order: WmsOrder, lane: Lane) -> WarehouseFact:
    ref = order.client_order_ref
    if not order.parcels:
        raise UnmappableWmsData(f"the WMS reports {ref} packed but lists no parcels")
    uom_of = {line.sku: line.uom for line in order.lines}
    packed = WarehouseOrderPacked(
        order_ref=ref,
        warehouse_order_id=order.order_id,
        parcels=tuple(_parcel(parcel, uom_of) for parcel in order.parcels),
        packed_at=order.updated_at,
    )
    return _fact(packed, ref, "packed", lane, order.created_at)


def _shipped_fact(order: WmsOrder, lane: Lane) -> WarehouseFact:
    ref = order.client_order_ref
    shipped = WarehouseOrderShipped(
        order_ref=ref,
        warehouse_order_id=order.order_id,
        lines=tuple(_fulfilled(line, line.qty_shipped) for line in order.lines),
        shipped_at=order.shipped_at or order.updated_at,
    )
    return _fact(shipped, ref, "shipped", lane, order.created_at)


def _cancelled_fact(order: WmsOrder, lane: Lane) -> WarehouseFact:
    cancelled_at = order.cancelled_at or order.updated_at
    return cancelled_fact(
        order.client_order_ref, order.order_id, cancelled_at, lane=lane, since=order.created_at
    )


# How each stage's fact is read from a snapshot that reached it.
_STAGE_FACTS: dict[str, Callable[[WmsOrder, Lane], WarehouseFact]] = {
    "accepted": _accepted_fact,
    "picked": _picking_fact,
    "short_picked": _picking_fact,
    "packed": _packing_fact,
    "shipped": _shipped_fact,
    "cancelled": _cancelled_fact,
}


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """The facts read from one order snapshot, and why reading stopped early, if it did."""

    facts: list[WarehouseFact]
    problem: str | None = None
    """Set when a stage could not be mapped (packed without parcels...); the facts before it
    are still true and still published."""
    stages: tuple[str, ...] = ()
    """Every stage the snapshot reached, oldest first, those passed over included."""


def wms_order_lane(order: WmsOrder) -> Lane:
    """The lane of the facts of ``order``: express for what the bridge sent with high priority."""
    return Lane.EXPRESS if order.priority == OrderPriority.HIGH else Lane.STANDARD


def order_stages(order: WmsOrder) -> tuple[str, ...]:
    """The stages ``order`` has reached, oldest first (each names one fact: :func:`order_facts`)."""
    status = order.status
    if status == OrderStatus.CANCELLED:
        return _CANCELLED_STAGES
    if status not in _PICKING_DONE:
        return _ACCEPTED_STAGES
    picking = "short_picked" if _is_short(order) else "picked"
    if status not in _PACKED:
        return ("accepted", picking)
    if status != OrderStatus.SHIPPED:
        return ("accepted", picking, "packed")
    return ("accepted", picking, "packed", "shipped")


_ACCEPTED_STAGES = ("accepted",)
_CANCELLED_STAGES = ("accepted", "cancelled")


def order_facts(order: WmsOrder, out: AbstractSet[str] = frozenset()) -> OrderFacts:
    """The facts of every stage ``order`` has reached, oldest stage first, on its lane.

    A webhook or a poll has no cause to inherit a lane from: the WMS order's
    priority, which the bridge set from the release's lane, carries it.

    Stages in ``out`` are passed over: their facts are known to be out already
    (:class:`~waybill_wms_bridge.settled.SettledOrders`), so nothing is built for
    them, nor asked of the ledger (issue 18: each webhook repeats every stage before it).
    """
    lane = wms_order_lane(order)
    stages = order_stages(order)
    facts: list[WarehouseFact] = []
    try:
        for stage in stages:
            if stage not in out:
                facts.append(_STAGE_FACTS[stage](order, lane))
    except UnmappableWmsData as error:
        return OrderFacts(facts, str(error), stages)
    return OrderFacts(facts, stages=stages)


def inventory_fact(
    event_id: str, warehouse: str, adjustment: WmsInventoryAdjustment
) -> WarehouseFact:
    """A stock change the warehouse made on its own; its id comes from the WMS event id."""
    message = InventoryAdjusted(
        adjustment=StockAdjustment(
            sku=adjustment.sku,
            location=adjustment.location,
            delta=wms_quantity(adjustment.delta, _DEFAULT_UOM),
            reason=adjustment.reason_code,
            reference=event_id,
        ),
        warehouse=warehouse or None,
        adjusted_at=adjustment.adjusted_at,
    )
    return WarehouseFact(
        id=fact_id("wms-bridge", "inventory", event_id), message=message, stage="inventory"
    )
