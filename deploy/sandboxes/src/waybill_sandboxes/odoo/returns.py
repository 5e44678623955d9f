"""Customer returns: the return wizard on a done delivery, and scrapping damaged goods.

As addons/stock/wizard/stock_picking_return.py does it (16.0-19.0):

- ``stock.return.picking`` is created for a done picking (``picking_id``) with
  one ``product_return_moves`` line per returned product (``move_id``: the
  delivered move, ``quantity``). Over RPC no onchange runs, so 16.0/17.0
  clients send the lines and the ``location_id`` themselves; 18.0+ compute
  the lines from ``picking_id`` (quantity 0) unless they are given.
- ``create_returns`` (16.0/17.0) or ``action_create_returns`` (18.0+) makes one
  picking of the delivery type's return type (Receipts): origin
  ``Return of WH/OUT/00001``, from the customer location back to stock, one
  move per non-zero line with ``origin_returned_move_id``; 17.0+ also set the
  picking's ``return_id``. It is confirmed and, coming from outside the
  warehouse, ready at once. The answer is the form action of that picking.
  No non-zero line: "Please specify at least one non-zero quantity."; a
  picking not done: "You may only return Done pickings." (16.0/17.0), while
  18.0+ refuse the wizard itself when the picking has no done move to return.
- Damaged goods are scrapped from stock once received, as a user does with
  the picking's Scrap button: ``stock.scrap`` (picking, product, quantity,
  from the picking's destination to the scrap location), ``action_validate``
  makes its done move; not enough on hand answers the
  ``stock.warn.insufficient.qty.scrap`` wizard instead.
"""

from __future__ import annotations

from typing import Any

from waybill_sandboxes.odoo.done_moves import create_done_move, move_quantity, on_hand
from waybill_sandboxes.odoo.env import Records, add_xmlid, xmlid_to_record
from waybill_sandboxes.odoo.exceptions import UserError
from waybill_sandboxes.odoo.registry import Registry

__all__ = ["create_returns", "install_return_data", "scrap_validate"]


def install_return_data(registry: Registry) -> None:
    """The scrap location, deliveries returned as receipts, and scrap order names."""
    [scrap] = registry.create(
        "stock.location",
        [{"name": "Scrap", "complete_name": "Virtual Locations/Scrap", "usage": "inventory",
          "scrap_location": True}],
        uid=1,
    )  # fmt: skip
    add_xmlid(registry, "stock.stock_location_scrapped", "stock.location", scrap)
    _model, incoming = xmlid_to_record(registry, "stock.picking_type_in")
    _model, outgoing = xmlid_to_record(registry, "stock.picking_type_out")
    registry.write("stock.picking.type", [outgoing], {"return_picking_type_id": incoming}, uid=1)

    def name_scrap(values: dict[str, Any]) -> None:
        if values.get("name") in (None, False, "", "New"):
            values["name"] = f"SP/{registry.next_sequence('stock.scrap'):05d}"

    registry.create_defaults["stock.scrap"] = name_scrap

    def fill_lines(values: dict[str, Any]) -> None:
        # 18.0+ _compute_product_return_moves (stored, readonly=False): the delivered
        # moves with quantity 0, unless the caller gave the lines.
        picking = values.get("picking_id")
        if registry.version.major < 18 or not picking or values.get("product_return_moves"):
            return
        if not registry.exists("stock.picking", [picking]):
            return  # the many2one check reports it
        lines = [
            (0, 0, {"product_id": registry.value("stock.move", move, "product_id"),
                    "move_id": move, "quantity": 0.0})
            for move in registry.value("stock.picking", picking, "move_ids")
            if registry.value("stock.move", move, "state") == "done"
        ]  # fmt: skip
        if not lines:
            raise UserError(
                "No products to return (only lines in Done state and not fully returned yet "
                "can be returned)."
            )
        values["product_return_moves"] = lines

    registry.create_defaults["stock.return.picking"] = fill_lines


def create_returns(self: Records) -> dict[str, Any]:
    """``create_returns`` (16.0/17.0), ``action_create_returns`` (18.0+): the return picking."""
    registry, uid = self.env.registry, self.env.uid
    registry.ensure_exist(self.model, list(self.ids), uid)
    wizard = self.ensure_one()
    picking = registry.value("stock.return.picking", wizard, "picking_id")
    if not picking or registry.value("stock.picking", picking, "state") != "done":
        raise UserError("You may only return Done pickings.")
    lines = [
        line
        for line in registry.value("stock.return.picking", wizard, "product_return_moves")
        if float(registry.value("stock.return.picking.line", line, "quantity") or 0.0) > 0
    ]
    if not lines:
        raise UserError("Please specify at least one non-zero quantity.")
    kind = registry.value("stock.picking", picking, "picking_type_id")
    return_kind = registry.value("stock.picking.type", kind, "return_picking_type_id") or kind
    source = registry.value("stock.picking", picking, "location_dest_id")
    if registry.version.major <= 17:
        destination = registry.value("stock.return.picking", wizard, "location_id")
    else:
        # 18.0+ _prepare_picking_default_values_based_on: a return of the Receipts type goes
        # to that type's destination, any other back where the goods came from.
        incoming = registry.value("stock.picking.type", return_kind, "code") == "incoming"
        destination = (
            registry.value("stock.picking.type", return_kind, "default_location_dest_id")
            if incoming
            else False
        )
    destination = destination or registry.value("stock.picking", picking, "location_id")
    name = registry.value("stock.picking", picking, "name")
    moves = [_return_move(registry, line, source, destination, name) for line in lines]
    values: dict[str, Any] = {
        "picking_type_id": return_kind,
        "origin": f"Return of {name}",
        "partner_id": registry.value("stock.picking", picking, "partner_id"),
        "sale_id": registry.value("stock.picking", picking, "sale_id"),
        "location_id": source,
        "location_dest_id": destination,
        "scheduled_date": registry.now(),
        "state": "draft",
        "move_ids": moves,
    }
    if registry.version.major >= 17:
        values["return_id"] = picking
    [returned] = registry.create("stock.picking", [values], uid)
    # action_confirm + action_assign: goods coming from a customer need no reservation.
    for move in registry.value("stock.picking", returned, "move_ids"):
        ready: dict[str, Any] = {"state": "assigned"}
        if registry.version.major >= 17:
            ready["quantity"] = registry.value("stock.move", move, "product_uom_qty")
        registry.write("stock.move", [move], ready, uid)
    registry.write("stock.picking", [returned], {"state": "assigned"}, uid)
    return {
        "name": "Returned Picking",
        "type": "ir.actions.act_window",
        "view_mode": "form",
        "res_model": "stock.picking",
        "res_id": returned,
        "context": dict(self.env.context),
    }


def _return_move(
    registry: Registry, line: int, source: int, destination: int, picking_name: str
) -> tuple[int, int, dict[str, Any]]:
    product = registry.value("stock.return.picking.line", line, "product_id")
    delivered = registry.value("stock.return.picking.line", line, "move_id")
    values: dict[str, Any] = {
        "name": registry.value("product.product", product, "name"),
        "product_id": product,
        "product_uom_qty": float(registry.value("stock.return.picking.line", line, "quantity")),
        "product_uom": registry.value("product.product", product, "uom_id"),
        "location_id": source,
        "location_dest_id": destination,
        "origin": f"Return of {picking_name}",
        "origin_returned_move_id": delivered,
        "sale_line_id": registry.value("stock.move", delivered, "sale_line_id")
        if delivered
        else False,
        "state": "confirmed",
        "date": registry.now(),
    }
    if registry.version.major <= 17:
        values["to_refund"] = bool(registry.value("stock.return.picking.line", line, "to_refund"))
    return (0, 0, values)


# ----------------------------------------------------------------- stock.scrap
def scrap_validate(self: Records) -> bool | dict[str, Any]:
    """``stock.scrap.action_validate``: a done move to the scrap location, or the
    insufficient-quantity wizard when the source location has less on hand."""
    registry, uid = self.env.registry, self.env.uid
    registry.ensure_exist(self.model, list(self.ids), uid)
    for scrap in self.ids:
        if registry.value("stock.scrap", scrap, "state") == "done":
            continue
        product = registry.value("stock.scrap", scrap, "product_id")
        source = registry.value("stock.scrap", scrap, "location_id")
        quantity = float(registry.value("stock.scrap", scrap, "scrap_qty"))
        if quantity <= 0:
            raise UserError("You can only enter positive quantities.")
        if on_hand(registry, product, source) < quantity:
            shown = registry.display_name("product.product", product)
            return {
                "name": f"Insufficient Quantity: {shown}",
                "type": "ir.actions.act_window",
                "view_mode": "form",
                "res_model": "stock.warn.insufficient.qty.scrap",
                "target": "new",
                "context": {
                    **self.env.context,
                    "default_product_id": product,
                    "default_location_id": source,
                    "default_scrap_id": scrap,
                    "default_quantity": quantity,
                },
            }
        _scrap_move(registry, scrap, product, source, quantity, uid)
    return True


def _scrap_move(
    registry: Registry, scrap: int, product: int, source: int, quantity: float, uid: int
) -> None:
    destination = registry.value("stock.scrap", scrap, "scrap_location_id")
    move = create_done_move(
        registry,
        name=registry.value("stock.scrap", scrap, "name"),
        product=product,
        quantity=quantity,
        source=source,
        destination=destination,
        uid=uid,
        origin=registry.value("stock.scrap", scrap, "origin") or False,
        scrap_id=scrap,
    )
    move_quantity(registry, product, source, -quantity, uid)
    move_quantity(registry, product, destination, quantity, uid)
    done: dict[str, Any] = {"state": "done", "date_done": registry.now()}
    if registry.version.major == 16:
        done["move_id"] = move
    registry.write("stock.scrap", [scrap], done, uid)
