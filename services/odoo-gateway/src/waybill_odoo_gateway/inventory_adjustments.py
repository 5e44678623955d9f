"""Warehouse stock adjustments applied in Odoo, once; large ones after an operator approves.

The warehouse reports a change of stock on hand (``InventoryAdjusted``: damage,
a cycle count, found stock) as a signed delta at one of its locations. Odoo
takes such a change the way a person counting takes it: a counted quantity
on the quant (``stock.quant`` in inventory mode: ``inventory_quantity``, then
``action_apply_inventory``), which Odoo turns into a done move through the
inventory-adjustment location. The gateway counts "what Odoo has now + the
delta", so Odoo's own changes since (deliveries) are kept.

Once: the effect is keyed by the adjustment's reference (the warehouse's, else
the event's id) in the runtime's effects-once record; the move is named after
the reference (context ``inventory_name``), so an attempt cut off mid-way is
recognised by its move instead of being applied twice.

Above ``WAYBILL_INVENTORY_APPROVAL_ABOVE`` (either way) nothing is written:
the adjustment is kept in the gateway's ``workflow`` bucket and announced as
``InventoryAdjustmentHeld``; ``ApproveInventoryAdjustment`` (an operator's,
sent from the control tower's side) applies it, once, even after a restart.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from waybill_contracts import fact_id
from waybill_contracts.events import (
    InventoryAdjusted,
    InventoryAdjustmentApplied,
    InventoryAdjustmentHeld,
)
from waybill_contracts.model import Quantity, StockAdjustment
from waybill_contracts.operations import ApproveInventoryAdjustment
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.gateway import Gateway
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_values import decimal_quantity, first_id, many2one_name
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.idempotency import kv_key
from waybill_runtime.outcomes import PermanentError, RetryLater

__all__ = [
    "HeldAdjustment",
    "adjustment_reference",
    "approve_adjustment",
    "inventory_adjusted",
]

log = logging.getLogger("waybill.odoo.inventory")

HELD_BUCKET = "workflow"
# Counting again after the quant moved between our count and its application.
_COUNT_ATTEMPTS = 3


class HeldAdjustment(msgspec.Struct, frozen=True, kw_only=True):
    """What the ``workflow`` bucket keeps of an adjustment waiting for approval."""

    reference: str
    event: InventoryAdjusted
    held_at: datetime


def adjustment_reference(event: InventoryAdjusted, message_id: str) -> str:
    """The adjustment's key: the warehouse's reference, else the event's own id."""
    return event.adjustment.reference or message_id


def _held_key(reference: str) -> str:
    return kv_key(f"inventory-held:{reference}")


def _effect_key(reference: str) -> str:
    return f"odoo:inventory:{reference}"


def _move_marker(reference: str) -> str:
    """How the applied move's name starts: what a resumed attempt looks for."""
    return f"Waybill {reference}:"


def _units(value: float | Decimal, uom: str) -> Quantity:
    number = Decimal(repr(float(value))) if isinstance(value, float) else value
    if number == number.to_integral_value():
        number = number.quantize(Decimal(1))
    return Quantity(value=number, uom=uom)


async def inventory_adjusted(
    gateway: Gateway, event: InventoryAdjusted, ctx: HandlerContext[OdooGatewaySettings]
) -> None:
    """Handle :class:`InventoryAdjusted`: apply it in Odoo, or hold it for approval."""
    reference = adjustment_reference(event, ctx.envelope.id)
    threshold = ctx.settings.inventory_approval_above
    size = abs(event.adjustment.delta.value)
    if threshold is not None and size > Decimal(repr(threshold)):
        if await ctx.runtime.once_only(int).result_of(_effect_key(reference)) is not None:
            # Approved and applied already: the approval announced it, naming the operator.
            log.info("inventory adjustment %s seen again: applied after approval", reference)
            return
        await _hold(event, reference, Decimal(repr(threshold)), ctx)
        return
    # A repeat finds the effect made and announces it again (the fact id drops a copy).
    await _apply(gateway, event, reference, ctx, approved_by=None)


async def approve_adjustment(
    gateway: Gateway,
    command: ApproveInventoryAdjustment,
    ctx: HandlerContext[OdooGatewaySettings],
) -> None:
    """Handle :class:`ApproveInventoryAdjustment`: apply the held adjustment, once."""
    bucket = ctx.runtime.buckets[HELD_BUCKET]
    held = await _read_held(bucket, command.reference)
    if held is None:
        if await ctx.runtime.once_only(int).result_of(_effect_key(command.reference)) is not None:
            log.info(
                "inventory adjustment %s approved again by %s: applied already",
                command.reference,
                command.operator,
            )
            return
        raise PermanentError(
            f"no inventory adjustment {command.reference!r} waits for approval "
            f"(approved by {command.operator}): nothing was applied"
        )
    await _apply(gateway, held.event, held.reference, ctx, approved_by=command.operator)
    # Applied and announced: the once-only record answers any later approval.
    await bucket.delete(_held_key(held.reference))


async def _read_held(bucket: KeyValue, reference: str) -> HeldAdjustment | None:
    try:
        entry = await bucket.get(_held_key(reference))
    except KeyNotFoundError:
        return None
    if not entry.value:  # a delete marker
        return None
    return msgspec.json.decode(entry.value, type=HeldAdjustment)


async def _hold(
    event: InventoryAdjusted,
    reference: str,
    threshold: Decimal,
    ctx: HandlerContext[OdooGatewaySettings],
) -> None:
    adjustment = event.adjustment
    uom = adjustment.delta.uom
    limit = _units(threshold, uom)
    bucket = ctx.runtime.buckets[HELD_BUCKET]
    known = await _read_held(bucket, reference)
    held_at = known.held_at if known is not None else datetime.now(UTC)
    if known is None:
        record = HeldAdjustment(reference=reference, event=event, held_at=held_at)
        await bucket.put(_held_key(reference), msgspec.json.encode(record))
    reason = (
        f"a change of {abs(adjustment.delta.value)} {uom} of {adjustment.sku} at "
        f"{adjustment.location} ({adjustment.reason}) is more than {limit.value} {uom}: "
        "it waits for an operator's approval"
    )
    log.warning("inventory adjustment %s held: %s", reference, reason)
    await ctx.publish(
        InventoryAdjustmentHeld(
            reference=reference,
            adjustment=adjustment,
            warehouse=event.warehouse,
            reason=reason,
            threshold=limit,
            held_at=held_at,
        ),
        fact_id=fact_id("odoo", "inventory", reference, "held"),
    )


async def _apply(
    gateway: Gateway,
    event: InventoryAdjusted,
    reference: str,
    ctx: HandlerContext[OdooGatewaySettings],
    *,
    approved_by: str | None,
) -> None:
    adjustment = event.adjustment
    odoo = gateway.odoo
    # Resolved before the effect: an unknown SKU or location is a dead letter naming it,
    # never an intent left behind.
    product = await _storable_product(odoo, adjustment.sku, adjustment.delta.uom)
    location = await _location(odoo, adjustment.location, gateway.settings)
    context = {
        "inventory_mode": True,
        "inventory_name": f"{_move_marker(reference)} {adjustment.reason}",
    }

    async def count_and_apply() -> int:
        return await _count_and_apply(odoo, product, location, adjustment, context)

    async def applied_before() -> int | None:
        moves = await odoo.call(
            "stock.move",
            "search",
            domain=[
                ("product_id", "=", product),
                ("is_inventory", "=", True),
                ("name", "=like", f"{_move_marker(reference)}%"),
            ],
            limit=1,
        )
        return (await _quant(odoo, product, location))[0] if moves else None

    # One count at a time per quant in this process: two adjustments of the same SKU and
    # location counted at once would each overwrite the other's count.
    async with gateway.quants.hold((product, location)):
        quant = await ctx.runtime.once_only(int).run(
            _effect_key(reference), count_and_apply, recover=applied_before
        )
        _found, on_hand = await _quant(odoo, product, location)
    log.info(
        "inventory adjustment %s applied in Odoo: %s %s at %s (%s), on hand now %s",
        reference,
        adjustment.delta.value,
        adjustment.sku,
        adjustment.location,
        adjustment.reason,
        on_hand,
    )
    await ctx.publish(
        InventoryAdjustmentApplied(
            reference=reference,
            adjustment=adjustment,
            warehouse=event.warehouse,
            odoo_quant_id=quant,
            on_hand=_units(on_hand, adjustment.delta.uom),
            approved_by=approved_by,
            applied_at=datetime.now(UTC),
        ),
        fact_id=fact_id("odoo", "inventory", reference, "applied"),
    )


async def _storable_product(odoo: OdooClient, sku: str, uom: str) -> int:
    """The Odoo product with this internal reference, if Odoo keeps stock of it in ``uom``."""
    await odoo.connect()  # the version decides the fields
    dialect = odoo.dialect
    fields = ["default_code", "uom_id", "tracking", dialect.storable_field]
    found = await odoo.call(
        "product.product", "search_read", domain=[("default_code", "=", sku)], fields=fields
    )
    if not found:
        raise PermanentError(f"Odoo has no product with internal reference {sku!r}")
    if len(found) > 1:
        raise PermanentError(
            f"Odoo has {len(found)} products with internal reference {sku!r}: "
            "make it unique, then replay"
        )
    [row] = found
    if not dialect.is_storable(row):
        raise PermanentError(
            f"Odoo keeps no stock of {sku!r} (not a storable product): nothing to adjust"
        )
    if row.get("tracking") in ("lot", "serial"):
        # Its quants are per lot, and the warehouse's adjustment names none (lots are not
        # carried yet): a count without one would land on a quant of no lot.
        raise PermanentError(
            f"Odoo tracks {sku!r} by {row['tracking']}: adjustments of tracked products are "
            "not applied; adjust its lots by hand"
        )
    counted_in = many2one_name(row.get("uom_id"))
    if counted_in is not None and counted_in.casefold() != uom.casefold():
        # A count is in the product's unit: 3 "Units" of a product kept in kg is no count.
        raise PermanentError(
            f"the warehouse adjusted {sku!r} in {uom}, Odoo keeps it in {counted_in}: "
            "nothing converts one into the other; adjust it by hand"
        )
    return int(row["id"])


async def _location(odoo: OdooClient, code: str, settings: OdooGatewaySettings) -> int:
    """The Odoo stock location of a warehouse location code: mapped by setting, else the
    code itself, as the location's barcode or its full name (``WH/Stock``)."""
    name = settings.odoo_inventory_locations.get(code, code)
    for field in ("barcode", "complete_name"):
        found = await odoo.call(
            "stock.location",
            "search",
            domain=[(field, "=", name), ("usage", "in", ["internal", "transit"])],
            limit=1,
        )
        if found:
            return int(found[0])
    mapped = f" (mapped to {name!r} by WAYBILL_ODOO_INVENTORY_LOCATIONS)" if name != code else ""
    raise PermanentError(
        f"Odoo has no internal stock location for warehouse location {code!r}{mapped}: "
        "give it that barcode or map it in WAYBILL_ODOO_INVENTORY_LOCATIONS, then replay"
    )


async def _quant(odoo: OdooClient, product: int, location: int) -> tuple[int | None, Decimal]:
    """The quant of the product at the location (no lot) and its quantity (0 without one)."""
    rows = await odoo.call(
        "stock.quant",
        "search_read",
        domain=[
            ("product_id", "=", product),
            ("location_id", "=", location),
            ("lot_id", "=", False),
        ],
        fields=["quantity", "inventory_diff_quantity"],
        limit=1,
    )
    if not rows:
        return None, Decimal(0)
    return int(rows[0]["id"]), decimal_quantity(rows[0]["quantity"])


async def _count_and_apply(
    odoo: OdooClient,
    product: int,
    location: int,
    adjustment: StockAdjustment,
    context: dict[str, Any],
) -> int:
    """Count "on hand now + delta" on the quant and apply it; returns the quant's id."""
    delta = adjustment.delta.value
    for _attempt in range(_COUNT_ATTEMPTS):
        quant, on_hand = await _quant(odoo, product, location)
        counted = on_hand + delta
        if counted < 0:
            raise PermanentError(
                f"{adjustment.sku} at {adjustment.location}: Odoo has {on_hand} on hand, the "
                f"warehouse took {-delta} ({adjustment.reason}); applying it would leave "
                f"{counted}: reconcile the stock by hand"
            )
        values = {"inventory_quantity": float(counted), "inventory_quantity_set": True}
        if quant is None:
            created = await odoo.call(
                "stock.quant",
                "create",
                vals_list=[{"product_id": product, "location_id": location, **values}],
                context=context,
            )
            quant = first_id(created)
            if quant is None:
                raise PermanentError(f"Odoo created no quant for {adjustment.sku}: {created!r}")
        else:
            await odoo.call("stock.quant", "write", [quant], vals=values, context=context)
        # The count is "on hand + delta" only if nothing moved since we read it.
        [row] = await odoo.call(
            "stock.quant", "read", [quant], fields=["quantity", "inventory_diff_quantity"]
        )
        if decimal_quantity(row["inventory_diff_quantity"]) != delta:
            continue
        answer = await odoo.call("stock.quant", "action_apply_inventory", [quant], context=context)
        if isinstance(answer, dict) and answer.get("res_model") == "stock.inventory.conflict":
            continue  # the quant moved between count and application: count again
        if isinstance(answer, dict):
            raise PermanentError(
                f"Odoo asked for {answer.get('res_model') or answer.get('tag')!r} instead of "
                f"applying the count of {adjustment.sku} at {adjustment.location}"
            )
        return quant
    raise RetryLater(
        f"the stock of {adjustment.sku} at {adjustment.location} kept moving while it was "
        "counted in Odoo"
    )
