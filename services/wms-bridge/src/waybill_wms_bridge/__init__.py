"""Waybill's wms-bridge: the warehouse system (WMS) behind Waybill's commands and events."""

__version__ = "0.1.0"
