"""The orchestrator service: event handlers, the deadline sweep and the order-status query.

``service`` is what `waybill run orchestrator` runs; :func:`build_service`
makes another, independent instance (tests run two side by side to prove
they never corrupt an order's state).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from waybill_contracts.queries import OrderStatusRequest, OrderStatusResponse
from waybill_orchestrator import status
from waybill_orchestrator.config import OrchestratorSettings
from waybill_orchestrator.deadlines import deadline_sweeper
from waybill_orchestrator.handlers import WORKFLOW_BUCKET, on_order_event, store_for
from waybill_orchestrator.process import HANDLED_EVENTS
from waybill_runtime.errors import UserFacingError
from waybill_runtime.queries import QueryError
from waybill_runtime.service import Runtime, Service

NAME = "orchestrator"
UNAVAILABLE = 503


def build_service() -> Service[OrchestratorSettings]:
    """A new orchestrator service declaration (run it with ``.main`` or ``.serve``)."""
    service = Service(
        NAME,
        settings_type=OrchestratorSettings,
        description="The order-to-ship process: decides what happens next to each order",
        buckets=(WORKFLOW_BUCKET,),
    )
    for event_type in HANDLED_EVENTS:
        service.handles(event_type)(on_order_event)

    # Query handlers get only the request; the running instance's runtime is
    # bound here so the answer comes from this instance's own bucket.
    running: list[Runtime[OrchestratorSettings]] = []

    @service.uses
    @contextlib.asynccontextmanager
    async def bind_runtime(runtime: Runtime[OrchestratorSettings]) -> AsyncIterator[None]:
        if running:
            raise UserFacingError(
                "this orchestrator service is already running: call build_service() for another"
            )
        running.append(runtime)
        try:
            yield
        finally:
            running.remove(runtime)

    service.uses(deadline_sweeper)

    @service.query("order_status", OrderStatusRequest, OrderStatusResponse)
    async def order_status(request: OrderStatusRequest) -> OrderStatusResponse:
        if not running:
            raise QueryError(UNAVAILABLE, "the orchestrator is starting or stopping: retry")
        return await status.order_status(store_for(running[0]), request)

    return service


service = build_service()
main = service.main

if __name__ == "__main__":
    raise SystemExit(main())
