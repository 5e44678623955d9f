"""A run's pages are applied in the order they arrive within an instance: a SKU two products
share is the one's whose page came first, however long that page's read of the run takes.
Real NATS (the workflow bucket with compare-and-set, the commands stream)."""

from __future__ import annotations

import asyncio
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from tests.services.orchestrator.bus import commands
from tests.services.orchestrator.test_product_runs import page, product
from waybill_contracts import SubjectMap, new_context
from waybill_contracts.commands import SyncProducts
from waybill_orchestrator.product_runs import ProductRuns
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.testing.waiting import eventually


class SlowFirstRead:
    """The workflow bucket, with its first read held back a moment (a slow server, a
    garbage-collection pause): what lets a later page overtake an earlier one."""

    def __init__(self, kv: KeyValue, held_s: float) -> None:
        self._kv = kv
        self._held_s = held_s
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)

    async def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        if self.reads == 1:
            await asyncio.sleep(self._held_s)
        return await self._kv.get(key, *args, **kwargs)


async def test_a_shared_sku_is_the_first_pages_product_when_a_later_page_would_overtake_it(
    nc: NatsClient, parts: tuple[SubjectMap, Any]
) -> None:
    subjects, kv = parts
    bucket = SlowFirstRead(kv, held_s=0.3)
    runs = ProductRuns(bucket, Publisher(nc, subjects, service="orchestrator"))  # type: ignore[arg-type]
    first = page(1, [product(1)])
    # WB-0001 again, under another Odoo product, on the page published after it.
    second = page(2, [product(99, sku="WB-0001"), product(4)], last=True)
    await asyncio.gather(
        runs.page_changed(first, new_context(first, source="odoo-gateway")),
        runs.page_changed(second, new_context(second, source="odoo-gateway")),
    )
    record, _ = await runs.read(first.batch_id)
    assert record is not None
    assert record.owners["WB-0001"] == 1
    [refused] = [r.reason for r in record.rejected if r.sku == "WB-0001"]
    assert "also Odoo product 1's" in refused

    async def sent() -> list[SyncProducts]:
        return [
            d.message for d in await commands(nc, subjects) if isinstance(d.message, SyncProducts)
        ]

    pages = await eventually(sent, until=lambda got: len(got) == 2, what="both pages sent")
    assert sorted((p.page, [x.sku for x in p.products]) for p in pages) == [
        (1, ["WB-0001"]),
        (2, ["WB-0004"]),
    ]
