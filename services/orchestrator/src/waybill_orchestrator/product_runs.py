"""Product master sync runs: each page checked, sent to the warehouse, counted, the run closed.

The odoo-gateway reads a run's pages from Odoo (``ProductsChanged``); the
orchestrator checks each page's products (:mod:`~waybill_orchestrator.product_rules`),
sends the fit ones to the wms-bridge (``SyncProducts``, same batch and page),
and counts what the warehouse took (``ProductsSynced``). When every page up to
the last has been answered, the run is over: ``ProductSyncCompleted`` carries
its counts and every refusal with its reason, for the audit trail and the
report.

The run's record lives in the workflow bucket (``product-run.<batch>``),
written only with compare-and-set, like an order's state: pages handled at
once by two handlers or two instances never lose each other's counts. A page
is recorded first and sent after; a page or answer seen again finds itself
recorded and sends again what it sent the first time (under the same message
id, so JetStream keeps one), which is how a crash between the two is
recovered. Within an instance a run's pages and answers are applied one at a
time, in the order they arrive: a SKU two products share is the product's
whose page the gateway published first (the gateway reads pages in order),
not whichever page's handler happened to write first. The wms-bridge uploads
each page's products once, however often the page is sent. A finished run's
record expires like a finished order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import msgspec
from nats.js.kv import KeyValue

from waybill_contracts import MessageContext, fact_id
from waybill_contracts.commands import SyncProducts
from waybill_contracts.events import ProductsChanged, ProductsSynced, ProductSyncCompleted
from waybill_contracts.model import Product, ProductRejection, UnmappedProduct
from waybill_orchestrator.product_rules import judged
from waybill_orchestrator.run_records import read_record, write_record
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.idempotency import kv_key
from waybill_runtime.outcomes import RetryLater, TransientError
from waybill_runtime.resilience import KeyedLock

__all__ = ["RUN_PREFIX", "ProductRunRecord", "ProductRuns"]

RUN_PREFIX = "product-run."
"""Keys of product sync runs in the workflow bucket (orders are ``order.``)."""


class ProductRunRecord(msgspec.Struct, kw_only=True, frozen=True):
    """What a run has seen and counted so far."""

    batch_id: str
    started_at: datetime
    last_page: int | None = None
    checked: tuple[int, ...] = ()
    """Pages whose products were checked (and the fit ones sent)."""
    answered: tuple[int, ...] = ()
    """Pages the warehouse answered (or that had nothing to send)."""
    owners: dict[str, int] = msgspec.field(default_factory=dict)
    """SKU -> Odoo product id of every fit product so far: a SKU is one product's."""
    products: int = 0
    accepted: int = 0
    rejected: tuple[ProductRejection, ...] = ()
    unmapped: tuple[UnmappedProduct, ...] = ()
    completed_at: datetime | None = None

    def complete(self) -> bool:
        if self.last_page is None:
            return False
        pages = set(range(1, self.last_page + 1))
        return pages <= set(self.checked) and pages <= set(self.answered)


class RunKeptChanging(TransientError):
    """Every compare-and-set lost a race: the message is tried again later."""


def _key(batch_id: str) -> str:
    return RUN_PREFIX + kv_key(batch_id)


class ProductRuns:
    """The product sync runs of one installation."""

    def __init__(
        self,
        kv: KeyValue,
        publisher: Publisher,
        *,
        finished_ttl_s: float = 0.0,
        write_attempts: int = 25,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kv = kv
        self._publisher = publisher
        self._finished_ttl_s = finished_ttl_s
        self._write_attempts = write_attempts
        self.clock = clock
        self._applying = KeyedLock()

    async def read(self, batch_id: str) -> tuple[ProductRunRecord | None, int | None]:
        """The run's record and revision; ``(None, None)`` before its first page."""
        return await read_record(self._kv, _key(batch_id), ProductRunRecord)

    async def page_changed(self, page: ProductsChanged, cause: MessageContext) -> None:
        """Check a page's products, record the page, then send the fit ones to the warehouse."""
        async with self._applying.hold(page.batch_id):
            await self._page_changed(page, cause)

    async def _page_changed(self, page: ProductsChanged, cause: MessageContext) -> None:
        for attempt in range(self._write_attempts):
            record, revision = await self.read(page.batch_id)
            if record is None:
                record = ProductRunRecord(batch_id=page.batch_id, started_at=self.clock())
            if page.page in record.checked:
                # Seen before: send again what was sent (the owners hold this page's SKUs).
                fit, _refused, _owners = judged(page.products, record.owners)
                await self._send(page, fit, record, cause)
                return
            fit, refused, owners = judged(page.products, record.owners)
            updated = msgspec.structs.replace(
                record,
                checked=(*record.checked, page.page),
                # A page with nothing to send is answered as soon as it is checked.
                answered=record.answered if fit else (*record.answered, page.page),
                last_page=page.page if page.last_page else record.last_page,
                owners=owners,
                products=record.products + len(page.products) + len(page.unmapped),
                rejected=(*record.rejected, *refused),
                unmapped=(*record.unmapped, *page.unmapped),
            )
            written = await self._written(updated, revision, attempt)
            if written is not None:
                await self._send(page, fit, written, cause)
                return
        raise RunKeptChanging(f"product sync run {page.batch_id} changed under every attempt")

    async def page_answered(self, answer: ProductsSynced, cause: MessageContext) -> None:
        """Count what the warehouse took of a page; close the run after its last page."""
        async with self._applying.hold(answer.batch_id):
            await self._page_answered(answer, cause)

    async def _page_answered(self, answer: ProductsSynced, cause: MessageContext) -> None:
        for attempt in range(self._write_attempts):
            record, revision = await self.read(answer.batch_id)
            if record is None:
                raise RetryLater(f"product sync run {answer.batch_id} has no page checked yet")
            if answer.page in record.answered:
                await self._announce_if_complete(record, cause)
                return
            updated = msgspec.structs.replace(
                record,
                answered=(*record.answered, answer.page),
                accepted=record.accepted + answer.accepted,
                rejected=(*record.rejected, *answer.rejected),
            )
            written = await self._written(updated, revision, attempt)
            if written is not None:
                await self._announce_if_complete(written, cause)
                return
        raise RunKeptChanging(f"product sync run {answer.batch_id} changed under every attempt")

    async def _written(
        self, record: ProductRunRecord, revision: int | None, attempt: int
    ) -> ProductRunRecord | None:
        """Compare-and-set ``record`` (closed if complete); None when someone wrote first."""
        if record.complete() and record.completed_at is None:
            record = msgspec.structs.replace(record, completed_at=self.clock())
        finished = record.completed_at is not None
        written = await write_record(
            self._kv,
            _key(record.batch_id),
            record,
            revision=revision,
            attempt=attempt,
            expire_after_s=self._finished_ttl_s if finished else 0.0,
        )
        return record if written else None

    async def _send(
        self,
        page: ProductsChanged,
        fit: Sequence[Product],
        record: ProductRunRecord,
        cause: MessageContext,
    ) -> None:
        if fit:
            command = SyncProducts(
                batch_id=page.batch_id,
                page=page.page,
                last_page=page.last_page,
                products=tuple(fit),
            )
            await self._publisher.publish(
                command,
                cause=cause,
                fact_id=fact_id("orchestrator", "sync_products", page.batch_id, page.page),
            )
        await self._announce_if_complete(record, cause)

    async def _announce_if_complete(self, done: ProductRunRecord, cause: MessageContext) -> None:
        if done.completed_at is None or done.last_page is None:
            return
        completed = ProductSyncCompleted(
            batch_id=done.batch_id,
            pages=done.last_page,
            products=done.products,
            accepted=done.accepted,
            rejected=done.rejected,
            unmapped=done.unmapped,
            started_at=done.started_at,
            completed_at=done.completed_at,
        )
        await self._publisher.publish(
            completed, cause=cause, fact_id=fact_id("orchestrator", "product_sync", done.batch_id)
        )
