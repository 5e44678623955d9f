"""Two carrier sandboxes with different APIs: Carrier A (EasyPost style) and B (Shippo style)."""

from waybill_sandboxes.carriers.base import CarrierConfig, CarrierSandbox, Purchase
from waybill_sandboxes.carriers.easypost import EasyPostSandbox
from waybill_sandboxes.carriers.shippo import ShippoSandbox
from waybill_sandboxes.carriers.tracking import Milestone

__all__ = [
    "CarrierConfig",
    "CarrierSandbox",
    "EasyPostSandbox",
    "Milestone",
    "Purchase",
    "ShippoSandbox",
]
