"""The product master, read from Odoo in batches: every product written since the last run.

A run reads ``product.product`` (archived ones too: an archive is a change
the warehouse must hear of) written after the product watermark, in keyset
pages (:mod:`~waybill_odoo_gateway.changed_since`), and publishes each page as
``ProductsChanged``. A product that cannot be described as a ``Product`` (no
internal reference, a value the contract refuses) is named in the page's
``unmapped`` with the reason, never dropped silently.

**A run survives a crash.** Its batch id, bounds, the next page's number and
the cursor after the last published page are kept in the watermarks bucket
and moved on after each page is published. A gateway that dies mid-run
resumes the same batch at the next page on its next round, so no page is
published twice under two numbers; a page published just before a crash (its
cursor not yet stored) is published again under the same fact id, which
JetStream's duplicate window drops. Each run reads only what was written up to
its start (``until``), so it ends; what is written meanwhile is the next
run's.

**Out-of-order commits.** ``write_date`` is when Odoo's transaction started,
so a product can commit after the watermark passed its timestamp; each run
reaches ``WAYBILL_PRODUCT_SYNC_OVERLAP_S`` behind the watermark. Products in
that overlap are sent again; the warehouse's upsert takes a product sent
again as unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_contracts import fact_id
from waybill_contracts.events import ProductsChanged
from waybill_contracts.model import Product, UnmappedProduct
from waybill_odoo_gateway.changed_since import (
    Cursor,
    advance_watermark,
    page_written_after,
    read_watermark,
)
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_values import (
    earlier,
    format_datetime,
    many2one_name,
    parse_datetime,
    text,
)
from waybill_runtime.bus.publisher import Publisher

__all__ = ["RUN_KEY", "WATERMARK_KEY", "ProductMaster", "ProductRun", "described"]

log = logging.getLogger("waybill.odoo.products")

WATERMARK_KEY = "odoo.products.write_date"
"""The newest ``write_date`` a finished run read up to."""
RUN_KEY = "odoo.products.run"
"""The run under way, if any (what a restarted gateway resumes)."""
FINISHED_KEY = "odoo.products.finished_at"
"""When the last run finished (UTC, ISO 8601): whether the next one is due."""

PRODUCT_FIELDS = ["default_code", "barcode", "name", "weight", "volume", "uom_id", "active"]
_DEFAULT_UNIT = "Units"  # Odoo's own reference unit, what a product without one is counted in


class ProductRun(msgspec.Struct, kw_only=True, frozen=True):
    """A product sync run under way, as stored between its pages."""

    batch_id: str
    since: str | None
    """The watermark it started from (None: the whole catalogue)."""
    until: str
    """Odoo time it started at: it reads what was written up to then."""
    page: int = 1
    """The number of the next page to publish."""
    cursor: tuple[str, int] | None = None
    """Where the next page starts (after the last published one)."""
    products: int = 0
    unmapped: int = 0


def described(row: dict[str, Any]) -> Product | UnmappedProduct:
    """The contract's description of an Odoo product row, or why there is none."""
    name = (text(row.get("name")) or "")[:512]
    sku = text(row.get("default_code"))
    if sku is None:
        return UnmappedProduct(
            odoo_product_id=int(row["id"]),
            name=name,
            reason="no internal reference (default_code): the warehouse knows products by SKU",
        )
    values = {
        "sku": sku,
        "barcode": text(row.get("barcode")),
        "name": name,
        "weight_kg": float(row["weight"]) if row.get("weight") else None,
        "volume_m3": float(row["volume"]) if row.get("volume") else None,
        "uom": many2one_name(row.get("uom_id")) or _DEFAULT_UNIT,
        "active": bool(row.get("active", True)),
        "odoo_product_id": int(row["id"]),
    }
    try:
        return msgspec.convert(values, Product)
    except msgspec.ValidationError as error:
        return UnmappedProduct(odoo_product_id=int(row["id"]), name=name, reason=str(error))


class ProductMaster:
    """Runs product sync batches from Odoo onto the bus, one at a time per installation."""

    def __init__(
        self,
        odoo: OdooClient,
        publisher: Publisher,
        marks: KeyValue,
        *,
        page_size: int,
        overlap_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._odoo = odoo
        self._publisher = publisher
        self._marks = marks
        self._page_size = page_size
        self._overlap_s = overlap_s
        self._clock = clock
        # The schedule and an operator's StartProductSync share this gateway's one run at a
        # time: two rounds of the same run here would publish its pages twice.
        self._one_at_a_time = asyncio.Lock()

    async def run_under_way(self) -> ProductRun | None:
        """The stored run a crash interrupted, if any."""
        try:
            entry = await self._marks.get(RUN_KEY)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return msgspec.json.decode(entry.value, type=ProductRun)

    async def last_finished(self) -> datetime | None:
        """When the last run finished; None before the first."""
        try:
            entry = await self._marks.get(FINISHED_KEY)
        except KeyNotFoundError:
            return None
        return datetime.fromisoformat((entry.value or b"").decode()) if entry.value else None

    async def run_if_due(self, interval_s: float) -> ProductRun | None:
        """Resume an interrupted run, or start one when the last finished ``interval_s`` ago."""
        if await self.run_under_way() is None:
            finished = await self.last_finished()
            if finished is not None and (self._clock() - finished).total_seconds() < interval_s:
                return None
        return await self.run()

    async def run(self) -> ProductRun:
        """Publish every product written since the watermark, page by page; the run's record.

        Carries on the run under way instead, if a crash cut one off."""
        async with self._one_at_a_time:
            return await self._run()

    async def _run(self) -> ProductRun:
        await self._odoo.connect()
        run = await self.run_under_way() or await self._start()
        domain: list[object] = [("active", "in", [True, False]), ("write_date", "<=", run.until)]
        if run.since is not None:
            domain.append(("write_date", ">", earlier(run.since, self._overlap_s)))
        while True:
            rows, cursor = await page_written_after(
                self._odoo,
                "product.product",
                domain,
                PRODUCT_FIELDS,
                after=run.cursor,
                size=self._page_size,
            )
            run = await self._publish_page(run, rows, cursor)
            if cursor is None:
                break
        await self._finish(run)
        return run

    async def _start(self) -> ProductRun:
        since = await read_watermark(self._marks, WATERMARK_KEY)
        until = format_datetime(self._clock())
        # Unique per run: two runs can start within Odoo's one-second write_date.
        batch_id = f"products-{until.replace(' ', 'T')}Z-{uuid.uuid4().hex[:8]}"
        run = ProductRun(batch_id=batch_id, since=since, until=until)
        # Created, not put: two replicas starting at once run one batch, not two.
        try:
            await self._marks.create(RUN_KEY, msgspec.json.encode(run))
        except KeyWrongLastSequenceError:  # another replica's run started first: carry that on
            stored = await self.run_under_way()
            if stored is None:
                raise
            return stored
        log.info("product sync %s: reading products written since %s", run.batch_id, since)
        return run

    async def _publish_page(
        self, run: ProductRun, rows: list[dict[str, Any]], cursor: Cursor | None
    ) -> ProductRun:
        found = [described(row) for row in rows]
        products = tuple(p for p in found if isinstance(p, Product))
        unmapped = tuple(p for p in found if isinstance(p, UnmappedProduct))
        page = ProductsChanged(
            batch_id=run.batch_id,
            page=run.page,
            last_page=cursor is None,
            changed_since=parse_datetime(run.since) if run.since else None,
            products=products,
            unmapped=unmapped,
        )
        await self._publisher.publish(
            page, fact_id=fact_id("odoo", "products", run.batch_id, str(run.page))
        )
        moved = msgspec.structs.replace(
            run,
            page=run.page + 1,
            cursor=cursor,
            products=run.products + len(products),
            unmapped=run.unmapped + len(unmapped),
        )
        if cursor is not None:
            await self._marks.put(RUN_KEY, msgspec.json.encode(moved))
        return moved

    async def _finish(self, run: ProductRun) -> None:
        await advance_watermark(self._marks, WATERMARK_KEY, run.until)
        await self._marks.put(FINISHED_KEY, self._clock().isoformat().encode())
        await self._marks.purge(RUN_KEY)
        log.info(
            "product sync %s: %d products on %d page(s), %d without what a sync needs",
            run.batch_id,
            run.products,
            run.page - 1,
            run.unmapped,
        )
