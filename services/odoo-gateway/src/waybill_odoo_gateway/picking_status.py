"""The ``picking_status`` query: a delivery as Odoo has it right now."""

from __future__ import annotations

from waybill_contracts.queries import PickingStatusRequest, PickingStatusResponse
from waybill_odoo_gateway.gateway import Gateway
from waybill_odoo_gateway.odoo_errors import OdooRefused, OdooServerError
from waybill_runtime.outcomes import TransientError
from waybill_runtime.queries import QueryError

__all__ = ["QUERY_TIMEOUT_S", "picking_status"]

QUERY_TIMEOUT_S = 10.0
"""A query is answered now or not at all: a caller will not wait for Odoo's own retries."""


async def picking_status(gateway: Gateway, request: PickingStatusRequest) -> PickingStatusResponse:
    """Read the picking; ``found=False`` when Odoo has none, 503 when Odoo cannot be asked."""
    try:
        picking = await gateway.reader.picking(
            request.odoo_picking_id,
            timeout_s=min(QUERY_TIMEOUT_S, gateway.settings.odoo_timeout_s),
        )
    except TransientError as unavailable:
        raise QueryError(503, f"Odoo is unavailable: {unavailable}") from None
    except (OdooRefused, OdooServerError) as refused:
        raise QueryError(502, f"Odoo could not answer: {refused}") from None
    if picking is None:
        return PickingStatusResponse(
            order_ref=request.order_ref, odoo_picking_id=request.odoo_picking_id, found=False
        )
    return PickingStatusResponse(
        order_ref=request.order_ref,
        odoo_picking_id=picking.id,
        found=True,
        state=picking.state or None,
        carrier_tracking_ref=picking.tracking_ref,
        date_done=picking.date_done,
    )
