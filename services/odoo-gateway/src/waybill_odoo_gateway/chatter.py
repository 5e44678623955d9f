"""Notes in a picking's chatter: posting one, and finding one an earlier attempt posted."""

from __future__ import annotations

import html
from typing import Any

from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_values import first_id

__all__ = ["escape", "find_note", "post_note"]


def escape(text: str) -> str:
    """Text for a note's HTML: ``& < >`` escaped, quotes left as they are.

    Odoo's sanitizer (lxml) stores text quotes as plain characters whatever was
    sent, so an escaped quote would never be found again by :func:`find_note`.
    Attribute values (a link's ``href``) still need :func:`html.escape` in full.
    """
    return html.escape(text, quote=False)


async def post_note(odoo: OdooClient, picking_id: int, body: str) -> int:
    """Post an internal note (``mail.mt_note``, ``body`` in HTML) on the picking; returns the
    message id."""
    await odoo.connect()  # the version decides the call
    # 17+ escape a text body unless told it is HTML (RPC cannot send Markup);
    # 16 takes it as HTML and has no such parameter.
    as_html: dict[str, Any] = {"body_is_html": True} if odoo.dialect.notes_need_body_is_html else {}
    posted = await odoo.call(
        "stock.picking",
        "message_post",
        [picking_id],
        body=body,
        message_type="comment",
        subtype_xmlid="mail.mt_note",
        **as_html,
    )
    return first_id(posted) or 0


async def find_note(odoo: OdooClient, picking_id: int, *phrases: str) -> int | None:
    """A message on the picking whose body holds every phrase (plain text, escaped here
    the way the note was)."""
    domain: list[Any] = [("model", "=", "stock.picking"), ("res_id", "=", picking_id)]
    domain += [("body", "ilike", escape(phrase)) for phrase in phrases]
    found = await odoo.call("mail.message", "search", domain=domain, limit=1)
    return int(found[0]) if found else None
