"""What differs between Odoo 16, 17, 18 and 19 for the fields and calls the gateway uses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["OLDEST_SUPPORTED", "OdooDialect", "parse_major"]

OLDEST_SUPPORTED = 16
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class OdooDialect:
    """One Odoo major version, as the gateway needs to know it."""

    major: int

    @property
    def series(self) -> str:
        """``"17.0"``."""
        return f"{self.major}.0"

    @property
    def move_done_field(self) -> str:
        """Where a stock move keeps its done quantity: ``quantity_done`` (16), ``quantity``."""
        return "quantity_done" if self.major <= 16 else "quantity"

    @property
    def has_picked_flag(self) -> bool:
        """17+ moves carry a ``picked`` flag that validation looks at."""
        return self.major >= 17

    @property
    def has_web_read(self) -> bool:
        """``web_read`` / ``web_search_read`` with a specification (17+, odoo/models.py): a
        record and its related records in one call. 16's ``web_search_read`` takes a field
        list instead."""
        return self.major >= 17

    @property
    def has_json2(self) -> bool:
        """Whether ``/json/2/<model>/<method>`` exists (19+)."""
        return self.major >= 19

    @property
    def notes_need_body_is_html(self) -> bool:
        """17+ ``message_post`` escapes a text body unless ``body_is_html=True``; 16 has no
        such parameter (it would be refused as an unknown message field)."""
        return self.major >= 17

    @property
    def shipping_weight_stored(self) -> bool:
        """``stock.picking.shipping_weight`` is computed and not stored on 16 and 17 (a write
        is silently dropped); 18+ (``stock_delivery``) keeps what is written."""
        return self.major >= 18

    @property
    def delivery_module(self) -> str:
        """The module giving pickings ``carrier_id``, ``carrier_tracking_ref`` and
        ``carrier_price``: ``delivery`` up to 17, ``stock_delivery`` from 18."""
        return "stock_delivery" if self.major >= 18 else "delivery"

    @property
    def has_webhook_action(self) -> bool:
        """ir.actions.server ``state='webhook'`` ("Send Webhook Notification"), 17.0+."""
        return self.major >= 17

    @property
    def api_keys_expire(self) -> bool:
        """18+ API keys carry an ``expiration_date`` (at most 90 days for internal users)."""
        return self.major >= 18

    @property
    def jsonrpc_deprecated(self) -> bool:
        """19 deprecates ``/jsonrpc`` (removal planned in 20): JSON-2 is the way."""
        return self.major >= 19

    @property
    def storable_field(self) -> str:
        """The product field saying Odoo keeps stock of it: ``type`` (``"product"``) up to
        17, the ``is_storable`` flag from 18 (where goods are all ``type="consu"``)."""
        return "is_storable" if self.major >= 18 else "type"

    def is_storable(self, product: dict[str, Any]) -> bool:
        """Whether a product read with :attr:`storable_field` has quants (stock on hand)."""
        if self.major >= 18:
            return bool(product.get("is_storable"))
        return product.get("type") == "product"

    @property
    def create_returns_method(self) -> str:
        """The return wizard's method (addons/stock/wizard/stock_picking_return.py):
        ``create_returns`` up to 17, renamed ``action_create_returns`` in 18."""
        return "action_create_returns" if self.major >= 18 else "create_returns"

    @property
    def return_wizard_has_location(self) -> bool:
        """16/17's return wizard carries the return ``location_id`` (and its lines
        ``to_refund``), which no onchange fills over RPC; 18 dropped both."""
        return self.major <= 17

    def reversal(self, values: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The ``account.move.reversal`` values and method for a credit note left in draft:
        16 picks ``refund_method="refund"`` and calls ``reverse_moves``; 17+ dropped the
        field for ``refund_moves`` (addons/account/wizard/account_move_reversal.py)."""
        if self.major <= 16:
            return {**values, "refund_method": "refund"}, "reverse_moves"
        return dict(values), "refund_moves"

    def validate_context(self, picking_id: int, *, backorder: bool = False) -> dict[str, Any]:
        """Context for ``button_validate`` that validates without any wizard.

        Skips the backorder wizard: without ``backorder`` no backorder is made
        (the whole demand is done), with it Odoo makes one for what is left.
        16 also asks to confirm an "immediate transfer" when nothing was marked
        done. ``skip_sms``: ``stock_sms`` (16-18) otherwise answers with its
        ``confirm.stock.sms`` wizard until the company answered it once.
        """
        context: dict[str, Any] = {"skip_backorder": True, "skip_sms": True}
        if not backorder:
            context["picking_ids_not_to_backorder"] = [picking_id]
        if self.major <= 16:
            context["skip_immediate"] = True
        return context


def parse_major(server_version_info: Any) -> int | None:
    """The major version from ``server_version_info`` (``[17, 0, 0, "final", 0, ""]``).

    Odoo Online names its series ``"saas~17.2"``; the digits after ``~`` are the major.
    """
    if not isinstance(server_version_info, list | tuple) or not server_version_info:
        return None
    first = server_version_info[0]
    if isinstance(first, int) and not isinstance(first, bool):
        return first
    if isinstance(first, str):
        found = _DIGITS.search(first)
        return int(found.group(1)) if found else None
    return None
