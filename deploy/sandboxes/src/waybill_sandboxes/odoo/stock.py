"""Sales and delivery business rules: confirming orders, reserving, validating, cancelling.

Simplified from Odoo's sale and stock apps to what an integration observes:
a confirmed order gets one outgoing picking with one move per order line,
reserved from WH/Stock when enough is on hand (state ``assigned``, "Ready").
``button_validate`` answers with the wizards real Odoo opens when quantities
are short (backorder) or, in 16, not filled in at all (immediate transfer).
"""

from __future__ import annotations

from typing import Any

from waybill_sandboxes.odoo.done_moves import move_quantity
from waybill_sandboxes.odoo.env import Records, xmlid_to_record
from waybill_sandboxes.odoo.exceptions import UserError
from waybill_sandboxes.odoo.registry import Registry


def install_sequences(registry: Registry) -> None:
    """Name new orders ``S00001`` and new pickings ``WH/OUT/00001`` as Odoo's sequences do."""

    def name_order(values: dict[str, Any]) -> None:
        if values.get("name") in (None, False, "", "New"):
            values["name"] = f"S{registry.next_sequence('sale.order'):05d}"

    def name_picking(values: dict[str, Any]) -> None:
        if values.get("name") in (None, False, "", "/") and values.get("picking_type_id"):
            prefix = registry.value(
                "stock.picking.type", values["picking_type_id"], "sequence_code"
            )
            values["name"] = f"WH/{prefix}/{registry.next_sequence(f'picking.{prefix}'):05d}"

    registry.create_defaults["sale.order"] = name_order
    registry.create_defaults["stock.picking"] = name_picking


def done_quantity(registry: Registry, move_id: int) -> float:
    """The quantity done on a move (``quantity_done`` in 16, ``quantity`` from 17)."""
    return float(registry.value("stock.move", move_id, registry.version.move_done_field) or 0.0)


# ---------------------------------------------------------------- sale.order
def action_confirm(self: Records) -> bool:
    """Confirm quotations: state ``sale`` and one outgoing picking each, reserved if possible."""
    registry = self.env.registry
    registry.ensure_exist(self.model, list(self.ids), self.env.uid)
    for order_id in self.ids:
        state = registry.value("sale.order", order_id, "state")
        if state not in ("draft", "sent"):
            raise UserError(
                "Some orders are not in a state requiring confirmation.\n"
                f"{registry.display_name('sale.order', order_id)}"
            )
        registry.write(
            "sale.order", [order_id], {"state": "sale", "date_order": registry.now()}, self.env.uid
        )
        picking_id = _create_delivery(registry, order_id, self.env.uid)
        action_assign(Records(self.env, "stock.picking", (picking_id,)))
    return True


def _create_delivery(registry: Registry, order_id: int, uid: int) -> int:
    _model, out_type = xmlid_to_record(registry, "stock.picking_type_out")
    source = registry.value("stock.picking.type", out_type, "default_location_src_id")
    dest = registry.value("stock.picking.type", out_type, "default_location_dest_id")
    order_name = registry.value("sale.order", order_id, "name")
    partner = registry.value("sale.order", order_id, "partner_shipping_id") or registry.value(
        "sale.order", order_id, "partner_id"
    )
    uom_field = registry.version.order_line_uom_field
    moves: list[Any] = []
    weight = 0.0
    for line_id in registry.value("sale.order", order_id, "order_line"):
        product = registry.value("sale.order.line", line_id, "product_id")
        if not product:
            continue
        quantity = float(registry.value("sale.order.line", line_id, "product_uom_qty"))
        weight += quantity * float(registry.value("product.product", product, "weight") or 0.0)
        moves.append(
            (0, 0, {
                "name": registry.value("product.product", product, "name"),
                "product_id": product,
                "product_uom_qty": quantity,
                "product_uom": registry.value("sale.order.line", line_id, uom_field),
                "location_id": source,
                "location_dest_id": dest,
                "origin": order_name,
                "sale_line_id": line_id,
                "state": "confirmed",
                "date": registry.value("sale.order", order_id, "commitment_date") or registry.now(),
            })
        )  # fmt: skip
    scheduled = registry.value("sale.order", order_id, "commitment_date") or registry.now()
    values: dict[str, Any] = {
        "picking_type_id": out_type,
        "origin": order_name,
        "partner_id": partner,
        "sale_id": order_id,
        "location_id": source,
        "location_dest_id": dest,
        "scheduled_date": scheduled,
        "state": "draft",
        "move_ids": moves,
    }
    if registry.with_delivery:
        values["carrier_id"] = registry.value("sale.order", order_id, "carrier_id")
        values["weight"] = round(weight, 3)
        values["shipping_weight"] = round(weight, 3)  # dropped where it is computed (16/17)
    [picking_id] = registry.create("stock.picking", [values], uid)
    registry.write("stock.picking", [picking_id], {"state": "confirmed"}, uid)
    return picking_id


def cancel_orders(self: Records) -> bool:
    """``sale.order.action_cancel``: cancel the order and its pickings that are not done."""
    registry = self.env.registry
    registry.ensure_exist(self.model, list(self.ids), self.env.uid)
    for order_id in self.ids:
        locked = registry.value("sale.order", order_id, "state") == "done" or (
            registry.version.major >= 17 and registry.value("sale.order", order_id, "locked")
        )
        if locked:
            raise UserError(
                "You cannot cancel a locked order. Please unlock it first if you want to cancel it."
            )
    for order_id in self.ids:
        open_pickings = [
            picking
            for picking in registry.value("sale.order", order_id, "picking_ids")
            if registry.value("stock.picking", picking, "state") not in ("done", "cancel")
        ]
        if open_pickings:
            cancel_pickings(Records(self.env, "stock.picking", tuple(open_pickings)))
        registry.write("sale.order", [order_id], {"state": "cancel"}, self.env.uid)
    return True


def lock_orders(self: Records) -> None:
    """``sale.order.action_lock`` (17+): set the ``locked`` flag. Returns None, as Odoo does,
    which XML-RPC cannot marshal."""
    registry = self.env.registry
    registry.ensure_exist(self.model, list(self.ids), self.env.uid)
    registry.write("sale.order", list(self.ids), {"locked": True}, self.env.uid)


def finish_orders(self: Records) -> bool:
    """``sale.order.action_done`` (16): lock confirmed orders in the ``done`` state."""
    registry = self.env.registry
    registry.ensure_exist(self.model, list(self.ids), self.env.uid)
    registry.write("sale.order", list(self.ids), {"state": "done"}, self.env.uid)
    return True


def unlock_orders(self: Records) -> None:
    """``sale.order.action_unlock``: back from ``done`` (16) or clear ``locked`` (17+)."""
    registry = self.env.registry
    registry.ensure_exist(self.model, list(self.ids), self.env.uid)
    values = {"state": "sale"} if registry.version.major == 16 else {"locked": False}
    registry.write("sale.order", list(self.ids), values, self.env.uid)


# ------------------------------------------------------------- stock.picking
def action_assign(self: Records) -> bool:
    """Reserve stock for waiting pickings; a fully reserved picking becomes ``assigned``."""
    registry = self.env.registry
    registry.ensure_exist(self.model, list(self.ids), self.env.uid)
    for picking_id in self.ids:
        if registry.value("stock.picking", picking_id, "state") not in ("confirmed", "waiting"):
            continue
        moves = registry.value("stock.picking", picking_id, "move_ids")
        if not all(_available(registry, m) >= _demand(registry, m) for m in moves):
            continue
        for move_id in moves:
            _reserve(registry, move_id, _demand(registry, move_id), self.env.uid)
            values: dict[str, Any] = {"state": "assigned"}
            if registry.version.major >= 17:
                values["quantity"] = _demand(registry, move_id)
            registry.write("stock.move", [move_id], values, self.env.uid)
        registry.write("stock.picking", [picking_id], {"state": "assigned"}, self.env.uid)
    return True


def _demand(registry: Registry, move_id: int) -> float:
    return float(registry.value("stock.move", move_id, "product_uom_qty") or 0.0)


def _stock_quants(registry: Registry, move_id: int) -> list[int]:
    return registry.search(
        "stock.quant",
        [
            ("product_id", "=", registry.value("stock.move", move_id, "product_id")),
            ("location_id", "=", registry.value("stock.move", move_id, "location_id")),
        ],
    )


def _available(registry: Registry, move_id: int) -> float:
    return sum(
        float(registry.value("stock.quant", q, "quantity"))
        - float(registry.value("stock.quant", q, "reserved_quantity"))
        for q in _stock_quants(registry, move_id)
    )


def _reserve(registry: Registry, move_id: int, quantity: float, uid: int) -> None:
    for quant in _stock_quants(registry, move_id):
        reserved = float(registry.value("stock.quant", quant, "reserved_quantity"))
        registry.write("stock.quant", [quant], {"reserved_quantity": reserved + quantity}, uid)
        return


def _consume(registry: Registry, move_id: int, reserved: float, done: float, uid: int) -> None:
    for quant in _stock_quants(registry, move_id):
        values = {
            "quantity": float(registry.value("stock.quant", quant, "quantity")) - done,
            "reserved_quantity": max(
                0.0, float(registry.value("stock.quant", quant, "reserved_quantity")) - reserved
            ),
        }
        registry.write("stock.quant", [quant], values, uid)
        return


def _wizard(self: Records, res_model: str, name: str, ids: list[int]) -> dict[str, Any]:
    context = {
        **self.env.context,
        "button_validate_picking_ids": ids,
        "default_show_transfers": False,
        "default_pick_ids": [[4, i] for i in ids],
    }
    return {
        "name": name,
        "type": "ir.actions.act_window",
        "view_mode": "form",
        "res_model": res_model,
        "views": [[False, "form"]],
        "view_id": False,
        "target": "new",
        "context": context,
    }


def button_validate(self: Records) -> bool | dict[str, Any]:
    """Validate pickings, or answer with the wizard real Odoo would open."""
    registry, context = self.env.registry, self.env.context
    registry.ensure_exist(self.model, list(self.ids), self.env.uid)
    todo = [p for p in self.ids if registry.value("stock.picking", p, "state") != "done"]
    if not todo:
        return _validate_done_again(self)
    for picking_id in todo:
        state = registry.value("stock.picking", picking_id, "state")
        if state == "cancel":
            raise UserError("You cannot validate a transfer that is cancelled.")
        if state == "draft" or not registry.value("stock.picking", picking_id, "move_ids"):
            raise UserError("Please add some items to move.")
    moves = [m for p in todo for m in registry.value("stock.picking", p, "move_ids")]
    if registry.version.has_immediate_transfer and not any(
        done_quantity(registry, m) for m in moves
    ):
        if not context.get("skip_immediate"):
            return _wizard(self, "stock.immediate.transfer", "Immediate Transfer?", todo)
        for move_id in moves:
            registry.write(
                "stock.move", [move_id], {"quantity_done": _demand(registry, move_id)}, self.env.uid
            )
    if not any(done_quantity(registry, m) for m in moves):
        raise UserError(
            "You cannot validate a transfer if no quantities are reserved nor done. "
            "To force the transfer, encode quantities."
        )
    no_backorder = set(context.get("picking_ids_not_to_backorder") or [])
    short = [
        p
        for p in todo
        if any(
            done_quantity(registry, m) < _demand(registry, m)
            for m in registry.value("stock.picking", p, "move_ids")
        )
    ]
    if short and not context.get("skip_backorder"):
        return _wizard(self, "stock.backorder.confirmation", "Create Backorder?", short)
    warn_sms = _pickings_to_warn_sms(registry, todo) if not context.get("skip_sms") else []
    if warn_sms:
        return _sms_wizard(self, warn_sms)
    for picking_id in todo:
        if picking_id in short and picking_id not in no_backorder:
            _create_backorder(registry, picking_id, self.env.uid)
        _mark_done(registry, picking_id, self.env.uid)
    return _autoprint_action(registry, todo)


def _pickings_to_warn_sms(registry: Registry, picking_ids: list[int]) -> list[int]:
    """addons/stock_sms/models/stock_picking.py ``_check_warn_sms`` (16.0-18.0): outgoing
    pickings whose partner has a phone, while the company has SMS confirmation on and has
    not answered the wizard once. Checked in ``_pre_action_done_hook`` after the
    immediate-transfer and backorder checks passed."""
    if not registry.version.sms_confirmation_default:
        return []  # 19.0: stock_text_confirmation, off by default
    companies = registry.all_ids("res.company")
    if not companies:
        return []
    company = companies[0]
    if not registry.value("res.company", company, "stock_move_sms_validation") or (
        registry.value("res.company", company, "has_received_warning_stock_sms")
    ):
        return []
    return [
        p
        for p in picking_ids
        if registry.value("stock.picking", p, "picking_type_code") == "outgoing"
        and (partner := registry.value("stock.picking", p, "partner_id"))
        and registry.value("res.partner", partner, "phone")
    ]


def _sms_wizard(self: Records, picking_ids: list[int]) -> dict[str, Any]:
    """``_action_generate_warn_sms_wizard``: the ``confirm.stock.sms`` form."""
    action = _wizard(self, "confirm.stock.sms", "SMS", picking_ids)
    action["context"] = {**action["context"], "default_pick_ids": [[4, i] for i in picking_ids]}
    return action


def _autoprint_action(registry: Registry, picking_ids: list[int]) -> bool | dict[str, Any]:
    """17.0+ ``button_validate`` ends with ``_get_autoprint_report_actions``: the
    ``do_multi_print`` client action when the operation type prints the delivery slip,
    returned after the pickings are done (addons/stock/models/stock_picking.py)."""
    if not registry.version.has_autoprint:
        return True
    printing = [
        p
        for p in picking_ids
        if (kind := registry.value("stock.picking", p, "picking_type_id"))
        and registry.value("stock.picking.type", kind, "auto_print_delivery_slip")
    ]
    if not printing:
        return True
    return {
        "type": "ir.actions.client",
        "tag": "do_multi_print",
        "params": {
            "reports": [{
                "type": "ir.actions.report",
                "report_name": "stock.report_deliveryslip",
                "report_type": "qweb-pdf",
                "context": {"active_ids": printing},
            }],
            "anotherAction": False,
        },
    }  # fmt: skip


def _validate_done_again(self: Records) -> bool | dict[str, Any]:
    """``button_validate`` on pickings already done.

    16.0: nothing left to do. 17.0: ``_sanity_check`` finds no move to process and
    refuses. 18.0+: the done moves are processed again: ``date_done`` is rewritten
    and the print action comes back (addons/stock/models/stock_picking.py)."""
    registry = self.env.registry
    major = registry.version.major
    if major <= 16:
        return True
    if not registry.version.revalidates_done_pickings:
        raise UserError(
            "You cannot validate a transfer if no quantities are reserved nor done. "
            "To force the transfer, encode quantities."
        )
    for picking_id in self.ids:
        registry.write("stock.picking", [picking_id], {"date_done": registry.now()}, self.env.uid)
    return _autoprint_action(registry, list(self.ids))


def _create_backorder(registry: Registry, picking_id: int, uid: int) -> int:
    remaining = []
    for move_id in registry.value("stock.picking", picking_id, "move_ids"):
        left = _demand(registry, move_id) - done_quantity(registry, move_id)
        if left > 0:
            row = registry.read("stock.move", [move_id], [
                "name", "product_id", "product_uom", "location_id", "location_dest_id", "origin",
                "sale_line_id", "date",
            ])[0]  # fmt: skip
            row.pop("id")
            remaining.append((0, 0, {**row, "product_uom_qty": left, "state": "confirmed"}))
    source = registry.read("stock.picking", [picking_id], [
        "picking_type_id", "origin", "partner_id", "sale_id", "carrier_id", "location_id",
        "location_dest_id", "scheduled_date",
    ])[0]  # fmt: skip
    source.pop("id")
    [backorder] = registry.create(
        "stock.picking",
        [{**source, "backorder_id": picking_id, "state": "confirmed", "move_ids": remaining}],
        uid,
    )
    return backorder


def _mark_done(registry: Registry, picking_id: int, uid: int) -> None:
    for move_id in registry.value("stock.picking", picking_id, "move_ids"):
        done = done_quantity(registry, move_id)
        if done <= 0:
            registry.write("stock.move", [move_id], {"state": "cancel"}, uid)
            continue
        _consume(registry, move_id, _demand(registry, move_id), done, uid)
        _receive(registry, move_id, done, uid)
        values: dict[str, Any] = {"state": "done"}
        if registry.version.major >= 17:
            values["picked"] = True
        registry.write("stock.move", [move_id], values, uid)
        line = registry.value("stock.move", move_id, "sale_line_id")
        if line:
            # A return takes back what it received (sale_stock _get_qty_delivered counts
            # returned moves negatively; 16.0/17.0 only those marked to_refund).
            sign = -1.0 if _counts_as_returned(registry, move_id) else 1.0
            delivered = float(registry.value("sale.order.line", line, "qty_delivered"))
            registry.write(
                "sale.order.line", [line], {"qty_delivered": delivered + sign * done}, uid
            )
    registry.write(
        "stock.picking", [picking_id], {"state": "done", "date_done": registry.now()}, uid
    )


def _receive(registry: Registry, move_id: int, done: float, uid: int) -> None:
    """Goods arriving in a warehouse location are on hand there (receipts and returns)."""
    destination = registry.value("stock.move", move_id, "location_dest_id")
    if not destination or registry.value("stock.location", destination, "usage") != "internal":
        return
    product = registry.value("stock.move", move_id, "product_id")
    move_quantity(registry, product, destination, done, uid)


def _counts_as_returned(registry: Registry, move_id: int) -> bool:
    if not registry.value("stock.move", move_id, "origin_returned_move_id"):
        return False
    return registry.version.major >= 18 or bool(registry.value("stock.move", move_id, "to_refund"))


def cancel_pickings(self: Records) -> bool:
    """``stock.picking.action_cancel``: cancel pickings not done yet, releasing reservations."""
    registry = self.env.registry
    registry.ensure_exist(self.model, list(self.ids), self.env.uid)
    for picking_id in self.ids:
        if registry.value("stock.picking", picking_id, "state") == "done":
            raise UserError(
                "You cannot cancel a stock move that has been set to 'Done'. "
                "Create a return in order to reverse the moves which took place."
            )
    for picking_id in self.ids:
        if registry.value("stock.picking", picking_id, "state") == "cancel":
            continue
        for move_id in registry.value("stock.picking", picking_id, "move_ids"):
            if registry.value("stock.move", move_id, "state") == "assigned":
                _consume(registry, move_id, _demand(registry, move_id), 0.0, self.env.uid)
            registry.write("stock.move", [move_id], {"state": "cancel"}, self.env.uid)
        registry.write("stock.picking", [picking_id], {"state": "cancel"}, self.env.uid)
    return True
