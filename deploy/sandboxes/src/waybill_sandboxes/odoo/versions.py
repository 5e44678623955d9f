"""The Odoo major versions the sandbox speaks, and what differs between them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUPPORTED_VERSIONS = (16, 17, 18, 19)


@dataclass(frozen=True)
class OdooVersion:
    """One Odoo major version and the wire and model differences it brings."""

    major: int

    def __post_init__(self) -> None:
        if self.major not in SUPPORTED_VERSIONS:
            supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
            raise ValueError(f"Odoo {self.major} is not simulated: choose one of {supported}")

    @property
    def series(self) -> str:
        """``"17.0"``."""
        return f"{self.major}.0"

    @property
    def version_info(self) -> list[Any]:
        """``server_version_info``: ``[17, 0, 0, "final", 0, ""]``."""
        return [self.major, 0, 0, "final", 0, ""]

    @property
    def jsonrpc_error_code(self) -> int:
        """The JSON-RPC ``error.code`` of server errors: 200 up to 18, 0 from 19."""
        return 0 if self.major >= 19 else 200

    @property
    def has_json2(self) -> bool:
        """The ``/json/2`` API and its bearer documentation exist from 19."""
        return self.major >= 19

    @property
    def has_webhooks(self) -> bool:
        """The "Send Webhook Notification" server action exists from 17."""
        return self.major >= 17

    @property
    def webhooks_after_commit(self) -> bool:
        """19 sends webhooks after commit; 17-18 inside the transaction (even if it rolls back)."""
        return self.major >= 19

    @property
    def has_immediate_transfer(self) -> bool:
        """16 asks to confirm an "immediate transfer" when nothing was marked done."""
        return self.major == 16

    @property
    def move_done_field(self) -> str:
        """Where a stock move keeps its done quantity."""
        return "quantity_done" if self.major == 16 else "quantity"

    @property
    def order_line_uom_field(self) -> str:
        """The unit of measure field of a sale order line (renamed in 19)."""
        return "product_uom_id" if self.major >= 19 else "product_uom"

    # -- what real Odoo does differently per version (issue 15) -------------------

    @property
    def sms_confirmation_default(self) -> bool:
        """Whether ``stock_sms`` asks to confirm SMS on the first delivery validated.

        addons/stock_sms/models/stock_picking.py (16.0-18.0): ``_pre_action_done_hook``
        returns the ``confirm.stock.sms`` wizard unless ``skip_sms`` is in the context,
        while the company has ``stock_move_sms_validation`` (default True in
        addons/stock_sms/models/res_company.py) and has not answered once
        (``has_received_warning_stock_sms``), for an outgoing picking whose partner
        has a phone. 19.0 moved it to ``stock_text_confirmation``, off by default.
        """
        return self.major <= 18

    @property
    def has_autoprint(self) -> bool:
        """``stock.picking.type.auto_print_delivery_slip`` (17.0+): after ``_action_done``,
        addons/stock/models/stock_picking.py ``button_validate`` returns
        ``{'type': 'ir.actions.client', 'tag': 'do_multi_print', ...}``."""
        return self.major >= 17

    @property
    def revalidates_done_pickings(self) -> bool:
        """18.0+ ``button_validate`` on a done picking runs ``_action_done`` again
        (``date_done`` rewritten, confirmation email sent again); 17.0 refuses it."""
        return self.major >= 18

    @property
    def escapes_plain_bodies(self) -> bool:
        """17.0+ addons/mail/models/mail_thread.py ``message_post`` escapes a ``str``
        body unless ``body_is_html=True`` (16.0 has no such parameter: the body is HTML)."""
        return self.major >= 17

    @property
    def shipping_weight_stored(self) -> bool:
        """addons/delivery/models/stock_picking.py (16.0, 17.0): ``shipping_weight`` is
        computed and not stored, so a write is dropped; 18.0+ (stock_delivery) stores it."""
        return self.major >= 18

    @property
    def delivery_module(self) -> str:
        """The module adding ``carrier_id``, ``carrier_tracking_ref``, ``carrier_price``
        to pickings: ``delivery`` up to 17.0, ``stock_delivery`` from 18.0."""
        return "stock_delivery" if self.major >= 18 else "delivery"

    @property
    def recordsets_as_ids(self) -> bool:
        """How JSON-RPC sends a returned recordset that has no ``@api.returns``
        (``activity_schedule``): 16.0-18.0 odoo/tools/json.py falls back to ``str()``,
        ``"mail.activity(5,)"``; 19.0 sends the ids."""
        return self.major >= 19

    @property
    def api_key_max_days(self) -> int | None:
        """18.0+ odoo/addons/base/models/res_users.py ``res.users.apikeys`` has an
        ``expiration_date`` (at most 90 days for internal users, by
        ``base.apikey_expiration_days``-style policy); 16.0/17.0 keys never expire."""
        return 90 if self.major >= 18 else None

    @property
    def jsonrpc_deprecated(self) -> bool:
        """19.0 logs ``/jsonrpc`` and ``/xmlrpc`` as deprecated (removal planned in 20)."""
        return self.major >= 19

    @property
    def lock_error_name(self) -> str:
        """What a lock conflict that outlived Odoo's retries is called on the wire:
        19.0 odoo/service/model.py ``retrying`` raises ``odoo.exceptions.ConcurrencyError``;
        up to 18.0 the psycopg2 error itself."""
        return (
            "odoo.exceptions.ConcurrencyError"
            if self.major >= 19
            else "psycopg2.errors.SerializationFailure"
        )

    def common_version(self) -> dict[str, Any]:
        """What ``common.version()`` and ``/web/webclient/version_info`` return."""
        return {
            "server_version": self.series,
            "server_version_info": self.version_info,
            "server_serie": self.series,
            "protocol_version": 1,
        }
