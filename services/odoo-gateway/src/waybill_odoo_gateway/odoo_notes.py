"""Telling the people in Odoo: a delivered shipment, a plain note, an exception for a person.

Each leaves a chatter note on the delivery; an exception also puts a to-do
(``mail.mail_activity_data_todo``) on the ops user. Each note and activity is
made once per business key (the delivery, the note id, the exception id); a
redelivered command whose earlier attempt may have reached Odoo looks the
note or activity up before making it again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from waybill_contracts import fact_id
from waybill_contracts.commands import PostExceptionInOdoo, PostNoteInOdoo, RecordDeliveryInOdoo
from waybill_contracts.events import DeliveryRecordedInOdoo
from waybill_odoo_gateway.chatter import escape, find_note, post_note
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.gateway import Gateway
from waybill_odoo_gateway.odoo_values import first_id
from waybill_runtime.bus.consumer import HandlerContext

__all__ = ["exception_note", "plain_note", "post_exception", "post_plain_note", "record_delivery"]

log = logging.getLogger("waybill.odoo.notes")

TODO_ACTIVITY = "mail.mail_activity_data_todo"


def delivery_note(command: RecordDeliveryInOdoo) -> str:
    """The chatter note of a delivered shipment (HTML)."""
    delivered = command.delivered_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<p>Delivered on {delivered} (tracking number {escape(command.tracking_number)}).</p>"


def exception_note(command: PostExceptionInOdoo) -> str:
    """The chatter note of an exception (HTML); it names the exception id for lookups."""
    detail = f"<p>{escape(command.detail)}</p>" if command.detail else ""
    return (
        f"<p><b>Waybill exception</b>: {escape(command.summary)}</p>{detail}"
        f"<p>Reference: {escape(command.exception_id)}</p>"
    )


def plain_note(command: PostNoteInOdoo) -> str:
    """The chatter note of :class:`PostNoteInOdoo` (HTML); it names the note id for lookups."""
    return f"<p>{escape(command.text)}</p><p>Reference: {escape(command.note_id)}</p>"


async def post_plain_note(
    gateway: Gateway, command: PostNoteInOdoo, ctx: HandlerContext[OdooGatewaySettings]
) -> None:
    """Handle :class:`PostNoteInOdoo`: one chatter note on the picking, nothing else."""
    async with gateway.pickings.hold(command.odoo_picking_id):
        picking = await gateway.picking_for(command.odoo_picking_id, command.order_ref)

        async def post() -> int:
            return await post_note(gateway.odoo, picking.id, plain_note(command))

        async def posted() -> int | None:
            return await find_note(gateway.odoo, picking.id, command.note_id)

        await ctx.runtime.once_only(int).run(f"odoo:note:{command.note_id}", post, recover=posted)


async def record_delivery(
    gateway: Gateway, command: RecordDeliveryInOdoo, ctx: HandlerContext[OdooGatewaySettings]
) -> None:
    """Handle :class:`RecordDeliveryInOdoo` and publish :class:`DeliveryRecordedInOdoo`."""
    tracking = command.tracking_number
    async with gateway.pickings.hold(command.odoo_picking_id):
        # A delivered parcel's picking was validated when it shipped: usually no read.
        picking_id = await gateway.existing_picking_id(command.odoo_picking_id, command.order_ref)

        async def post() -> int:
            return await post_note(gateway.odoo, picking_id, delivery_note(command))

        async def posted() -> int | None:
            return await find_note(gateway.odoo, picking_id, "Delivered on", tracking)

        await ctx.runtime.once_only(int).run(
            f"odoo:{picking_id}:{command.tracking_number}:delivered", post, recover=posted
        )
    recorded = DeliveryRecordedInOdoo(
        order_ref=command.order_ref,
        odoo_picking_id=picking_id,
        recorded_at=datetime.now(UTC),
    )
    await ctx.publish(
        recorded, fact_id=fact_id("odoo", "stock.picking", picking_id, "delivery_recorded")
    )


async def post_exception(
    gateway: Gateway, command: PostExceptionInOdoo, ctx: HandlerContext[OdooGatewaySettings]
) -> None:
    """Handle :class:`PostExceptionInOdoo`: a chatter note and a to-do for the ops user."""
    runtime = ctx.runtime
    async with gateway.pickings.hold(command.odoo_picking_id):
        picking = await gateway.picking_for(command.odoo_picking_id, command.order_ref)
        key = f"odoo:exception:{command.exception_id}"

        async def post() -> int:
            return await post_note(gateway.odoo, picking.id, exception_note(command))

        async def posted() -> int | None:
            return await find_note(gateway.odoo, picking.id, command.exception_id)

        async def schedule() -> int:
            login = command.assignee_login or gateway.settings.odoo_ops_login
            user_id = await gateway.user_id(login)
            if user_id is None:
                user_id = gateway.odoo.uid
                log.warning(
                    "Odoo has no user %r for the to-do of exception %s: assigned to the "
                    "integration user; set WAYBILL_ODOO_OPS_LOGIN",
                    login,
                    command.exception_id,
                )
            scheduled = await gateway.odoo.call(
                "stock.picking",
                "activity_schedule",
                [picking.id],
                act_type_xmlid=TODO_ACTIVITY,
                summary=command.summary,
                note=command.detail or command.summary,
                user_id=user_id,
            )
            return first_id(scheduled) or 0

        async def scheduled() -> int | None:
            found = await gateway.odoo.call(
                "mail.activity",
                "search",
                domain=[
                    ("res_model", "=", "stock.picking"),
                    ("res_id", "=", picking.id),
                    ("summary", "=", command.summary),
                ],
                limit=1,
            )
            return int(found[0]) if found else None

        await runtime.once_only(int).run(f"{key}:note", post, recover=posted)
        await runtime.once_only(int).run(f"{key}:activity", schedule, recover=scheduled)
