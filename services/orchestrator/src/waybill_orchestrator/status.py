"""The order-status query, answered from the order's state in the workflow bucket."""

from __future__ import annotations

from waybill_contracts.queries import OrderStatusRequest, OrderStatusResponse
from waybill_orchestrator.stages import Stage
from waybill_orchestrator.workflow import UnreadableState, WorkflowStore
from waybill_runtime.queries import QueryError

INTERNAL_ERROR = 500


async def order_status(store: WorkflowStore, request: OrderStatusRequest) -> OrderStatusResponse:
    """Where the order is; ``found=False`` for an order the orchestrator never saw."""
    try:
        state, _revision = await store.read(request.order_ref)
    except UnreadableState as error:
        raise QueryError(INTERNAL_ERROR, str(error)) from None
    if state is None:
        return OrderStatusResponse(order_ref=request.order_ref, found=False)
    return OrderStatusResponse(
        order_ref=state.order_ref,
        found=True,
        stage=state.stage.value,
        held=state.stage == Stage.HELD,
        shipment=state.shipment,
        last_milestone=state.last_milestone,
        open_exceptions=tuple(e.summary for e in state.open_exceptions),
        updated_at=state.updated_at,
    )
