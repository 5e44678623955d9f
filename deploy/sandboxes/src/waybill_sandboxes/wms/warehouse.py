"""The warehouse itself: orders, stock, catalog, and what each lifecycle stage does.

No HTTP and no timing here: :mod:`.lifecycle` decides *when* an order moves,
this module decides *what* moving means (picking takes stock, packing makes
parcels) and reports each change through ``emit(event_type, data)``.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from waybill_sandboxes.wms.records import (
    Cancellation,
    InventoryAdjustment,
    OrderLine,
    OrderStatus,
    OutboundOrder,
    OutboundOrderRequest,
    Parcel,
    ParcelContent,
    Product,
    StockLevel,
)

__all__ = [
    "DEFAULT_LOCATION",
    "CannotCancel",
    "InventoryError",
    "OrderConflict",
    "UnknownOrder",
    "Warehouse",
]

DEFAULT_LOCATION = "PICK-01"
#: GS1's own example company prefix: never a real company's.
_GS1_COMPANY_PREFIX = "0614141"
_CARTON_TARE_KG = 0.25
# A packed order still stands in the warehouse and can be unpacked; once it
# has shipped, the carrier has it.
_CANCELLABLE = (OrderStatus.RECEIVED, OrderStatus.ACCEPTED, OrderStatus.PICKED, OrderStatus.PACKED)
_OPEN = (OrderStatus.RECEIVED, OrderStatus.ACCEPTED)

Emit = Callable[[str, Any], None]


class UnknownOrder(LookupError):
    """No order with that id."""


class OrderConflict(ValueError):
    """A create reused a client order ref with different content."""


class CannotCancel(ValueError):
    """The order is too far along to be cancelled."""


class InventoryError(ValueError):
    """An inventory adjustment that would leave negative stock."""


def sscc_check_digit(first17: str) -> str:
    """GS1 mod-10 check digit: weights 3 and 1 alternating from the right."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(first17)))
    return str((10 - total % 10) % 10)


class _ShortPick:
    def __init__(self, sku: str | None, qty: float) -> None:
        self.sku, self.qty = sku, qty


class Warehouse:
    """State of one sandbox warehouse.

    Unknown SKUs are accepted and start with ``default_stock`` units at
    :data:`DEFAULT_LOCATION`, so an integrator can send orders before pushing
    a catalog. ``short_pick_rate`` is the share of orders whose first line is
    picked one unit short.
    """

    def __init__(
        self,
        *,
        emit: Emit,
        code: str = "WH1",
        default_stock: float = 1000.0,
        short_pick_rate: float = 0.0,
        units_per_parcel: int = 10,
        seed: int | None = None,
    ) -> None:
        self.code = code
        self.default_stock = default_stock
        self.short_pick_rate = short_pick_rate
        self.units_per_parcel = max(1, units_per_parcel)
        self.orders: dict[str, OutboundOrder] = {}
        self.products: dict[str, Product] = {}
        self.cancellations: list[Cancellation] = []
        self.adjustments: list[InventoryAdjustment] = []
        self.creations: Counter[str] = Counter()
        """Create calls per client order ref, replays included."""
        self._emit = emit
        self._random = random.Random(seed)
        self._by_ref: dict[str, str] = {}
        self._requests: dict[str, OutboundOrderRequest] = {}
        self._stock: dict[str, dict[str, float]] = {}
        self._forced_short: dict[str, _ShortPick] = {}
        self._order_numbers = itertools.count(1)
        self._sscc_serials = itertools.count(1)
        self._last_tick = datetime.fromtimestamp(0, UTC)

    # -- time -----------------------------------------------------------------

    def now(self) -> datetime:
        """The current time, strictly later than any time handed out before.

        Strictly increasing ``updated_at`` values keep ``updated_since``
        polling exact even when two changes land in the same microsecond.
        """
        tick = max(datetime.now(UTC), self._last_tick + timedelta(microseconds=1))
        self._last_tick = tick
        return tick

    # -- orders ---------------------------------------------------------------

    def create_order(self, request: OutboundOrderRequest) -> tuple[OutboundOrder, bool]:
        """Create an order, or return the existing one for a replayed request.

        Returns ``(order, created)``. Raises :class:`OrderConflict` when the
        client order ref is already used by a different request.
        """
        ref = request.client_order_ref
        self.creations[ref] += 1
        if ref in self._by_ref:
            if self._requests[ref] != request:
                raise OrderConflict(
                    f"client order ref {ref!r} is already used by order "
                    f"{self._by_ref[ref]} with different content: use a new ref"
                )
            return self.orders[self._by_ref[ref]], False
        now = self.now()
        order = OutboundOrder(
            order_id=f"OO-{next(self._order_numbers):06d}",
            client_order_ref=ref,
            warehouse=request.warehouse,
            status=OrderStatus.RECEIVED,
            ship_to=request.ship_to,
            lines=[
                OrderLine(
                    line_no=line.line_no or n, sku=line.sku, uom=line.uom, qty_ordered=line.qty
                )
                for n, line in enumerate(request.lines, start=1)
            ],
            created_at=now,
            updated_at=now,
            requested_ship_date=request.requested_ship_date,
            carrier=request.carrier,
            service_level=request.service_level,
            priority=request.priority,
            notes=request.notes,
        )
        self.orders[order.order_id] = order
        self._by_ref[ref] = order.order_id
        self._requests[ref] = request
        return order, True

    def order(self, order_id: str) -> OutboundOrder:
        """The order with that WMS id, or :class:`UnknownOrder`."""
        try:
            return self.orders[order_id]
        except KeyError:
            raise UnknownOrder(f"no outbound order {order_id!r}") from None

    def order_by_ref(self, client_order_ref: str) -> OutboundOrder | None:
        """The order created for a client order ref, if any."""
        order_id = self._by_ref.get(client_order_ref)
        return self.orders[order_id] if order_id else None

    def orders_updated_since(self, since: datetime | None) -> list[OutboundOrder]:
        """Orders changed at or after ``since`` (all when None), oldest change first."""
        found = [o for o in self.orders.values() if since is None or o.updated_at >= since]
        return sorted(found, key=lambda o: o.updated_at)

    def cancel(self, order_id: str) -> OutboundOrder:
        """Cancel an order that has not shipped yet; a second cancel is a no-op."""
        order = self.order(order_id)
        outcome = "cancelled"
        try:
            if order.status is OrderStatus.CANCELLED:
                outcome = "already_cancelled"
                return order
            if order.status not in _CANCELLABLE:
                outcome = "refused"
                raise CannotCancel(
                    f"order {order.client_order_ref!r} is already {order.status}: "
                    "it can no longer be cancelled"
                )
            for line in order.lines:  # picked goods go back on the shelf
                self._put(line.sku, line.qty_picked)
            order.status = OrderStatus.CANCELLED
            order.cancelled_at = order.updated_at = self.now()
            self._emit("order.cancelled", order)
            return order
        finally:
            self.cancellations.append(
                Cancellation(
                    order_id=order.order_id,
                    client_order_ref=order.client_order_ref,
                    requested_at=self.now(),
                    outcome=outcome,
                )
            )

    def force_short_pick(
        self, client_order_ref: str, sku: str | None = None, qty: float = 1.0
    ) -> None:
        """Make the next pick of that order ``qty`` short on ``sku`` (first line when None)."""
        if qty <= 0:
            raise ValueError(f"a short pick must be a positive quantity, got {qty}")
        self._forced_short[client_order_ref] = _ShortPick(sku, qty)

    # -- lifecycle stages -----------------------------------------------------

    def advance(self, order_id: str, stage: OrderStatus) -> bool:
        """Move an order into ``stage``; False when its lifecycle is over."""
        order = self.order(order_id)
        if order.status in (OrderStatus.CANCELLED, OrderStatus.SHORT_PICKED):
            return False
        if stage is OrderStatus.PICKED:
            return self._pick(order)
        if stage is OrderStatus.PACKED:
            order.parcels = self._pack(order)
        elif stage is OrderStatus.SHIPPED:
            for line in order.lines:
                line.qty_shipped = line.qty_picked
            order.shipped_at = self.now()
        order.status = stage
        order.updated_at = self.now()
        self._emit(f"order.{stage}", order)
        return stage is not OrderStatus.SHIPPED

    def _pick(self, order: OutboundOrder) -> bool:
        forced = self._forced_short.pop(order.client_order_ref, None)
        random_short = forced is None and self._random.random() < self.short_pick_rate
        for index, line in enumerate(order.lines):
            wanted = line.qty_ordered
            if forced is not None and (
                forced.sku == line.sku or (forced.sku is None and index == 0)
            ):
                wanted -= min(forced.qty, wanted)
            elif random_short and index == 0:
                wanted -= min(1.0, wanted)
            line.qty_picked = min(wanted, self._on_hand(line.sku))
            self._take(line.sku, line.qty_picked)
        order.short_picked = any(line.qty_picked < line.qty_ordered for line in order.lines)
        picked_anything = any(line.qty_picked > 0 for line in order.lines)
        order.status = OrderStatus.PICKED if picked_anything else OrderStatus.SHORT_PICKED
        order.updated_at = self.now()
        if order.short_picked:
            self._emit("order.short_picked", order)
        if picked_anything:
            self._emit("order.picked", order)
        return picked_anything

    def _pack(self, order: OutboundOrder) -> list[Parcel]:
        parcels: list[Parcel] = []
        for line in order.lines:
            product = self.products.get(line.sku) or Product(sku=line.sku)
            left = line.qty_picked
            while left > 0:
                units = min(float(self.units_per_parcel), left)
                left -= units
                parcels.append(self._carton(product, units))
        return parcels

    def _carton(self, product: Product, units: float) -> Parcel:
        serial = f"0{_GS1_COMPANY_PREFIX}{next(self._sscc_serials):09d}"
        # Units are stacked along the height, which keeps the sizes plausible.
        return Parcel(
            sscc=serial + sscc_check_digit(serial),
            weight_kg=round(_CARTON_TARE_KG + units * product.weight_kg, 3),
            length_cm=product.length_cm + 2,
            width_cm=product.width_cm + 2,
            height_cm=round(product.height_cm * math.ceil(units) + 2, 1),
            contents=[ParcelContent(sku=product.sku, qty=units)],
        )

    # -- stock and catalog ----------------------------------------------------

    def _locations(self, sku: str) -> dict[str, float]:
        if sku not in self._stock:
            self._stock[sku] = {DEFAULT_LOCATION: self.default_stock}
        return self._stock[sku]

    def _on_hand(self, sku: str) -> float:
        return sum(self._locations(sku).values())

    def _take(self, sku: str, qty: float) -> None:
        for location, held in self._locations(sku).items():
            taken = min(held, qty)
            self._stock[sku][location] = held - taken
            qty -= taken
            if qty <= 0:
                return

    def _put(self, sku: str, qty: float) -> None:
        if qty > 0:
            locations = self._locations(sku)
            first = next(iter(locations), DEFAULT_LOCATION)
            locations[first] = locations.get(first, 0.0) + qty

    def put_away(self, sku: str, qty: float) -> None:
        """Put goods that came back (a resellable return) on the shelf."""
        self._put(sku, qty)

    def stock_level(self, sku: str) -> StockLevel:
        """On hand, allocated to open orders, and available for one SKU."""
        on_hand = self._on_hand(sku)
        allocated = sum(
            line.qty_ordered
            for order in self.orders.values()
            if order.status in _OPEN
            for line in order.lines
            if line.sku == sku
        )
        return StockLevel(
            sku=sku,
            on_hand=on_hand,
            allocated=allocated,
            available=max(0.0, on_hand - allocated),
            locations=dict(self._locations(sku)),
        )

    def shelves(self) -> list[tuple[str, str, float]]:
        """Stock on hand per SKU and location, in (SKU, location) order: what a count reads.

        Only SKUs the warehouse has touched have shelves; one it never heard of has none
        (its default stock appears at its first order or count).
        """
        return sorted(
            (sku, location, held)
            for sku, locations in self._stock.items()
            for location, held in locations.items()
        )

    def set_shelf(self, sku: str, location: str, on_hand: float) -> None:
        """Put ``on_hand`` on one shelf quietly, with no webhook: a miscount nobody reported,
        the discrepancy a reconciliation must find."""
        if on_hand < 0:
            raise InventoryError(f"a shelf cannot hold {on_hand} of {sku}: stock is not negative")
        # A SKU first counted here is known from now on with this shelf only: its default
        # stock is for SKUs the warehouse never heard of.
        self._stock.setdefault(sku, {})[location] = on_hand

    def adjust_inventory(
        self, sku: str, delta: float, reason_code: str, location: str = DEFAULT_LOCATION
    ) -> InventoryAdjustment:
        """Change stock on the warehouse's own initiative and announce it by webhook."""
        if not reason_code:
            raise InventoryError("an inventory adjustment needs a reason code (e.g. CYCLE_COUNT)")
        locations = self._locations(sku)
        after_here = locations.get(location, 0.0) + delta
        if after_here < 0:
            raise InventoryError(
                f"adjusting {sku} at {location} by {delta} would leave {after_here}: "
                "stock cannot go below zero"
            )
        locations[location] = after_here
        adjustment = InventoryAdjustment(
            sku=sku,
            location=location,
            delta=delta,
            reason_code=reason_code,
            on_hand_after=self._on_hand(sku),
            adjusted_at=self.now(),
        )
        self.adjustments.append(adjustment)
        self._emit("inventory.adjusted", adjustment)
        return adjustment
