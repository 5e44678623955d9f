"""Inventory snapshots of Odoo: on-hand quantities per product and location, published.

``SnapshotOdooInventory`` (sent by the orchestrator's reconciliation run) reads
``stock.quant`` at Odoo's internal locations (``location_id.usage = internal``:
not customers, vendors, transit or the inventory-loss location), in pages of
``WAYBILL_INVENTORY_SNAPSHOT_PAGE_SIZE`` quants by id (keyset: a quant created
meanwhile cannot shift a page), and publishes each page as
``InventorySnapshotTaken`` (system ``odoo``), page numbers from 1, ``last_page``
on the final one (one empty last page when Odoo has no stock at all).

**The shared vocabulary.** A level names the product by its internal
reference (``default_code``, the SKU the warehouse knows) and the location
by the *warehouse's* code, so the orchestrator compares like with like:
``WAYBILL_ODOO_INVENTORY_LOCATIONS`` maps warehouse codes to Odoo locations
(barcode or full name) for the adjustments; read backwards, an Odoo location
that a warehouse code is mapped to is reported under that code. A location
no code is mapped to is reported under its barcode, else its full name
(``WH/Stock``), which is also how an adjustment finds an unmapped code.
Quantities are in the product's unit of measure; ``quantity`` counts reserved
goods too, as Odoo's on hand does.

A product with no internal reference cannot be compared with anything: its
quants are left out of the snapshot and counted in one log line per snapshot.
A SKU may appear more than once for one location (quants per lot or package,
on different pages): the orchestrator adds them up. An Odoo failure mid-way
fails the command, which is delivered again: the snapshot is read again from
the first quant, each page published under the same fact id (snapshot and
page), so JetStream's duplicate window, and the orchestrator's one copy per
page number, keep one of each.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from waybill_contracts import fact_id
from waybill_contracts.commands import SnapshotOdooInventory
from waybill_contracts.events import InventorySnapshotTaken
from waybill_contracts.model import InventorySystem, Quantity, StockLevel
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_values import many2one_id, many2one_name, text
from waybill_runtime.bus.consumer import HandlerContext

__all__ = ["location_codes", "snapshot_inventory"]

log = logging.getLogger("waybill.odoo.inventory")

_DEFAULT_UNIT = "Units"
_ROUNDING = Decimal("0.000001")


def location_codes(rows: list[dict[str, Any]], mapped: Mapping[str, str]) -> dict[int, str]:
    """Odoo location id -> the warehouse's code for it (see the module's docstring)."""
    by_odoo_name = {odoo_name: code for code, odoo_name in mapped.items()}
    codes: dict[int, str] = {}
    for row in rows:
        barcode, full_name = text(row.get("barcode")), text(row.get("complete_name"))
        code = by_odoo_name.get(barcode or "") or by_odoo_name.get(full_name or "")
        codes[int(row["id"])] = code or barcode or full_name or f"odoo-location-{row['id']}"
    return codes


def _units(value: Any, uom: str) -> Quantity:
    number = Decimal(repr(float(value or 0.0))).quantize(_ROUNDING).normalize()
    if number == number.to_integral_value():
        number = number.quantize(Decimal(1))
    return Quantity(value=number, uom=uom)


async def _page_levels(
    odoo: OdooClient, quants: list[dict[str, Any]], mapped: Mapping[str, str]
) -> tuple[list[StockLevel], int]:
    """The page's quants as stock levels, and how many were left out (no SKU)."""
    product_ids = sorted({pid for q in quants if (pid := many2one_id(q.get("product_id")))})
    location_ids = sorted({lid for q in quants if (lid := many2one_id(q.get("location_id")))})
    products = (
        await odoo.call("product.product", "read", product_ids, fields=["default_code", "uom_id"])
        if product_ids
        else []
    )
    locations = (
        await odoo.call("stock.location", "read", location_ids, fields=["barcode", "complete_name"])
        if location_ids
        else []
    )
    skus = {int(p["id"]): text(p.get("default_code")) for p in products}
    units = {int(p["id"]): many2one_name(p.get("uom_id")) or _DEFAULT_UNIT for p in products}
    codes = location_codes(locations, mapped)
    levels: list[StockLevel] = []
    left_out = 0
    for quant in quants:
        product, location = (
            many2one_id(quant.get("product_id")),
            many2one_id(quant.get("location_id")),
        )
        sku = skus.get(product) if product is not None else None
        if sku is None or location is None:
            left_out += 1
            continue
        levels.append(
            StockLevel(
                sku=sku,
                location=codes[location],
                on_hand=_units(quant.get("quantity"), units[product or 0]),
            )
        )
    return levels, left_out


async def snapshot_inventory(
    odoo: OdooClient,
    command: SnapshotOdooInventory,
    ctx: HandlerContext[OdooGatewaySettings],
) -> int:
    """Read and publish every page of Odoo's snapshot; returns how many pages."""
    settings = ctx.settings
    size = settings.inventory_snapshot_page_size
    after_id = 0
    page = 0
    left_out = 0
    while True:
        rows = await odoo.call(
            "stock.quant",
            "search_read",
            domain=[("location_id.usage", "=", "internal"), ("id", ">", after_id)],
            fields=["product_id", "location_id", "quantity"],
            order="id asc",
            limit=size + 1,  # one more than a page: whether another page follows
        )
        quants, last = rows[:size], len(rows) <= size
        levels, skipped = await _page_levels(odoo, quants, settings.odoo_inventory_locations)
        left_out += skipped
        page += 1
        await ctx.publish(
            InventorySnapshotTaken(
                snapshot_id=command.snapshot_id,
                system=InventorySystem.ODOO,
                warehouse=command.warehouse,
                page=page,
                last_page=last,
                levels=tuple(levels),
                taken_at=datetime.now(UTC),
            ),
            fact_id=fact_id("odoo", "inventory_snapshot", command.snapshot_id, page),
        )
        if last:
            break
        after_id = int(quants[-1]["id"])
    if left_out:
        log.warning(
            "inventory snapshot %s: %d quants of products without an internal reference left "
            "out (nothing to compare them with)",
            command.snapshot_id,
            left_out,
        )
    log.info("inventory snapshot %s: %d pages published", command.snapshot_id, page)
    return page
