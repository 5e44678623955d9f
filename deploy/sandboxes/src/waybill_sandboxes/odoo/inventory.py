"""Counted quantities: ``stock.quant`` in inventory mode, as Odoo 16-19 apply a count.

The way every version since 15.0 corrects stock (addons/stock/models/stock_quant.py,
read on odoo/odoo master = 19.0; 16.0-18.0 differ where noted):

- ``create`` with ``inventory_quantity`` under the context ``inventory_mode``
  (a user of Inventory / User) does not make a second quant: it finds the one
  for the same product, location, lot, package and owner (``_gather(...,
  strict=True)``) and sets its counted quantity, or creates an empty one and
  sets that. Without ``inventory_mode`` a plain new quant is created.
- ``write`` of ``inventory_quantity`` recomputes ``inventory_quantity_set``
  (True) and ``inventory_diff_quantity`` (counted - quantity, while set); in
  inventory mode the quant's product, location, lot, package and owner may
  not be written ("Quant's editing is restricted").
- ``action_apply_inventory`` answers the ``stock.inventory.conflict`` wizard
  for quants whose quantity moved since the count (``is_outdated``: counted -
  difference != quantity); otherwise ``_apply_inventory`` makes one done
  ``stock.move`` per quant (``is_inventory``, named from the context's
  ``inventory_name``, else "Product Quantity Updated") between the quant's
  location and the product's inventory-loss location, which sets
  ``quantity``, then clears the count. It returns None.
- Quants exist only for storable products: ``type="product"`` up to 17.0,
  ``is_storable`` from 18.0 (``check_product_id``: "Quants cannot be created
  for consumables or services.").
- 16.0-18.0 answer the ``stock.track.confirmation`` wizard for a lot- or
  serial-tracked product counted without a lot where nothing is on hand.
- 16.0-18.0 apply only for a stock manager (Inventory / Administrator: "Only a
  stock manager can validate an inventory adjustment."); 19.0 has no such check.
- 19.0 appends the counting user to the move's name (`` (Mitchell Admin)``).
- The done quantity of the move is ``quantity_done`` in 16.0, ``quantity`` +
  ``picked`` from 17.0 (as on every move).
"""

from __future__ import annotations

from typing import Any

from waybill_sandboxes.odoo import orm
from waybill_sandboxes.odoo.done_moves import create_done_move
from waybill_sandboxes.odoo.env import Records, xmlid_to_record
from waybill_sandboxes.odoo.exceptions import UserError, ValidationError
from waybill_sandboxes.odoo.registry import RecordChange, Registry

__all__ = ["action_apply_inventory", "create_quants", "install_inventory", "write_quants"]

_QUANT = "stock.quant"
# _get_forbidden_fields_write: what inventory mode may not change on a quant.
_FORBIDDEN_IN_INVENTORY_MODE = ("product_id", "location_id", "lot_id", "package_id", "owner_id")
_COUNT_FIELDS = frozenset({"inventory_quantity", "inventory_quantity_set"})
_ROUNDING = 1e-6


def install_inventory(registry: Registry) -> None:
    """Keep the computed count fields of every quant current, as Odoo's computes would."""

    def recompute(change: RecordChange) -> None:
        if change.model != _QUANT or change.record_id not in registry.exists(
            _QUANT, [change.record_id]
        ):
            return
        if change.created:
            _recompute_difference(registry, change.record_id)
        _recompute_outdated(registry, change.record_id)

    registry.listeners.append(recompute)


def _number(registry: Registry, quant: int, name: str) -> float:
    return float(registry.value(_QUANT, quant, name) or 0.0)


def _recompute_difference(registry: Registry, quant: int) -> None:
    """``_compute_inventory_diff_quantity``: depends on the count only, so a quantity that
    moves afterwards leaves the difference as it was (which is what ``is_outdated`` sees)."""
    counted = _number(registry, quant, "inventory_quantity")
    difference = (
        counted - _number(registry, quant, "quantity")
        if registry.value(_QUANT, quant, "inventory_quantity_set")
        else 0.0
    )
    registry.store(_QUANT, quant, {"inventory_diff_quantity": difference})


def _recompute_outdated(registry: Registry, quant: int) -> None:
    counted = _number(registry, quant, "inventory_quantity")
    difference = _number(registry, quant, "inventory_diff_quantity")
    outdated = bool(registry.value(_QUANT, quant, "inventory_quantity_set")) and (
        abs(counted - difference - _number(registry, quant, "quantity")) > _ROUNDING
    )
    registry.store(_QUANT, quant, {"is_outdated": outdated})


def _inventory_mode(self: Records) -> bool:
    """``_is_inventory_mode``: the context flag, for a user of Inventory / User (the
    sandbox's writing users)."""
    return bool(self.env.context.get("inventory_mode")) and self.env.user_can_write


def _check_storable(registry: Registry, product: Any) -> None:
    if not product:
        return
    if registry.version.major >= 18:
        storable = bool(registry.value("product.product", product, "is_storable"))
    else:
        storable = registry.value("product.product", product, "type") == "product"
    if not storable:
        raise ValidationError("Quants cannot be created for consumables or services.")


def _set_count(registry: Registry, quant: int, values: dict[str, Any], uid: int) -> None:
    registry.write(_QUANT, [quant], values, uid)
    if _COUNT_FIELDS & values.keys():
        if "inventory_quantity" in values and "inventory_quantity_set" not in values:
            # _compute_inventory_quantity_set: writing a count marks it set, even when the
            # value written equals the one stored (Odoo marks written fields modified).
            registry.store(_QUANT, quant, {"inventory_quantity_set": True})
        _recompute_difference(registry, quant)
        _recompute_outdated(registry, quant)


def create_quants(self: Records, vals_list: Any) -> int | list[int]:
    """``stock.quant.create``: in inventory mode a count lands on the existing quant."""
    registry = self.env.registry
    single = isinstance(vals_list, dict)
    rows = [vals_list] if single else list(vals_list or [])
    if not single and not isinstance(vals_list, list | tuple):
        return orm.create(self, vals_list)  # Odoo's own error for the shape
    created: list[int] = []
    for vals in rows:
        if not isinstance(vals, dict):
            return orm.create(self, vals_list)
        _check_storable(registry, vals.get("product_id"))
        if not (_inventory_mode(self) and "inventory_quantity" in vals):
            values = {"inventory_quantity_set": False, **vals}
            [quant] = registry.create(_QUANT, [values], uid=self.env.uid)
            created.append(quant)
            continue
        counted = float(vals.get("inventory_quantity") or 0.0)
        keys = {k: vals.get(k) or False for k in ("product_id", "location_id", "lot_id")}
        found = registry.search(_QUANT, [(k, "=", v) for k, v in keys.items()], limit=1)
        if found:
            quant = found[0]
        else:
            [quant] = registry.create(_QUANT, [keys], uid=self.env.uid)
        _set_count(
            registry,
            quant,
            {"inventory_quantity": counted, "user_id": vals.get("user_id", self.env.uid)},
            self.env.uid,
        )
        created.append(quant)
    return created[0] if single else created


def write_quants(self: Records, vals: dict[str, Any]) -> bool:
    """``stock.quant.write``: what inventory mode may change, and the count's computes."""
    registry = self.env.registry
    if not isinstance(vals, dict):
        return orm.write(self, vals)
    if _inventory_mode(self) and any(f in vals for f in _FORBIDDEN_IN_INVENTORY_MODE):
        raise UserError("Quant's editing is restricted, you can't do this operation.")
    registry.ensure_exist(_QUANT, list(self.ids), self.env.uid)
    for quant in self.ids:
        _set_count(registry, quant, vals, self.env.uid)
    return True


def action_apply_inventory(self: Records) -> dict[str, Any] | None:
    """Apply the counted quantities, or answer the conflict wizard for outdated counts."""
    registry = self.env.registry
    registry.ensure_exist(_QUANT, list(self.ids), self.env.uid)
    outdated = [q for q in self.ids if registry.value(_QUANT, q, "is_outdated")]
    if outdated:
        return {
            "name": "Conflict in Inventory Adjustment",
            "type": "ir.actions.act_window",
            "view_mode": "form",
            "views": [[False, "form"]],
            "res_model": "stock.inventory.conflict",
            "target": "new",
            "context": {
                **self.env.context,
                "default_quant_ids": list(self.ids),
                "default_quant_to_fix_ids": outdated,
            },
        }
    untracked = [
        q
        for q in self.ids
        if registry.version.major <= 18
        and registry.value("product.product", registry.value(_QUANT, q, "product_id"), "tracking")
        in ("lot", "serial")
        and not registry.value(_QUANT, q, "lot_id")
        and _number(registry, q, "inventory_quantity") != _number(registry, q, "quantity")
        and not _number(registry, q, "quantity")
    ]
    if untracked:
        # 16.0-18.0: a lot- or serial-tracked product counted without a lot asks first.
        return {
            "name": "Tracked Products in Inventory Adjustment",
            "type": "ir.actions.act_window",
            "view_mode": "form",
            "views": [[False, "form"]],
            "res_model": "stock.track.confirmation",
            "target": "new",
            "context": {**self.env.context, "default_quant_ids": list(self.ids)},
        }
    if registry.version.major <= 18 and not self.env.user_is_admin:
        # _apply_inventory 16.0-18.0 (user_has_groups / has_group of stock.group_stock_manager);
        # 19.0 dropped the check.
        raise UserError("Only a stock manager can validate an inventory adjustment.")
    _model, loss = xmlid_to_record(registry, "stock.location_inventory")
    for quant in self.ids:
        # _apply_inventory (19.0) first takes the count as set.
        registry.store(_QUANT, quant, {"inventory_quantity_set": True})
        _recompute_difference(registry, quant)
        difference = _number(registry, quant, "inventory_diff_quantity")
        if abs(difference) > _ROUNDING:
            _inventory_move(self, quant, difference, loss)
        # action_clear_inventory_quantity
        _set_count(
            registry,
            quant,
            {"inventory_quantity": 0.0, "inventory_quantity_set": False, "user_id": False},
            self.env.uid,
        )
    return None


def _inventory_move(self: Records, quant: int, difference: float, loss: int) -> int:
    """``_get_inventory_move_values`` + ``_action_done``: one done move through the
    inventory-loss location, which moves the quant's quantity by ``difference``."""
    registry, uid = self.env.registry, self.env.uid
    location = registry.value(_QUANT, quant, "location_id")
    product = registry.value(_QUANT, quant, "product_id")
    name = self.env.context.get("inventory_name") or "Product Quantity Updated"
    counter = registry.value(_QUANT, quant, "user_id")
    if registry.version.major >= 19 and counter:
        name = f"{name} ({registry.display_name('res.users', counter)})"
    quantity = abs(difference)
    source, dest = (loss, location) if difference > 0 else (location, loss)
    move = create_done_move(
        registry,
        name=name,
        product=product,
        quantity=quantity,
        source=source,
        destination=dest,
        uid=uid,
        is_inventory=True,
    )
    registry.write(
        _QUANT,
        [quant],
        {"quantity": _number(registry, quant, "quantity") + difference},
        uid,
    )
    return move
