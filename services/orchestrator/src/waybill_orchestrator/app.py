"""The orchestrator service: event handlers, the deadline sweep, the order-status query,
and product master sync runs.

``service`` is what `waybill run orchestrator` runs; :func:`build_service`
makes another, independent instance (tests run two side by side to prove
they never corrupt an order's state).
"""

from __future__ import annotations

from waybill_contracts.events import ProductsChanged, ProductsSynced
from waybill_contracts.events.returns import (
    RETURN_EVENT_TYPES,
    ReturnCompleted,
    ReturnParcelOverdue,
)
from waybill_contracts.operations import ORDER_ACTIONS, RetryReturnStep
from waybill_contracts.queries import OrderStatusRequest, OrderStatusResponse
from waybill_orchestrator import status
from waybill_orchestrator.config import OrchestratorSettings
from waybill_orchestrator.deadlines import deadline_sweeper
from waybill_orchestrator.handlers import (
    PRODUCT_RUNS,
    RETURNS,
    WORKFLOW,
    WORKFLOW_BUCKET,
    on_operator_action,
    on_order_event,
    on_products_changed,
    on_products_synced,
    on_return_action,
    on_return_event,
    open_product_runs,
    open_returns,
    open_workflow,
)
from waybill_orchestrator.process import HANDLED_EVENTS
from waybill_runtime.declaration import Bucket
from waybill_runtime.service import Runtime, Service

NAME = "orchestrator"

_RETURN_EVENTS_PUBLISHED = (ReturnParcelOverdue, ReturnCompleted)
"""Return events the orchestrator itself publishes (it does not consume its own)."""


def build_service() -> Service[OrchestratorSettings]:
    """A new orchestrator service declaration (run it with ``.main`` or ``.serve``)."""
    service = Service(
        NAME,
        settings_type=OrchestratorSettings,
        description="The order-to-ship process: decides what happens next to each order",
        buckets=(Bucket(WORKFLOW_BUCKET),),
    )
    for event_type in HANDLED_EVENTS:
        service.handles(event_type)(on_order_event)
    # What operators ask from the control tower (the auditor sends it on their behalf).
    for action_type in ORDER_ACTIONS:
        service.handles(action_type)(on_operator_action)

    # Product master sync runs (issue 19): pages checked, sent, counted, the run closed.
    service.handles(ProductsChanged)(on_products_changed)
    service.handles(ProductsSynced)(on_products_synced)

    # Returns (issue 20): every fact about a return, and the operator's retry.
    for event_type in RETURN_EVENT_TYPES:
        if event_type not in _RETURN_EVENTS_PUBLISHED:
            service.handles(event_type)(on_return_event)
    service.handles(RetryReturnStep)(on_return_action)

    service.resource(WORKFLOW)(open_workflow)
    service.resource(RETURNS)(open_returns)
    service.resource(PRODUCT_RUNS)(open_product_runs)
    service.runs(deadline_sweeper)

    @service.query("order_status", OrderStatusRequest, OrderStatusResponse)
    async def order_status(
        request: OrderStatusRequest, runtime: Runtime[OrchestratorSettings]
    ) -> OrderStatusResponse:
        return await status.order_status(runtime.resource(WORKFLOW), request)

    return service


service = build_service()
main = service.main

if __name__ == "__main__":
    raise SystemExit(main())
