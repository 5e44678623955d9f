"""Events about stock and the product master: adjustments, snapshots, product batches."""

from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import Meta

from waybill_contracts.messages import Event
from waybill_contracts.model import (
    BatchId,
    InventorySystem,
    LastPage,
    Page,
    PositiveInt,
    Product,
    ProductRejection,
    Quantity,
    StockAdjustment,
    StockDiscrepancy,
    StockLevel,
    UnmappedProduct,
    UtcDateTime,
)
from waybill_contracts.services import Service

# --- inventory and products ---------------------------------------------------------


class InventoryAdjusted(Event, frozen=True, kw_only=True):
    """The warehouse changed stock on hand outside an order (count, damage, ...)."""

    aggregate: ClassVar[str] = "inventory"
    name: ClassVar[str] = "adjusted"
    publishers: ClassVar[tuple[Service, ...]] = (Service.WMS_BRIDGE,)

    adjustment: Annotated[StockAdjustment, Meta(description="The change.")]
    warehouse: Annotated[str | None, Meta(description="Warehouse code, if several.")] = None
    adjusted_at: Annotated[UtcDateTime, Meta(description="When the warehouse made it.")]

    def business_key(self) -> str:
        return self.adjustment.sku


AdjustmentReference = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        description="The adjustment's key: the warehouse's reference, else the id of the "
        "InventoryAdjusted event; an approval names it.",
    ),
]


class InventoryAdjustmentHeld(Event, frozen=True, kw_only=True):
    """A warehouse adjustment was not applied in Odoo: it is larger than the threshold, so it
    waits for an operator's approval (``ApproveInventoryAdjustment``)."""

    aggregate: ClassVar[str] = "inventory"
    name: ClassVar[str] = "adjustment_held"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ODOO_GATEWAY,)

    reference: AdjustmentReference
    adjustment: Annotated[StockAdjustment, Meta(description="The change that waits.")]
    warehouse: Annotated[str | None, Meta(description="Warehouse code, if several.")] = None
    reason: Annotated[str, Meta(min_length=1, description="Why it waits, in words.")]
    threshold: Annotated[
        Quantity, Meta(description="Largest change applied without approval (either way).")
    ]
    held_at: Annotated[UtcDateTime, Meta(description="When the gateway held it.")]

    def business_key(self) -> str:
        return self.reference

    def correlation_key(self) -> str:
        return self.reference


class InventoryAdjustmentApplied(Event, frozen=True, kw_only=True):
    """A warehouse adjustment changed Odoo's on-hand quantity (a count applied on the quant)."""

    aggregate: ClassVar[str] = "inventory"
    name: ClassVar[str] = "adjustment_applied"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ODOO_GATEWAY,)

    reference: AdjustmentReference
    adjustment: Annotated[StockAdjustment, Meta(description="The change applied.")]
    warehouse: Annotated[str | None, Meta(description="Warehouse code, if several.")] = None
    odoo_quant_id: Annotated[PositiveInt, Meta(description="The Odoo stock.quant counted.")]
    on_hand: Annotated[Quantity, Meta(description="Odoo's on hand at the location once applied.")]
    approved_by: Annotated[
        str | None, Meta(description="The operator who approved it; none = under the threshold.")
    ] = None
    applied_at: Annotated[UtcDateTime, Meta(description="When the gateway applied it.")]

    def business_key(self) -> str:
        return self.reference

    def correlation_key(self) -> str:
        return self.reference


class InventorySnapshotTaken(Event, frozen=True, kw_only=True):
    """One page of stock levels read from Odoo or the warehouse, for reconciliation."""

    aggregate: ClassVar[str] = "inventory"
    name: ClassVar[str] = "snapshot_taken"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ODOO_GATEWAY, Service.WMS_BRIDGE)

    snapshot_id: BatchId
    system: Annotated[InventorySystem, Meta(description="Whose figures these are.")]
    warehouse: Annotated[str | None, Meta(description="Warehouse code, if several.")] = None
    page: Page
    last_page: LastPage
    levels: Annotated[tuple[StockLevel, ...], Meta(description="Stock levels on this page.")]
    taken_at: Annotated[UtcDateTime, Meta(description="When the figures were read.")]

    def business_key(self) -> str:
        return self.snapshot_id


class InventoryReconciled(Event, frozen=True, kw_only=True):
    """Odoo and warehouse stock were compared; the discrepancy report."""

    aggregate: ClassVar[str] = "inventory"
    name: ClassVar[str] = "reconciled"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ORCHESTRATOR,)

    reconciliation_id: BatchId
    odoo_snapshot_id: Annotated[str, Meta(min_length=1, description="Odoo snapshot compared.")]
    warehouse_snapshot_id: Annotated[
        str, Meta(min_length=1, description="Warehouse snapshot compared.")
    ]
    skus_compared: Annotated[int, Meta(ge=0, description="How many SKU/locations compared.")]
    discrepancies: Annotated[
        tuple[StockDiscrepancy, ...], Meta(description="Where the figures differ.")
    ]
    reconciled_at: Annotated[UtcDateTime, Meta(description="When the comparison ran.")]

    def business_key(self) -> str:
        return self.reconciliation_id


class ProductsChanged(Event, frozen=True, kw_only=True):
    """One page of products created or changed in Odoo since the last sync."""

    aggregate: ClassVar[str] = "product"
    name: ClassVar[str] = "changed"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ODOO_GATEWAY,)

    batch_id: BatchId
    page: Page
    last_page: LastPage
    changed_since: Annotated[
        UtcDateTime | None, Meta(description="Watermark the batch starts from; none = all.")
    ] = None
    products: Annotated[tuple[Product, ...], Meta(description="Products on this page.")]
    unmapped: Annotated[
        tuple[UnmappedProduct, ...],
        Meta(description="Odoo products on this page that cannot be synced, and why."),
    ] = ()

    def business_key(self) -> str:
        return self.batch_id


class ProductsSynced(Event, frozen=True, kw_only=True):
    """The warehouse took a page of products; the ones it refused are listed."""

    aggregate: ClassVar[str] = "product"
    name: ClassVar[str] = "synced"
    publishers: ClassVar[tuple[Service, ...]] = (Service.WMS_BRIDGE,)

    batch_id: BatchId
    page: Page
    accepted: Annotated[int, Meta(ge=0, description="Products the warehouse took.")]
    rejected: Annotated[
        tuple[ProductRejection, ...], Meta(description="Products it refused, and why.")
    ] = ()
    synced_at: Annotated[UtcDateTime, Meta(description="When the warehouse answered.")]

    def business_key(self) -> str:
        return self.batch_id


class ProductSyncCompleted(Event, frozen=True, kw_only=True):
    """A product master sync run is over: what it read, what the warehouse took, what not."""

    aggregate: ClassVar[str] = "product"
    name: ClassVar[str] = "sync_completed"
    publishers: ClassVar[tuple[Service, ...]] = (Service.ORCHESTRATOR,)

    batch_id: BatchId
    pages: Annotated[int, Meta(ge=1, description="Pages the run read from Odoo.")]
    products: Annotated[int, Meta(ge=0, description="Odoo products the run read.")]
    accepted: Annotated[int, Meta(ge=0, description="Products the warehouse took.")]
    rejected: Annotated[
        tuple[ProductRejection, ...],
        Meta(description="Products refused, by Waybill's checks or the warehouse, and why."),
    ] = ()
    unmapped: Annotated[
        tuple[UnmappedProduct, ...], Meta(description="Odoo products that could not be synced.")
    ] = ()
    started_at: Annotated[UtcDateTime, Meta(description="When its first page was seen.")]
    completed_at: Annotated[UtcDateTime, Meta(description="When its last page was answered.")]

    def business_key(self) -> str:
        return self.batch_id
