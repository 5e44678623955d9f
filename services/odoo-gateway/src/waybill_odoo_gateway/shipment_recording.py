"""Record shipment in Odoo: tracking ref and carrier on the picking, a chatter note, validation.

Each of the three Odoo effects happens once per business key, however often
the command is delivered: the runtime's effects-once record is written
before each call, and when an earlier attempt left only its intent (it may
or may not have reached Odoo), the picking is read back to decide (the
tracking ref is there, the note exists, the picking is done) instead of
repeating the effect.

When the command says what was picked (``lines``) and that differs from the
demand, the picking is not validated (that needs a backorder decision, a
person's): the picked quantities are written as done, the note says what
differs, and ``ShipmentRecordedInOdoo.picking_validated`` is false. Unless
the command says ``ship_picked`` (the orchestrator's short-pick policy): then
the picked quantities are validated and Odoo keeps one backorder for the rest.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from waybill_contracts import fact_id
from waybill_contracts.commands import RecordShipmentInOdoo
from waybill_contracts.events import ShipmentRecordedInOdoo
from waybill_contracts.model import Shipment
from waybill_odoo_gateway.chatter import escape, find_note, post_note
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.gateway import Gateway
from waybill_odoo_gateway.picking_validation import (
    Move,
    PickedAgainstDemand,
    compare_with_demand,
    open_moves,
    record_picked,
    validate_in_full,
    validate_picked,
)
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.outcomes import PermanentError

__all__ = ["record_shipment", "shipment_note"]

log = logging.getLogger("waybill.odoo.shipments")


def shipment_note(
    shipment: Shipment,
    differences: Sequence[str] = (),
    weight_kg: float | None = None,
    *,
    backorder: bool = False,
) -> str:
    """The chatter note of a recorded shipment (HTML, every value escaped).

    ``differences`` are the lines picked otherwise than demanded: the note
    then says the picking was left for a person to validate. ``weight_kg`` is
    the shipping weight when Odoo has no field to keep it (16 and 17).
    """
    tracking = escape(shipment.tracking_number)
    if shipment.tracking_url:
        tracking = f'<a href="{html.escape(shipment.tracking_url)}">{tracking}</a>'
    cost = f"{shipment.cost.amount} {shipment.cost.currency}"
    weight = f" Shipping weight {weight_kg:g} kg." if weight_kg is not None else ""
    note = (
        f"<p>Shipped with {escape(shipment.carrier)} ({escape(shipment.service)}): "
        f"tracking number {tracking}. Label cost {escape(cost)}.{weight}</p>"
    )
    if differences and backorder:
        listed = "; ".join(escape(difference) for difference in differences)
        return note + (f"<p>Shipped what was picked ({listed}); a backorder holds the rest.</p>")
    if differences:
        listed = "; ".join(escape(difference) for difference in differences)
        note += (
            f"<p>Not validated: the warehouse picked other quantities than the demand "
            f"({listed}). The picked quantities are filled in; validate the transfer and "
            "decide on a backorder.</p>"
        )
    return note


async def record_shipment(
    gateway: Gateway, command: RecordShipmentInOdoo, ctx: HandlerContext[OdooGatewaySettings]
) -> None:
    """Handle :class:`RecordShipmentInOdoo` and publish :class:`ShipmentRecordedInOdoo`."""
    runtime, shipment = ctx.runtime, command.shipment
    tracking = shipment.tracking_number
    async with gateway.pickings.hold(command.odoo_picking_id):
        picking = await gateway.picking_for(command.odoo_picking_id, command.order_ref)
        if picking.state == "cancel":
            raise PermanentError(
                f"{picking.name} is cancelled in Odoo: shipment {shipment.shipment_id} "
                f"(tracking {tracking}) was not recorded; void the label"
            )
        to_validate = command.validate_picking and picking.state != "done"
        moves: list[Move] = []
        picked: PickedAgainstDemand | None = None
        if to_validate and command.lines:
            moves = await open_moves(gateway.odoo, picking)
            picked = compare_with_demand(moves, command.lines)
        differences = picked.differences if picked is not None else ()
        # 16/17 compute shipping_weight and drop what is written: the note keeps it.
        weight_stored = gateway.odoo.dialect.shipping_weight_stored
        noted_weight = None if weight_stored else command.shipping_weight_kg

        async def write_tracking() -> bool:
            values: dict[str, Any] = {
                "carrier_tracking_ref": tracking,
                "carrier_price": float(shipment.cost.amount),
            }
            carrier_id = await gateway.carrier_id(shipment.carrier)
            if carrier_id is not None:
                values["carrier_id"] = carrier_id
            if command.shipping_weight_kg is not None and weight_stored:
                values["shipping_weight"] = command.shipping_weight_kg
            await gateway.odoo.call("stock.picking", "write", [picking.id], vals=values)
            return True

        async def tracking_written() -> bool | None:
            now = await gateway.reader.picking(picking.id)
            return True if now is not None and now.tracking_ref == tracking else None

        async def post_shipment_note() -> int:
            note = shipment_note(shipment, differences, noted_weight, backorder=command.ship_picked)
            return await post_note(gateway.odoo, picking.id, note)

        async def note_posted() -> int | None:
            return await find_note(gateway.odoo, picking.id, tracking)

        async def validate() -> bool:
            return await validate_in_full(gateway.odoo, picking, moves or None)

        async def validated() -> bool | None:
            now = await gateway.reader.picking(picking.id)
            return True if now is not None and now.state == "done" else None

        # Whether the picking ends done, known from what was done here: every path
        # that validates returns only once Odoo says it is done (picking_validation.validate
        # raises otherwise), and the tracking and the note do not change the state. No
        # picking is read back for it (a call per shipment); a person validating it in
        # Odoo meanwhile is reported as not validated (ops are asked to look at it).
        validated_here = picking.state == "done"
        key = f"odoo:{picking.id}:{tracking}"
        await runtime.once_only(bool).run(
            f"{key}:tracking", write_tracking, recover=tracking_written
        )
        await runtime.once_only(int).run(f"{key}:note", post_shipment_note, recover=note_posted)
        if to_validate and picked is not None and not picked.in_full and command.ship_picked:
            check = picked

            async def ship_picked() -> bool:
                return await validate_picked(gateway.odoo, picking, check, moves)

            validated_here = await runtime.once_only(bool).run(
                f"odoo:{picking.id}:validate", ship_picked, recover=validated
            )
        elif to_validate and picked is not None and not picked.in_full:
            # Writing absolute quantities is harmless to repeat: no once-only record.
            await record_picked(gateway.odoo, picked, moves)
            log.warning(
                "%s not validated: picked otherwise than demanded (%s)",
                picking.name,
                "; ".join(differences),
            )
        elif to_validate:
            validated_here = await runtime.once_only(bool).run(
                f"odoo:{picking.id}:validate", validate, recover=validated
            )
    recorded = ShipmentRecordedInOdoo(
        order_ref=command.order_ref,
        odoo_picking_id=picking.id,
        tracking_number=tracking,
        picking_validated=validated_here,
        recorded_at=datetime.now(UTC),
    )
    await ctx.publish(
        recorded,
        fact_id=fact_id("odoo", "stock.picking", picking.id, "shipment_recorded", tracking),
    )
