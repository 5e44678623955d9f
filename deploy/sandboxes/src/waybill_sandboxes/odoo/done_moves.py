"""Done stock moves made outside a picking (applied counts, scraps) and the quants they move.

What ``stock.move._action_done`` leaves behind, in short: a move in state
``done`` whose done quantity is the whole demand (``quantity_done`` in 16.0,
``quantity`` + ``picked`` from 17.0), and the quants of both locations moved
by it (``stock.quant._update_available_quantity``).
"""

from __future__ import annotations

from typing import Any

from waybill_sandboxes.odoo.registry import Registry

__all__ = ["create_done_move", "move_quantity", "on_hand"]


def create_done_move(
    registry: Registry,
    *,
    name: str,
    product: int,
    quantity: float,
    source: int,
    destination: int,
    uid: int,
    **extra: Any,
) -> int:
    """A done move of ``quantity`` from ``source`` to ``destination`` (``extra``: more of its
    fields, such as ``is_inventory`` or ``scrap_id``); the quants are the caller's."""
    values: dict[str, Any] = {
        "name": name,
        "product_id": product,
        "product_uom_qty": quantity,
        "product_uom": registry.value("product.product", product, "uom_id"),
        "location_id": source,
        "location_dest_id": destination,
        "state": "done",
        "date": registry.now(),
        registry.version.move_done_field: quantity,
        **extra,
    }
    if registry.version.major >= 17:
        values["picked"] = True
    [move] = registry.create("stock.move", [values], uid)
    return move


def _quants(registry: Registry, product: int, location: int) -> list[int]:
    return registry.search(
        "stock.quant",
        [("product_id", "=", product), ("location_id", "=", location), ("lot_id", "=", False)],
    )


def on_hand(registry: Registry, product: int, location: int) -> float:
    """Unreserved quantity of ``product`` at ``location`` (no lot)."""
    return sum(
        float(registry.value("stock.quant", q, "quantity"))
        - float(registry.value("stock.quant", q, "reserved_quantity"))
        for q in _quants(registry, product, location)
    )


def move_quantity(
    registry: Registry, product: int, location: int, quantity: float, uid: int
) -> None:
    """``_update_available_quantity``: add ``quantity`` (negative: take) to the quant of the
    product at the location, creating it when there is none."""
    found = _quants(registry, product, location)
    if found:
        current = float(registry.value("stock.quant", found[0], "quantity"))
        registry.write("stock.quant", [found[0]], {"quantity": current + quantity}, uid)
        return
    registry.create(
        "stock.quant",
        [{"product_id": product, "location_id": location, "quantity": quantity}],
        uid,
    )
