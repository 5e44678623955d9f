"""A product sync an operator starts (``StartProductSync``, ``waybill sync products``): it
runs whatever the schedule (off here), once per action however often it is delivered."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from tests.services.odoo_gateway.stage import (
    OdooStage,
    odoo_stage,
    published,
    send_command,
    wait_for_commands_done,
)
from waybill_contracts.events import ProductsChanged
from waybill_contracts.operations import StartProductSync
from waybill_runtime.testing.authenticated import cli_environment
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.odoo.methods import call_kw

# No schedule: every run here is an operator's.
NO_SCHEDULE = {"product_sync_interval_s": 0.0, "product_sync_overlap_s": 0.0}


@pytest.fixture
async def catalogue() -> AsyncIterator[OdooStage]:
    async with odoo_stage(version=17, protocol="jsonrpc", products=12) as running:
        yield running


async def pages(nc: NatsClient, prefix: str, count: int) -> list[ProductsChanged]:
    return await eventually(
        lambda: published(nc, prefix, ProductsChanged),
        until=lambda got: len(got) >= count,
        timeout_s=60,
        what=f"{count} product pages",
    )


def odoo(stage: OdooStage, model: str, method: str, *args: Any) -> Any:
    sandbox = stage.sandbox
    return call_kw(sandbox.registry, sandbox.admin, model, method, [*args], {})


async def test_an_operator_syncs_products_from_the_command_line(
    nc: NatsClient, nats_url: str, nats_prefix: str, catalogue: OdooStage
) -> None:
    async with catalogue.gateway(nats_url, nats_prefix, product_sync_page_size=5, **NO_SCHEDULE):
        env = {**os.environ, **cli_environment(nats_url, nats_prefix)}
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "waybill_runtime", "sync", "products", "--operator", "dana"],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        found = await pages(nc, nats_prefix, 3)
    assert "product sync requested (by dana" in done.stdout
    assert [(p.page, p.last_page) for p in found] == [(1, False), (2, False), (3, True)]
    assert len({p.batch_id for p in found}) == 1
    skus = sorted(product.sku for page in found for product in page.products)
    assert skus == [f"WB-{n:04d}" for n in range(1, 13)]


async def test_an_action_delivered_twice_runs_once_and_the_next_action_reads_what_changed(
    nc: NatsClient, nats_url: str, nats_prefix: str, catalogue: OdooStage
) -> None:
    first = StartProductSync(action_id="act-1", operator="dana")
    async with catalogue.gateway(nats_url, nats_prefix, product_sync_page_size=5, **NO_SCHEDULE):
        await send_command(nc, nats_prefix, first)
        await pages(nc, nats_prefix, 3)
        # The same action again (a redelivery, a double click's retry): no second run.
        await send_command(nc, nats_prefix, first)
        await wait_for_commands_done(nc, nats_prefix)
        assert len(await published(nc, nats_prefix, ProductsChanged)) == 3
        await asyncio.sleep(1.1)  # Odoo stamps write_date to the second
        [product] = odoo(catalogue, "product.product", "search", [("default_code", "=", "WB-0005")])
        odoo(catalogue, "product.product", "write", [product], {"weight": 4.0})
        await send_command(
            nc, nats_prefix, StartProductSync(action_id="act-2", operator="sam", note="new range")
        )
        found = await pages(nc, nats_prefix, 4)
    assert len({p.batch_id for p in found[:3]}) == 1
    latest = found[3]
    assert latest.batch_id != found[0].batch_id and latest.last_page
    assert [(p.sku, p.weight_kg) for p in latest.products] == [("WB-0005", 4.0)]
