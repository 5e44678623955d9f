"""Carrier clients behind one protocol: carrier A (EasyPost style), carrier B (Shippo style)."""

from waybill_carrier_router.carriers.easypost import EasyPostClient
from waybill_carrier_router.carriers.easypost_tracking import EasyPostWebhooks, TrackerEvent
from waybill_carrier_router.carriers.model import (
    BadTrackingPayload,
    Carrier,
    CarrierRateLimited,
    CarrierRefused,
    CarrierUnavailable,
    LabelPurchase,
    RateOffer,
    ShipmentSpec,
    TrackingReport,
    TrackingWebhooks,
    WebhookIdentity,
)
from waybill_carrier_router.carriers.returns import book_return
from waybill_carrier_router.carriers.shippo import ShippoClient
from waybill_carrier_router.carriers.shippo_tracking import ShippoWebhooks, TrackWebhook

__all__ = [
    "BadTrackingPayload",
    "Carrier",
    "CarrierRateLimited",
    "CarrierRefused",
    "CarrierUnavailable",
    "EasyPostClient",
    "EasyPostWebhooks",
    "LabelPurchase",
    "RateOffer",
    "ShipmentSpec",
    "ShippoClient",
    "ShippoWebhooks",
    "TrackWebhook",
    "TrackerEvent",
    "TrackingReport",
    "TrackingWebhooks",
    "WebhookIdentity",
    "book_return",
]
