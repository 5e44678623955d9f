"""Product master sync runs in the orchestrator: each page checked, the fit products sent to
the warehouse once, the warehouse's answers counted, the run closed with every refusal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from tests.services.orchestrator.bus import commands, events, publish
from waybill_contracts import SubjectMap, new_context
from waybill_contracts.commands import SyncProducts
from waybill_contracts.events import ProductsChanged, ProductsSynced, ProductSyncCompleted
from waybill_contracts.model import Product, ProductRejection, UnmappedProduct
from waybill_orchestrator.app import build_service
from waybill_orchestrator.product_rules import gtin_is_valid
from waybill_orchestrator.product_runs import RUN_PREFIX, ProductRunRecord, ProductRuns
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.idempotency import kv_key
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import settled
from waybill_runtime.testing.waiting import eventually

BATCH = "products-2026-12-06T02:00:00Z-1a2b3c4d"


def product(number: int, **overrides: object) -> Product:
    fields: dict[str, object] = {
        "sku": f"WB-{number:04d}",
        "name": f"Crate {number}",
        "uom": "Units",
        "weight_kg": 1.5,
        "volume_m3": 0.02,
        "barcode": "4006381333931",
        "odoo_product_id": number,
    }
    fields.update(overrides)
    return Product(**fields)  # type: ignore[arg-type]


def page(
    number: int, products: list[Product], *, last: bool = False, **extra: object
) -> ProductsChanged:
    return ProductsChanged(
        batch_id=BATCH,
        page=number,
        last_page=last,
        products=tuple(products),
        **extra,  # type: ignore[arg-type]
    )


def synced(number: int, accepted: int, *rejected: ProductRejection) -> ProductsSynced:
    from datetime import UTC, datetime

    return ProductsSynced(
        batch_id=BATCH,
        page=number,
        accepted=accepted,
        rejected=rejected,
        synced_at=datetime.now(UTC),
    )


@pytest.fixture
async def subjects(nats_url: str, nats_prefix: str) -> AsyncIterator[SubjectMap]:
    async with running_service(
        build_service(), nats_url=nats_url, subject_prefix=nats_prefix, retry_backoff_s=(0.1,)
    ):
        yield SubjectMap(nats_prefix)


async def sent_pages(nc: NatsClient, subjects: SubjectMap, count: int) -> list[SyncProducts]:
    async def found() -> list[SyncProducts]:
        return [
            d.message for d in await commands(nc, subjects) if isinstance(d.message, SyncProducts)
        ]

    return await eventually(found, until=lambda got: len(got) >= count, what=f"{count} pages sent")


async def run_record(nc: NatsClient, subjects: SubjectMap) -> ProductRunRecord:
    """The run as the orchestrator keeps it (what a completion sent twice would hide)."""
    kv = await nc.jetstream().key_value(subjects.kv_bucket("workflow"))
    entry = await kv.get(RUN_PREFIX + kv_key(BATCH))
    return msgspec.json.decode(entry.value or b"", type=ProductRunRecord)


async def completions(nc: NatsClient, subjects: SubjectMap) -> list[ProductSyncCompleted]:
    return [
        d.message for d in await events(nc, subjects) if isinstance(d.message, ProductSyncCompleted)
    ]


async def test_only_fit_products_go_to_the_warehouse_and_the_run_closes_with_every_refusal(
    nc: NatsClient, subjects: SubjectMap, nats_prefix: str
) -> None:
    first = [product(1), product(2, barcode="4006381333932"), product(3, weight_kg=None)]
    # WB-0001 again under another Odoo product: the SKU is the first product's.
    second = [product(4), product(99, sku="WB-0001"), product(5, active=False, weight_kg=None)]
    unmapped = UnmappedProduct(
        odoo_product_id=77, name="Loose screws", reason="no internal reference"
    )
    await publish(nc, subjects, page(1, first), source="odoo-gateway")
    await publish(
        nc, subjects, page(2, second, last=True, unmapped=(unmapped,)), source="odoo-gateway"
    )
    sent = sorted(await sent_pages(nc, subjects, 2), key=lambda p: p.page)
    assert [[p.sku for p in s.products] for s in sent] == [["WB-0001"], ["WB-0004", "WB-0005"]]
    assert [(s.page, s.last_page) for s in sent] == [(1, False), (2, True)]
    assert await completions(nc, subjects) == []  # the warehouse has not answered yet

    refused_by_wms = ProductRejection(sku="WB-0005", reason="unit of measure unknown")
    await publish(nc, subjects, synced(2, 1, refused_by_wms), source="wms-bridge")
    await publish(nc, subjects, synced(1, 1), source="wms-bridge")
    [done] = await eventually(lambda: completions(nc, subjects), what="the run's completion")
    assert (done.batch_id, done.pages, done.products, done.accepted) == (BATCH, 2, 7, 2)
    reasons = {r.sku: r.reason for r in done.rejected}
    assert set(reasons) == {"WB-0002", "WB-0003", "WB-0001", "WB-0005"}
    assert "check digit" in reasons["WB-0002"] and "no weight" in reasons["WB-0003"]
    assert "also Odoo product 1's" in reasons["WB-0001"]
    assert reasons["WB-0005"] == "unit of measure unknown"
    assert done.unmapped == (unmapped,)


async def test_pages_and_answers_seen_twice_send_once_and_count_once(
    nc: NatsClient, subjects: SubjectMap, nats_prefix: str
) -> None:
    for _ in range(2):
        await publish(
            nc, subjects, page(1, [product(1), product(2)], last=True), source="odoo-gateway"
        )
    await sent_pages(nc, subjects, 1)
    for _ in range(2):
        await publish(nc, subjects, synced(1, 2), source="wms-bridge")
    await eventually(lambda: completions(nc, subjects), what="the run's completion")
    await settled(nc, subjects, "orchestrator", "events")
    sent = [d.message for d in await commands(nc, subjects) if isinstance(d.message, SyncProducts)]
    [done] = await completions(nc, subjects)
    assert len(sent) == 1  # the second page's copy was sent under the same id: kept once
    assert (done.products, done.accepted) == (2, 2)
    record = await run_record(nc, subjects)
    assert (record.checked, record.answered, record.products, record.accepted) == ((1,), (1,), 2, 2)


async def test_a_page_with_nothing_fit_to_send_is_answered_at_once(
    nc: NatsClient, subjects: SubjectMap, nats_prefix: str
) -> None:
    await publish(
        nc, subjects, page(1, [product(1, volume_m3=None)], last=True), source="odoo-gateway"
    )
    [done] = await eventually(lambda: completions(nc, subjects), what="the run's completion")
    assert done.accepted == 0 and [r.sku for r in done.rejected] == ["WB-0001"]
    assert [d for d in await commands(nc, subjects) if isinstance(d.message, SyncProducts)] == []


@pytest.mark.parametrize(
    ("barcode", "valid"),
    [
        ("4006381333931", True),
        ("96385074", True),
        ("036000291452", True),
        ("4006381333930", False),
        ("40063813339", False),
        ("ABCDEFGH", False),
    ],
)
def test_gtin_check_digits(barcode: str, valid: bool) -> None:
    assert gtin_is_valid(barcode) is valid


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
