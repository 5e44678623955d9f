"""Record shipment in Odoo: tracking ref and carrier on the picking, a chatter note, validation.

The three Odoo effects happen once per shipment (picking + tracking number),
however often the command is delivered, under one effects-once record: its
intent is written before the first effect and its result after the last.
A first attempt makes them one after the other without looking. An attempt
that finds an earlier one's intent (that one died, or failed half-way, say
on a lock conflict while validating) may not know which effects reached
Odoo, so it looks each one up first (the tracking ref on the picking, the
note in the chatter, the picking done) and makes only the missing ones.

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
from waybill_odoo_gateway.deliveries import Picking
from waybill_odoo_gateway.gateway import Gateway
from waybill_odoo_gateway.picking_validation import (
    Move,
    PickedAgainstDemand,
    compare_with_demand,
    open_of,
    picking_moves,
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


class _Recording:
    """The Odoo effects of one :class:`RecordShipmentInOdoo` on a picking read just now.

    :meth:`make` is the effect of the command's effects-once record, and
    :meth:`made_earlier` what a redelivery finding that record's intent asks
    first. Both go by the picking as read at the start of this attempt (after
    the earlier attempt's writes, which are what it has to find).
    """

    def __init__(
        self,
        gateway: Gateway,
        command: RecordShipmentInOdoo,
        picking: Picking,
        moves: list[Move] | None,
    ) -> None:
        self._gateway = gateway
        self._command = command
        self._picking = picking
        self._moves = moves  # all the picking's moves when read with it (17+)
        self._resuming = False
        self._note_id: int | None = None

    async def made_earlier(self) -> bool | None:
        """Whether the picking ended validated, when an earlier attempt made every effect;
        None when one is missing (then :meth:`make` makes the rest, if the earlier
        attempt's intent is old enough to be taken over)."""
        self._resuming = True
        picking, tracking = self._picking, self._command.shipment.tracking_number
        self._note_id = await find_note(self._gateway.odoo, picking.id, tracking)
        if picking.tracking_ref != tracking or self._note_id is None:
            return None
        if picking.state == "done":
            return True
        # Not validated: made in full only if no validation (nor the picked
        # quantities, which are written again harmlessly) was asked for.
        return None if self._command.validate_picking else False

    async def make(self) -> bool:
        """Write the tracking, post the note, validate (each unless an earlier attempt of
        this command made it); True when the picking ends done."""
        odoo, command, picking = self._gateway.odoo, self._command, self._picking
        to_validate = command.validate_picking and picking.state != "done"
        all_moves = self._moves
        moves: list[Move] = []
        picked: PickedAgainstDemand | None = None
        if to_validate and command.lines:
            if all_moves is None:
                all_moves = await picking_moves(odoo, picking)
            moves = open_of(all_moves)
            picked = compare_with_demand(moves, command.lines)
        differences = picked.differences if picked is not None else ()
        if not (self._resuming and picking.tracking_ref == command.shipment.tracking_number):
            await self._write_tracking()
        if not (self._resuming and self._note_id is not None):
            # 16/17 compute shipping_weight and drop what is written: the note keeps it.
            weight_stored = odoo.dialect.shipping_weight_stored
            noted_weight = None if weight_stored else command.shipping_weight_kg
            note = shipment_note(
                command.shipment, differences, noted_weight, backorder=command.ship_picked
            )
            await post_note(odoo, picking.id, note)
        # Whether the picking ends done, known from what was done here: every path
        # that validates returns only once Odoo says it is done (picking_validation.validate
        # raises otherwise), and the tracking and the note do not change the state. No
        # picking is read back for it (a call per shipment); a person validating it in
        # Odoo meanwhile is reported as not validated (ops are asked to look at it).
        if not to_validate:
            return picking.state == "done"
        if picked is not None and not picked.in_full and command.ship_picked:
            return await validate_picked(odoo, picking, picked, moves)
        if picked is not None and not picked.in_full:
            # Writing absolute quantities is harmless to repeat.
            await record_picked(odoo, picked, moves)
            log.warning(
                "%s not validated: picked otherwise than demanded (%s)",
                picking.name,
                "; ".join(differences),
            )
            return False
        return await validate_in_full(odoo, picking, all_moves)

    async def _write_tracking(self) -> None:
        gateway, command = self._gateway, self._command
        shipment = command.shipment
        values: dict[str, Any] = {
            "carrier_tracking_ref": shipment.tracking_number,
            "carrier_price": float(shipment.cost.amount),
        }
        carrier_id = await gateway.carrier_id(shipment.carrier)
        if carrier_id is not None:
            values["carrier_id"] = carrier_id
        if command.shipping_weight_kg is not None and gateway.odoo.dialect.shipping_weight_stored:
            values["shipping_weight"] = command.shipping_weight_kg
        await gateway.odoo.call("stock.picking", "write", [self._picking.id], vals=values)


async def record_shipment(
    gateway: Gateway, command: RecordShipmentInOdoo, ctx: HandlerContext[OdooGatewaySettings]
) -> None:
    """Handle :class:`RecordShipmentInOdoo` and publish :class:`ShipmentRecordedInOdoo`."""
    shipment = command.shipment
    tracking = shipment.tracking_number
    async with gateway.pickings.hold(command.odoo_picking_id):
        picking, moves = await gateway.picking_to_ship(command.odoo_picking_id, command.order_ref)
        if picking.state == "cancel":
            raise PermanentError(
                f"{picking.name} is cancelled in Odoo: shipment {shipment.shipment_id} "
                f"(tracking {tracking}) was not recorded; void the label"
            )
        recording = _Recording(gateway, command, picking, moves)
        # One effects-once record for the three effects (two KV writes, not six): the
        # picking was read just now, so a redelivery finding this attempt's intent
        # checks each effect in Odoo (see _Recording) instead of keeping a record each.
        validated_here = await ctx.runtime.once_only(bool).run(
            f"odoo:{picking.id}:{tracking}:shipment",
            recording.make,
            recover=recording.made_earlier,
        )
        if validated_here:
            gateway.picking_done(picking.id, picking.name)
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
