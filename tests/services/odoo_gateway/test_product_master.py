"""The product master from Odoo in batches: pages of what was written since the last run,
resumed after a crash without a page twice, products that cannot be synced named."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from nats.aio.client import Client as NatsClient

from tests.services.odoo_gateway.stage import OdooStage, odoo_stage, published
from waybill_contracts.events import ProductsChanged
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.odoo.methods import call_kw

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A run at start, the next not due for an hour.
SYNC_NOW = {"product_sync_interval_s": 3600.0, "odoo_poll_first_after_s": 0.0}


def odoo(stage: OdooStage, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
    sandbox = stage.sandbox
    return call_kw(sandbox.registry, sandbox.admin, model, method, [*args], kwargs)


async def pages(nc: NatsClient, prefix: str, count: int) -> list[ProductsChanged]:
    async def found() -> list[ProductsChanged]:
        return await published(nc, prefix, ProductsChanged)

    return await eventually(
        found, until=lambda got: len(got) >= count, timeout_s=60, what=f"{count} product pages"
    )


@pytest.fixture(params=[17, 18], ids=["odoo17", "odoo18"])
async def catalogue(request: pytest.FixtureRequest) -> AsyncIterator[OdooStage]:
    async with odoo_stage(version=request.param, protocol="jsonrpc", products=12) as running:
        yield running


async def test_a_run_pages_the_whole_catalogue_and_names_what_cannot_be_synced(
    nc: NatsClient, nats_url: str, nats_prefix: str, catalogue: OdooStage
) -> None:
    # An archived product is a change too; one without an internal reference cannot be synced.
    odoo(catalogue, "product.product", "create", {"name": "Loose screws"})
    [archived] = odoo(catalogue, "product.product", "search", [("default_code", "=", "WB-0003")])
    odoo(catalogue, "product.product", "write", [archived], {"active": False})
    async with catalogue.gateway(nats_url, nats_prefix, product_sync_page_size=5, **SYNC_NOW):
        found = await pages(nc, nats_prefix, 3)
    assert [(p.page, p.last_page) for p in found] == [(1, False), (2, False), (3, True)]
    assert len({p.batch_id for p in found}) == 1
    products = [product for page in found for product in page.products]
    skus = [p.sku for p in products]
    assert sorted(skus) == [f"WB-{n:04d}" for n in range(1, 13)]
    assert len(set(skus)) == 12  # none twice
    by_sku = {p.sku: p for p in products}
    assert by_sku["WB-0003"].active is False
    assert by_sku["WB-0001"].uom == "Units" and by_sku["WB-0001"].odoo_product_id
    [unmapped] = [u for page in found for u in page.unmapped]
    assert unmapped.name == "Loose screws" and "no internal reference" in unmapped.reason


async def test_the_next_run_reads_only_what_was_written_since(
    nc: NatsClient, nats_url: str, nats_prefix: str, catalogue: OdooStage
) -> None:
    # Due every 2 s: the second gateway runs once the first run is that old.
    settings = {"product_sync_interval_s": 2.0, "product_sync_overlap_s": 0.0}
    async with catalogue.gateway(nats_url, nats_prefix, **settings):
        [first] = await pages(nc, nats_prefix, 1)
    await asyncio.sleep(1.1)  # Odoo stamps write_date to the second
    [product] = odoo(catalogue, "product.product", "search", [("default_code", "=", "WB-0007")])
    odoo(catalogue, "product.product", "write", [product], {"weight": 2.5})
    async with catalogue.gateway(nats_url, nats_prefix, **settings):
        found = await pages(nc, nats_prefix, 2)
    second = found[1]
    assert second.batch_id != first.batch_id and second.changed_since is not None
    assert [p.sku for p in second.products] == ["WB-0007"]
    assert second.products[0].weight_kg == 2.5


async def test_a_gateway_killed_mid_run_is_resumed_by_the_next_without_a_page_twice(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    reads = 0
    stuck = asyncio.Event()

    @web.middleware
    async def hang_on_the_second_page(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal reads
        body = await request.read()
        if b"product.product" in body and b"search_read" in body:
            reads += 1
            if reads == 2:
                stuck.set()
                await asyncio.Event().wait()  # the gateway dies while Odoo is answering
        return await handler(request)

    async with odoo_stage(
        version=17, protocol="jsonrpc", products=12, middlewares=(hang_on_the_second_page,)
    ) as stage:
        async with stage.gateway(nats_url, nats_prefix, product_sync_page_size=5, **SYNC_NOW):
            await asyncio.wait_for(stuck.wait(), timeout=60)
        # The first gateway is gone after publishing page 1; a new one carries the run on.
        async with stage.gateway(nats_url, nats_prefix, product_sync_page_size=5, **SYNC_NOW):
            found = await pages(nc, nats_prefix, 3)
    assert [(p.page, p.last_page) for p in found] == [(1, False), (2, False), (3, True)]
    assert len({p.batch_id for p in found}) == 1
    skus = [product.sku for page in found for product in page.products]
    assert sorted(skus) == [f"WB-{n:04d}" for n in range(1, 13)]
