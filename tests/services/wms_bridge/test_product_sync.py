"""SyncProducts: a page of the product master uploaded into the WMS catalogue, each product once."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NatsClient

from tests.services.wms_bridge.harness import wms_and_bridge
from waybill_contracts.commands import SyncProducts
from waybill_contracts.events import ProductsSynced
from waybill_contracts.model import Product
from waybill_runtime.outcomes import PermanentError
from waybill_wms_bridge.products import judged_upload, wms_product
from waybill_wms_bridge.wms_wire import WmsProductResult, WmsProductResults

BATCH = "products-2026-12-06T02:00Z"


def product(number: int, **overrides: object) -> Product:
    fields: dict[str, object] = {
        "sku": f"WB-{number:04d}",
        "name": f"Crate {number}",
        "uom": "Units",
        "weight_kg": 1.5,
        "odoo_product_id": number,
    }
    fields.update(overrides)
    return Product(**fields)  # type: ignore[arg-type]


def page(products: list[Product], number: int = 1, *, last: bool = True) -> SyncProducts:
    return SyncProducts(batch_id=BATCH, page=number, last_page=last, products=tuple(products))


async def test_a_page_is_uploaded_in_calls_the_wms_takes_and_its_refusals_are_reported(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    products = [product(n) for n in range(1, 251)]
    products[10] = product(11, uom="Dozens")  # an Odoo unit with no WMS code: never sent
    products[200] = product(201, barcode="4006381333932")  # the WMS refuses the check digit
    products[220] = product(221, uom="Pallets")  # mapped to a code this WMS does not know
    units = {"Units": "EA", "Pallets": "PALLET"}
    async with wms_and_bridge(
        nc, nats_url, nats_prefix, wms_products_per_call=100, wms_unit_codes=units
    ) as rig:
        await rig.send(page(products))
        [synced] = await rig.wait_for(ProductsSynced, BATCH)
        await rig.commands_settled()
        assert await rig.dead_letters() == []
    assert (synced.batch_id, synced.page, synced.accepted) == (BATCH, 1, 247)
    refused = {r.sku: r.reason for r in synced.rejected}
    assert set(refused) == {"WB-0011", "WB-0201", "WB-0221"}
    assert "'Dozens' has no WMS code" in refused["WB-0011"]
    assert "check digit" in refused["WB-0201"]
    assert "unit of measure 'PALLET' is unknown" in refused["WB-0221"]
    catalogue = rig.wms.catalogue
    assert rig.wms.calls()["upsert_products"] == 3  # 100 + 100 + 49
    assert len(catalogue.products) == 247
    assert catalogue.products["WB-0002"].description == "Crate 2"
    assert catalogue.products["WB-0002"].uom == "EA"  # Odoo's "Units" in the WMS's code
    assert "WB-0011" not in catalogue.received
    assert set(catalogue.received.values()) == {1}  # no product sent twice


async def test_a_page_sent_again_uploads_nothing_and_is_announced_once(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    products = [product(n) for n in range(1, 21)]
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        await rig.send(page(products))
        await rig.wait_for(ProductsSynced, BATCH)
        await rig.send(page(products))  # the same page, another message: a redelivery's twin
        await rig.commands_settled()
        synced = await rig.events(ProductsSynced, BATCH)
    assert rig.wms.calls()["upsert_products"] == 1
    assert set(rig.wms.catalogue.received.values()) == {1}
    assert len(synced) == 1 and synced[0].accepted == 20


async def test_a_page_that_failed_mid_way_resends_only_the_uploads_that_never_completed(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    products = [product(n) for n in range(1, 31)]
    async with wms_and_bridge(
        nc, nats_url, nats_prefix, wms_products_per_call=10, wms_retry_attempts=1
    ) as rig:
        # The WMS takes the first upload, then fails the next two attempts.
        rig.wms.faults.set("upsert_products", error_rate=1.0, times=2, after_calls=1)
        await rig.send(page(products))
        [synced] = await rig.wait_for(ProductsSynced, BATCH)
        await rig.commands_settled()
        assert await rig.dead_letters() == []
    assert synced.accepted == 30
    # Three uploads taken, two failed attempts in between; no product reached the WMS twice.
    assert rig.wms.calls()["upsert_products"] == 5
    assert set(rig.wms.catalogue.received.values()) == {1}
    assert len(rig.wms.catalogue.received) == 30


async def test_a_page_larger_than_the_wms_takes_in_one_call_is_a_dead_letter_with_its_reason(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    # Misconfigured: the bridge sends more per call than this WMS accepts (413).
    async with wms_and_bridge(nc, nats_url, nats_prefix, wms_products_per_call=200) as rig:
        await rig.send(page([product(n) for n in range(1, 151)]))
        await rig.commands_settled()
        letters = await rig.dead_letters()
        synced = await rig.events(ProductsSynced)
    assert synced == []
    assert len(letters) == 1
    assert letters[0].reason == "permanent error" and letters[0].attempts == 1
    assert "HTTP 413" in letters[0].error_message and "at most 100" in letters[0].error_message


def test_an_answer_without_one_result_per_product_is_refused_for_good() -> None:
    sent = [wms_product(product(1), "EA"), wms_product(product(2), "EA")]
    answer = WmsProductResults(results=[WmsProductResult(sku="WB-0001", status="created")])
    with pytest.raises(PermanentError, match="2 products with 1 results"):
        judged_upload(sent, answer)
