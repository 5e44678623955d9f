"""Events: facts, named in the past tense, published by the service that saw them.

Subjects are ``<prefix>.evt.<aggregate>.<name>.v<major>``; see
:mod:`waybill_contracts.subjects`. The types live in one module per area
(:mod:`.order`, :mod:`.stock`, :mod:`.shipping`, :mod:`.partners`) and are all importable from here.
"""

from __future__ import annotations

from waybill_contracts.events.order import (
    DeliveryRecordedInOdoo,
    OrderCancelled,
    OrderReleased,
    ShipmentRecordedInOdoo,
    WarehouseOrderAccepted,
    WarehouseOrderCancelled,
    WarehouseOrderCancelRefused,
    WarehouseOrderPacked,
    WarehouseOrderPicked,
    WarehouseOrderShipped,
    WarehouseOrderShortPicked,
)
from waybill_contracts.events.partners import CircuitStateName, PartnerCircuitChanged
from waybill_contracts.events.shipping import (
    ExceptionRaised,
    FreightInvoiceReconciled,
    MilestoneReached,
    NotificationFailed,
    NotificationSent,
    ShipmentBooked,
    ShipmentBookingFailed,
    ShipmentVoided,
    ShipmentVoidRefused,
)
from waybill_contracts.events.stock import (
    InventoryAdjusted,
    InventoryAdjustmentApplied,
    InventoryAdjustmentHeld,
    InventoryReconciled,
    InventorySnapshotTaken,
    ProductsChanged,
    ProductsSynced,
    ProductSyncCompleted,
)
from waybill_contracts.messages import Event

__all__ = [
    "EVENT_TYPES",
    "CircuitStateName",
    "DeliveryRecordedInOdoo",
    "Event",
    "ExceptionRaised",
    "FreightInvoiceReconciled",
    "InventoryAdjusted",
    "InventoryAdjustmentApplied",
    "InventoryAdjustmentHeld",
    "InventoryReconciled",
    "InventorySnapshotTaken",
    "MilestoneReached",
    "NotificationFailed",
    "NotificationSent",
    "OrderCancelled",
    "OrderReleased",
    "PartnerCircuitChanged",
    "ProductSyncCompleted",
    "ProductsChanged",
    "ProductsSynced",
    "ShipmentBooked",
    "ShipmentBookingFailed",
    "ShipmentRecordedInOdoo",
    "ShipmentVoidRefused",
    "ShipmentVoided",
    "WarehouseOrderAccepted",
    "WarehouseOrderCancelRefused",
    "WarehouseOrderCancelled",
    "WarehouseOrderPacked",
    "WarehouseOrderPicked",
    "WarehouseOrderShipped",
    "WarehouseOrderShortPicked",
]

EVENT_TYPES: tuple[type[Event], ...] = (
    OrderReleased,
    OrderCancelled,
    ShipmentRecordedInOdoo,
    DeliveryRecordedInOdoo,
    WarehouseOrderAccepted,
    WarehouseOrderPicked,
    WarehouseOrderShortPicked,
    WarehouseOrderPacked,
    WarehouseOrderShipped,
    WarehouseOrderCancelled,
    WarehouseOrderCancelRefused,
    InventoryAdjusted,
    InventoryAdjustmentHeld,
    InventoryAdjustmentApplied,
    InventorySnapshotTaken,
    InventoryReconciled,
    ProductsChanged,
    ProductsSynced,
    ProductSyncCompleted,
    ShipmentBooked,
    ShipmentBookingFailed,
    ShipmentVoided,
    ShipmentVoidRefused,
    MilestoneReached,
    FreightInvoiceReconciled,
    NotificationSent,
    NotificationFailed,
    ExceptionRaised,
    PartnerCircuitChanged,
)
"""Every event type, in flow order."""
