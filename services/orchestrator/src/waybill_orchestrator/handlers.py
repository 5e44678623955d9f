"""The event handlers: every event about an order goes through the state machine.

One handler serves every event type, because what an event does depends on
the order's state, not on the handler: the state machine decides, the
workflow store makes the decision stick and sends what it says.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from decimal import Decimal

from waybill_contracts.events import (
    Event,
    InventorySnapshotTaken,
    ProductsChanged,
    ProductsSynced,
)
from waybill_contracts.operations import OrderAction, RetryReturnStep
from waybill_orchestrator.changes import Decision, NotYet, Observed, Requested
from waybill_orchestrator.config import OrchestratorSettings
from waybill_orchestrator.instructions import MissingOrderData
from waybill_orchestrator.process import order_ref_of
from waybill_orchestrator.product_runs import ProductRuns
from waybill_orchestrator.return_store import ReturnStore
from waybill_orchestrator.stock_comparison import in_flight
from waybill_orchestrator.stock_runs import StockRuns
from waybill_orchestrator.workflow import WorkflowStore
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.outcomes import PermanentError, RetryLater
from waybill_runtime.service import ResourceKey, Runtime

log = logging.getLogger("waybill.orchestrator")

WORKFLOW_BUCKET = "workflow"


def note_level(decision: Decision) -> int:
    """How loud a decision's notes are logged.

    A change is in the order's timeline (the status query shows it) and the
    auditor keeps the event that caused it: a line per change, at INFO, was the
    orchestrator's largest cost after its round trips (a line per event an order
    has). Its notes go to DEBUG. An event that changes nothing (a repeat, a late
    fact, an action that does not fit) is in no timeline: its reason stays at INFO,
    but for what happens routinely (a milestone already known: carriers repeat
    their scans, about one an order), also at DEBUG.
    """
    return logging.DEBUG if decision.changed or decision.routine else logging.INFO


WORKFLOW = ResourceKey[WorkflowStore]("workflow")
"""The running orchestrator's workflow store, built once (see :func:`open_workflow`)."""

RETURNS = ResourceKey[ReturnStore]("returns")
"""The running orchestrator's returns, in the workflow bucket (see :func:`open_returns`)."""

PRODUCT_RUNS = ResourceKey[ProductRuns]("product-runs")
"""The running orchestrator's product sync runs (see :func:`open_product_runs`)."""

STOCK_RUNS = ResourceKey[StockRuns]("stock-runs")
"""The running orchestrator's inventory reconciliation runs (see :func:`open_stock_runs`)."""


@contextlib.asynccontextmanager
async def open_workflow(runtime: Runtime[OrchestratorSettings]) -> AsyncIterator[WorkflowStore]:
    """The workflow store of a running orchestrator, on its bucket."""
    settings = runtime.settings
    yield WorkflowStore(
        runtime.buckets[WORKFLOW_BUCKET],
        runtime.publisher,
        settings.policy(),
        write_attempts=settings.workflow_write_attempts,
        finished_ttl_s=settings.finished_order_ttl_s,
    )


@contextlib.asynccontextmanager
async def open_returns(runtime: Runtime[OrchestratorSettings]) -> AsyncIterator[ReturnStore]:
    """The returns of a running orchestrator, in its workflow bucket."""
    settings = runtime.settings
    yield ReturnStore(
        runtime.buckets[WORKFLOW_BUCKET],
        runtime.publisher,
        settings.return_policy(),
        write_attempts=settings.workflow_write_attempts,
        finished_ttl_s=settings.finished_order_ttl_s,
    )


async def on_return_event(event: Event, ctx: HandlerContext[OrchestratorSettings]) -> None:
    """Apply one event to its return; a fact about a return not requested yet is retried."""
    store = ctx.resource(RETURNS)
    return_id = event.business_key()
    happening = Observed(event=event, context=ctx.envelope, at=store.clock())
    try:
        decision = await store.apply(return_id, happening)
    except NotYet as error:
        raise RetryLater(f"return {return_id}: {error}") from error
    except MissingOrderData as error:
        raise PermanentError(f"return {return_id}: {error}") from error
    stage = decision.state.stage if decision.state is not None else None
    for note in decision.notes:
        log.log(
            note_level(decision),
            "return %s (%s, stage %s): %s",
            return_id,
            type(event).__name__,
            stage,
            note,
        )


async def on_return_action(
    action: RetryReturnStep, ctx: HandlerContext[OrchestratorSettings]
) -> None:
    """Apply an operator's action from the control tower to its return."""
    store = ctx.resource(RETURNS)
    requested = Requested(command=action, context=ctx.envelope, at=store.clock())  # type: ignore[arg-type]
    try:
        decision = await store.apply(action.return_id, requested)
    except NotYet as error:
        raise PermanentError(f"return {action.return_id} is unknown") from error
    except MissingOrderData as error:
        raise PermanentError(f"return {action.return_id}: {error}") from error
    for note in decision.notes:
        log.log(
            note_level(decision),
            "return %s (retry by %s): %s",
            action.return_id,
            action.operator,
            note,
        )


@contextlib.asynccontextmanager
async def open_product_runs(
    runtime: Runtime[OrchestratorSettings],
) -> AsyncIterator[ProductRuns]:
    """The product sync runs of a running orchestrator, in its workflow bucket."""
    settings = runtime.settings
    yield ProductRuns(
        runtime.buckets[WORKFLOW_BUCKET],
        runtime.publisher,
        finished_ttl_s=settings.finished_order_ttl_s,
        write_attempts=settings.workflow_write_attempts,
    )


@contextlib.asynccontextmanager
async def open_stock_runs(runtime: Runtime[OrchestratorSettings]) -> AsyncIterator[StockRuns]:
    """The reconciliation runs of a running orchestrator, in its workflow bucket; the orders
    in flight are read from the workflow store's open orders."""
    settings = runtime.settings
    store = runtime.resource(WORKFLOW)

    async def expected() -> dict[str, Decimal]:
        states = [(await store.read_key(key))[0] for key in await store.open_keys()]
        return in_flight(state for state in states if state is not None)

    yield StockRuns(
        runtime.buckets[WORKFLOW_BUCKET],
        runtime.publisher,
        expected,
        deadline_s=settings.inventory_reconcile_deadline_s,
        finished_ttl_s=settings.finished_order_ttl_s,
        write_attempts=settings.workflow_write_attempts,
    )


async def on_inventory_snapshot_taken(
    page: InventorySnapshotTaken, ctx: HandlerContext[OrchestratorSettings]
) -> None:
    """Keep a snapshot page of a reconciliation run; compare once both snapshots are in."""
    await ctx.resource(STOCK_RUNS).page_taken(page, ctx.envelope)


async def on_products_changed(
    page: ProductsChanged, ctx: HandlerContext[OrchestratorSettings]
) -> None:
    """Check a page of the product master; send the fit products to the warehouse."""
    await ctx.resource(PRODUCT_RUNS).page_changed(page, ctx.envelope)


async def on_products_synced(
    answer: ProductsSynced, ctx: HandlerContext[OrchestratorSettings]
) -> None:
    """Count what the warehouse took of a page; close the run after its last page."""
    await ctx.resource(PRODUCT_RUNS).page_answered(answer, ctx.envelope)


async def on_order_event(event: Event, ctx: HandlerContext[OrchestratorSettings]) -> None:
    """Apply one event to its order; a fact about an order not seen yet is retried later."""
    store = ctx.resource(WORKFLOW)
    order_ref = order_ref_of(event)
    happening = Observed(event=event, context=ctx.envelope, at=store.clock())
    try:
        decision = await store.apply(order_ref, happening)
    except NotYet as error:
        raise RetryLater(str(error)) from error
    except MissingOrderData as error:
        raise PermanentError(f"order {order_ref}: {error}") from error
    stage = decision.state.stage if decision.state is not None else None
    for note in decision.notes:
        log.log(
            note_level(decision),
            "order %s (%s, stage %s): %s",
            order_ref,
            type(event).__name__,
            stage,
            note,
        )


async def on_operator_action(
    action: OrderAction, ctx: HandlerContext[OrchestratorSettings]
) -> None:
    """Apply an operator's action from the control tower to its order."""
    store = ctx.resource(WORKFLOW)
    requested = Requested(command=action, context=ctx.envelope, at=store.clock())
    try:
        decision = await store.apply(action.order_ref, requested)
    except MissingOrderData as error:
        raise PermanentError(f"order {action.order_ref}: {error}") from error
    for note in decision.notes:
        log.log(
            note_level(decision),
            "order %s (%s by %s): %s",
            action.order_ref,
            type(action).__name__,
            action.operator,
            note,
        )
