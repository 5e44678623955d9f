"""Uploading a page of the product master into the WMS's catalogue, each product once.

``SyncProducts`` carries one validated page of a product sync run. The page is
cut into uploads of at most ``WAYBILL_WMS_PRODUCTS_PER_CALL`` products (the
WMS's limit per call); each upload is an effect of its own in the runtime's
``OnceOnly``, keyed by batch, page and upload, with the WMS's answer as its
result. So a redelivered page, or one retried after the bridge crashed
between two uploads, sends only the uploads that never completed: the WMS is
never sent the same product of a run twice. The WMS answers per product; the
ones it refused are reported with its reason in ``ProductsSynced``, the rest
count as accepted (created, updated, or already as sent). Odoo names units of
measure ("Units", "kg"); the WMS has codes ("EA", "KG"): a product whose unit
has no code (``WAYBILL_WMS_UNIT_CODES``) is refused before anything is sent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from waybill_contracts import MessageContext
from waybill_contracts.commands import SyncProducts
from waybill_contracts.events import ProductsSynced
from waybill_contracts.model import Product, ProductRejection
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.idempotency import OnceOnly
from waybill_runtime.outcomes import PermanentError
from waybill_wms_bridge.wms_client import WmsClient
from waybill_wms_bridge.wms_wire import WmsProduct, WmsProductResults

__all__ = ["ProductUploads", "UnitCodes", "judged_upload", "upload_key", "wms_product"]

log = logging.getLogger("waybill.wms_bridge.products")

REJECTED = "rejected"
"""The WMS's status of a product it refused (the others: created, updated, unchanged)."""


class UnitCodes:
    """Odoo's units of measure (by name) in the WMS's codes."""

    def __init__(self, codes: Mapping[str, str]) -> None:
        self._codes = dict(codes)
        self._known = frozenset(codes.values())

    def code_of(self, unit: str) -> str | None:
        """The WMS's code for ``unit``; a unit already written as a code stays as it is."""
        return self._codes.get(unit) or (unit if unit in self._known else None)

    def name_of(self, code: str) -> str:
        """Odoo's name of the WMS's unit ``code`` (the first mapped to it), else the code."""
        return next((name for name, known in self._codes.items() if known == code), code)


def wms_product(product: Product, uom: str) -> WmsProduct:
    """The catalogue item the WMS keeps for a product of Odoo's master."""
    return WmsProduct(
        sku=product.sku,
        description=product.name,
        barcode=product.barcode or "",
        uom=uom,
        weight_kg=float(product.weight_kg or 0),
        active=product.active,
    )


def upload_key(batch_id: str, page: int, upload: int) -> str:
    """The once-only key of one upload of one page of a sync run."""
    return f"wms-products:{batch_id}:{page}:{upload}"


class ProductUploads:
    """Executes ``SyncProducts`` pages against the WMS catalogue."""

    def __init__(
        self,
        client: WmsClient,
        once: OnceOnly[WmsProductResults],
        publisher: Publisher,
        *,
        per_call: int,
        units: UnitCodes,
    ) -> None:
        if per_call < 1:
            raise ValueError(f"an upload holds at least one product, not {per_call}")
        self._client = client
        self._once = once
        self._publisher = publisher
        self._per_call = per_call
        self._units = units

    async def sync_page(self, command: SyncProducts, *, cause: MessageContext) -> ProductsSynced:
        """Upload the page's products (each upload once), then announce what the WMS took."""
        products: list[WmsProduct] = []
        rejected: list[ProductRejection] = []
        for product in command.products:
            code = self._units.code_of(product.uom)
            if code is None:
                reason = (
                    f"unit of measure {product.uom!r} has no WMS code: "
                    "add it to WAYBILL_WMS_UNIT_CODES"
                )
                rejected.append(ProductRejection(sku=product.sku, reason=reason))
            else:
                products.append(wms_product(product, code))
        accepted = 0
        for upload, start in enumerate(range(0, len(products), self._per_call)):
            chunk = products[start : start + self._per_call]
            answer = await self._once.run(
                upload_key(command.batch_id, command.page, upload),
                functools.partial(self._client.upsert_products, chunk),
            )
            taken, refused = judged_upload(chunk, answer)
            accepted += taken
            rejected += refused
        synced = ProductsSynced(
            batch_id=command.batch_id,
            page=command.page,
            accepted=accepted,
            rejected=tuple(rejected),
            synced_at=datetime.now(UTC),
        )
        # One fact per page: a redelivered page announces it again under the same id.
        await self._publisher.publish(
            synced, cause=cause, fact_id=f"products-synced:{command.batch_id}:{command.page}"
        )
        if rejected:
            log.warning(
                "product sync %s page %d: the WMS refused %d of %d products (first: %s: %s)",
                command.batch_id,
                command.page,
                len(rejected),
                len(command.products),
                rejected[0].sku,
                rejected[0].reason,
            )
        return synced


def judged_upload(
    sent: Sequence[WmsProduct], answer: WmsProductResults
) -> tuple[int, list[ProductRejection]]:
    """How many of ``sent`` the WMS took, and the ones it refused with its reasons."""
    if len(answer.results) != len(sent):
        # Without one result per product nobody can tell which were taken; the answer is
        # stored as the upload's result, so retrying would only read it again.
        raise PermanentError(
            f"the WMS answered an upload of {len(sent)} products with "
            f"{len(answer.results)} results: cannot tell which it took"
        )
    refused = [
        ProductRejection(sku=product.sku, reason=result.reason or "refused without a reason")
        for product, result in zip(sent, answer.results, strict=True)
        if result.status == REJECTED
    ]
    return len(sent) - len(refused), refused
