"""Notes in a picking's chatter: posting one, and finding one an earlier attempt posted."""

from __future__ import annotations

from typing import Any

from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_values import first_id

__all__ = ["find_note", "post_note"]


async def post_note(odoo: OdooClient, picking_id: int, body: str) -> int:
    """Post an internal note (``mail.mt_note``) on the picking; returns the message id."""
    posted = await odoo.call(
        "stock.picking",
        "message_post",
        [picking_id],
        body=body,
        message_type="comment",
        subtype_xmlid="mail.mt_note",
    )
    return first_id(posted) or 0


async def find_note(odoo: OdooClient, picking_id: int, *phrases: str) -> int | None:
    """A message on the picking whose body holds every phrase (as posted, HTML-escaped)."""
    domain: list[Any] = [("model", "=", "stock.picking"), ("res_id", "=", picking_id)]
    domain += [("body", "ilike", phrase) for phrase in phrases]
    found = await odoo.call("mail.message", "search", domain=domain, limit=1)
    return int(found[0]) if found else None
