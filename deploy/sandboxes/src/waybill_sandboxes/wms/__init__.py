"""Warehouse (WMS) sandbox: outbound orders and expected returns over REST, signed webhooks."""

from waybill_sandboxes.wms.records import OrderStatus, OutboundOrder, OutboundOrderRequest
from waybill_sandboxes.wms.sandbox import WmsConfig, WmsSandbox

__all__ = ["OrderStatus", "OutboundOrder", "OutboundOrderRequest", "WmsConfig", "WmsSandbox"]
