"""Odoo's inventory snapshot: on hand per SKU and the warehouse's location code, from the
quants at internal locations, in pages, on Odoo 16, 17, 18 and 19; a product without an
internal reference is left out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient

from tests.services.odoo_gateway.stage import (
    OdooStage,
    odoo_stage,
    published,
    send_command,
    wait_for_commands_done,
)
from waybill_contracts import SubjectMap
from waybill_contracts.commands import SnapshotOdooInventory
from waybill_contracts.events import InventorySnapshotTaken
from waybill_contracts.model import InventorySystem
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.waiting import eventually

PRODUCTS = 5


@pytest.fixture(
    params=[(16, "jsonrpc"), (17, "jsonrpc"), (18, "jsonrpc"), (19, "json2")],
    ids=["odoo16", "odoo17", "odoo18", "odoo19-json2"],
)
async def any_odoo(request: pytest.FixtureRequest) -> AsyncIterator[OdooStage]:
    version, protocol = request.param
    async with odoo_stage(version=version, protocol=protocol, products=PRODUCTS) as running:
        yield running


async def test_odoos_on_hand_is_published_in_pages_under_the_warehouses_location_codes(
    any_odoo: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = any_odoo
    registry = stage.sandbox.registry
    # A second shelf with no mapping (reported under its barcode), and a product Odoo keeps
    # stock of with no internal reference (left out).
    [shelf] = registry.create(
        "stock.location",
        [{"name": "Shelf 9", "complete_name": "WH/Stock/Shelf 9", "barcode": "SHELF-9",
          "usage": "internal"}],
        uid=2,
    )  # fmt: skip
    [wb1] = registry.search("product.product", [("default_code", "=", "WB-0001")])
    registry.create(
        "stock.quant", [{"product_id": wb1, "location_id": shelf, "quantity": 7.0}], uid=2
    )
    [nameless] = registry.search("product.product", [("default_code", "=", "WB-0005")])
    registry.write("product.product", [nameless], {"default_code": False}, uid=2)
    mapping = {"PICK-01": "WH-STOCK"}
    command = SnapshotOdooInventory(snapshot_id="rec-1-odoo")
    async with stage.gateway(
        nats_url, nats_prefix, odoo_inventory_locations=mapping, inventory_snapshot_page_size=2
    ):
        await send_command(nc, nats_prefix, command)
        pages = await eventually(
            lambda: published(nc, prefix=nats_prefix, message_type=InventorySnapshotTaken),
            until=lambda found: any(p.last_page for p in found),
            what="the snapshot's last page",
        )
        await wait_for_commands_done(nc, nats_prefix)
        letters = await dead_letters(nc, SubjectMap(nats_prefix))
    assert letters == []
    assert [p.page for p in pages] == list(range(1, len(pages) + 1))
    assert [p.last_page for p in pages] == [False] * (len(pages) - 1) + [True]
    assert {p.system for p in pages} == {InventorySystem.ODOO}
    assert all(len(p.levels) <= 2 for p in pages)
    levels = {(lv.sku, lv.location): lv.on_hand for p in pages for lv in p.levels}
    expected = {
        (f"WB-{n:04d}", "PICK-01"): stage.sandbox.on_hand(f"WB-{n:04d}") for n in range(1, 5)
    }
    assert {shelf_key: float(q.value) for shelf_key, q in levels.items()} == {
        **expected,
        ("WB-0001", "SHELF-9"): 7.0,
    }
    assert {q.uom for q in levels.values()} == {"Units"}
