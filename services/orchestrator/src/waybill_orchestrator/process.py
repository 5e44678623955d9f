"""The order-to-ship state machine: ``transition(state, happening, policy) -> Decision``.

Pure: no clock, no I/O. The caller says when (``happening.at``), stores the
new state, then sends ``decision.messages``. Events arriving late or twice
never move an order backwards; they are ignored with a note saying why.
"""

from __future__ import annotations

import msgspec

from waybill_contracts import order_ref_of as contracts_order_ref_of
from waybill_contracts.events import (
    DeliveryRecordedInOdoo,
    Event,
    MilestoneReached,
    OrderCancelled,
    OrderReleased,
    ShipmentBooked,
    ShipmentBookingFailed,
    ShipmentRecordedInOdoo,
    ShipmentVoided,
    ShipmentVoidRefused,
    WarehouseOrderAccepted,
    WarehouseOrderCancelled,
    WarehouseOrderCancelRefused,
    WarehouseOrderPacked,
    WarehouseOrderPicked,
    WarehouseOrderShortPicked,
)
from waybill_orchestrator import instructions, operator_actions, shipping
from waybill_orchestrator.changes import (
    BOOKING_FAILED,
    PICKING_NOT_VALIDATED,
    SHIPS_PICKED,
    SHORT_PICK,
    WAREHOUSE_CANCELLED,
    DeadlineCheck,
    Decision,
    Happening,
    NotYet,
    Observed,
    Policy,
    Problem,
    Requested,
    flag,
    hold,
    ignore,
    move,
    then,
    update,
)
from waybill_orchestrator.compensation import (
    cancel,
    check_deadline,
    confirm,
    void_refused,
    warehouse_refused,
)
from waybill_orchestrator.stages import Stage, handed_to_carrier
from waybill_orchestrator.state import OrderState

__all__ = [
    "HANDLED_EVENTS",
    "DeadlineCheck",
    "Decision",
    "Happening",
    "NotYet",
    "Observed",
    "Policy",
    "order_ref_of",
    "transition",
]

HANDLED_EVENTS: tuple[type[Event], ...] = (
    OrderReleased,
    OrderCancelled,
    WarehouseOrderAccepted,
    WarehouseOrderPicked,
    WarehouseOrderShortPicked,
    WarehouseOrderPacked,
    WarehouseOrderCancelled,
    WarehouseOrderCancelRefused,
    ShipmentBooked,
    ShipmentBookingFailed,
    ShipmentVoided,
    ShipmentVoidRefused,
    ShipmentRecordedInOdoo,
    MilestoneReached,
    DeliveryRecordedInOdoo,
)
"""The events that drive an order.

``WarehouseOrderShipped`` is not among them: the orchestrator's shipped stage
is Odoo holding the booked shipment, and a cancellation after the goods left
the warehouse learns it from the warehouse's refusal
(``WarehouseOrderCancelRefused``)."""

_IN_WAREHOUSE = (Stage.IN_WAREHOUSE, Stage.ACCEPTED, Stage.PICKED)


def order_ref_of(event: Event) -> str:
    """The order an event is about; every event the orchestrator handles concerns one."""
    ref = contracts_order_ref_of(event)
    if ref is None:
        raise TypeError(f"{type(event).__name__} does not concern one order")
    return ref


def transition(state: OrderState | None, happening: Happening, policy: Policy) -> Decision:
    """What ``happening`` does to an order in ``state`` (None: never seen).

    Raises :class:`NotYet` for a fact about an order (or a shipment) this
    process has not seen yet, so the caller can ask again later.
    """
    if isinstance(happening, DeadlineCheck):
        if state is None:
            return ignore(None, "no such order")
        return check_deadline(state, happening, policy)
    if isinstance(happening, Requested):
        return operator_actions.act(state, happening, policy)
    event = happening.event
    if isinstance(event, OrderReleased):
        return _released(state, happening, event, policy)
    if isinstance(event, OrderCancelled):
        return cancel(state, happening, event, policy)
    if state is None:
        raise NotYet(f"order {order_ref_of(event)} has not been released here (yet)")
    if state.stage != Stage.HELD:
        return _advance(state, state.stage, happening, policy)
    held = state.hold
    assert held is not None
    repeated_failure = held.code == BOOKING_FAILED and isinstance(event, ShipmentBookingFailed)
    if held.resumable and not repeated_failure:
        # The fact the order was held waiting for may have come after all: go on from there.
        return _advance(state, held.held_from, happening, policy)
    return _record_while_held(state, happening, policy)


def _record_while_held(state: OrderState, observed: Observed, policy: Policy) -> Decision:
    """Keep the facts a later cancellation (or the person) needs; move nowhere until a person
    decides. A label the carrier will not void is raised for ops all the same."""
    assert state.hold is not None
    event = observed.event
    if isinstance(event, WarehouseOrderCancelled) and not state.warehouse_cancelled:
        return update(
            state, observed, note="warehouse cancelled the held order", warehouse_cancelled=True
        )
    if isinstance(event, ShipmentBooked) and state.shipment is None:
        return update(
            state, observed, note="label bought for the held order", shipment=event.shipment
        )
    cancellation = state.cancellation
    if (
        isinstance(event, ShipmentVoided)
        and cancellation is not None
        and event.shipment_id not in cancellation.voided
    ):
        voided = msgspec.structs.replace(
            cancellation, awaiting_void=False, voided=(*cancellation.voided, event.shipment_id)
        )
        return update(state, observed, note="label voided for the held order", cancellation=voided)
    if isinstance(event, ShipmentVoidRefused):
        return void_refused(state, observed, event, policy)
    if isinstance(event, WarehouseOrderCancelRefused):
        return warehouse_refused(state, observed, event, policy)
    return ignore(state, f"held for {state.hold.code}: waiting for a person")


def _released(
    state: OrderState | None, observed: Observed, event: OrderReleased, policy: Policy
) -> Decision:
    if state is not None:
        return ignore(state, f"already known (stage {state.stage})")
    order = event.order
    first = OrderState(
        order_ref=order.ref,
        stage=Stage.IN_WAREHOUSE,
        order=order,
        odoo_picking_id=order.odoo_picking_id,
        odoo_sale_order_id=order.odoo_sale_order_id,
        created_at=observed.at,
        updated_at=observed.at,
        stage_since=observed.at,
        lane=observed.context.lane,
    )
    started = move(first, Stage.IN_WAREHOUSE, observed, policy, note="released in Odoo")
    assert started.state is not None
    # The first step comes from nowhere: there was no stage before the release.
    step = msgspec.structs.replace(started.state.timeline[0], from_stage=None)
    created = msgspec.structs.replace(started.state, timeline=(step,))
    return Decision(
        state=created,
        messages=(instructions.release(created),),
        notes=started.notes,
        changed=True,
    )


def _advance(state: OrderState, at: Stage, observed: Observed, policy: Policy) -> Decision:
    """Apply a fact to an order whose process stands at stage ``at``."""
    event = observed.event
    if isinstance(event, WarehouseOrderAccepted):
        if at != Stage.IN_WAREHOUSE:
            return ignore(state, f"accepted comes late (stage {at})")
        return move(
            state,
            Stage.ACCEPTED,
            observed,
            policy,
            warehouse_order_id=event.warehouse_order_id,
        )
    if isinstance(event, WarehouseOrderPicked):
        if at not in (Stage.IN_WAREHOUSE, Stage.ACCEPTED):
            return ignore(state, f"picked comes late (stage {at})")
        return move(
            state,
            Stage.PICKED,
            observed,
            policy,
            warehouse_order_id=event.warehouse_order_id,
            picked_lines=event.lines,
        )
    if isinstance(event, WarehouseOrderPacked):
        return _packed(state, at, observed, event, policy)
    if isinstance(event, WarehouseOrderShortPicked):
        return _short_picked(state, at, observed, event, policy)
    if isinstance(event, WarehouseOrderCancelled):
        return _warehouse_cancelled(state, at, observed, policy)
    if isinstance(event, ShipmentBooked):
        return shipping.booked(state, at, observed, event, policy)
    if isinstance(event, ShipmentBookingFailed):
        return shipping.booking_failed(state, at, observed, event, policy)
    if isinstance(event, WarehouseOrderCancelRefused):
        return warehouse_refused(state, observed, event, policy)
    if isinstance(event, ShipmentVoidRefused):
        return void_refused(state, observed, event, policy)
    if isinstance(event, ShipmentVoided):
        shipment = state.shipment
        if at != Stage.CANCELLING or shipment is None or shipment.shipment_id != event.shipment_id:
            return ignore(state, f"void of {event.shipment_id} not awaited")
        return confirm(state, observed, policy, awaiting_void=False)
    if isinstance(event, ShipmentRecordedInOdoo):
        if at != Stage.RECORDING:
            return ignore(state, f"shipment recorded in Odoo comes late (stage {at})")
        shipped = move(state, Stage.SHIPPED, observed, policy)
        assert shipped.state is not None
        if not event.picking_validated:
            # The gateway left it for a person (picked otherwise than demanded).
            problem = Problem(
                code=PICKING_NOT_VALIDATED,
                summary=f"Order {state.order_ref} shipped; its transfer in Odoo is not validated",
                detail="The warehouse picked other quantities than the demand (see the note on "
                "the transfer): validate it in Odoo and decide on a backorder.",
                stage=Stage.SHIPPED,
            )
            shipped = then(shipped, flag(shipped.state, problem, observed, policy))
        assert shipped.state is not None
        if shipped.state.delivered_at is None:
            return shipped
        # Delivered before Odoo had the shipment: record the delivery at once.
        return then(shipped, shipping.record_delivery(shipped.state, observed, policy))
    if isinstance(event, MilestoneReached):
        return shipping.milestone(state, at, observed, event, policy)
    if isinstance(event, DeliveryRecordedInOdoo):
        if at != Stage.RECORDING_DELIVERY:
            return ignore(state, f"delivery recorded in Odoo not awaited (stage {at})")
        return move(state, Stage.DELIVERED, observed, policy)
    return ignore(state, f"{type(event).__name__} does not drive orders")


def _packed(
    state: OrderState, at: Stage, observed: Observed, event: WarehouseOrderPacked, policy: Policy
) -> Decision:
    if at not in _IN_WAREHOUSE:
        return ignore(state, f"packed comes late (stage {at})")
    packed = msgspec.structs.replace(
        state,
        parcels=event.parcels,
        booking_attempt=1,
        warehouse_order_id=event.warehouse_order_id,
    )
    return move(
        packed,
        Stage.BOOKING,
        observed,
        policy,
        messages=(instructions.book(packed),),
        note=f"packed in {len(event.parcels)} parcel(s)",
    )


def _short_picked(
    state: OrderState,
    at: Stage,
    observed: Observed,
    event: WarehouseOrderShortPicked,
    policy: Policy,
) -> Decision:
    skus = ", ".join(
        f"{line.sku} ({line.fulfilled.value} of {line.ordered.value})" for line in event.shortages
    )
    if at in (Stage.CANCELLING, Stage.CANCELLED):
        return ignore(state, "short pick of a cancelled order")
    if policy.ship_picked:
        # What was picked ships; Odoo keeps a backorder for the rest. Operations hear
        # of it, nobody has to decide.
        shipping = msgspec.structs.replace(state, ships_picked=True)
        problem = Problem(
            code=SHIPS_PICKED,
            summary=f"Order {state.order_ref} ships what was picked: {skus}",
            detail="The short-pick policy is ship_picked: the rest stays on a backorder in Odoo.",
            stage=at,
        )
        return flag(shipping, problem, observed, policy)
    if at in _IN_WAREHOUSE:
        problem = Problem(
            code=SHORT_PICK,
            summary=f"Order {state.order_ref} was picked short: {skus}",
            detail="The order is on hold until someone decides how to ship it.",
            stage=at,
        )
        return hold(state, problem, observed, policy, resumable=False)
    # Packed already: the parcels hold what was picked, so the order ships short.
    problem = Problem(
        code=SHORT_PICK,
        summary=f"Order {state.order_ref} ships short: {skus}",
        detail="The short pick was reported after packing; the shipment goes on.",
        stage=at,
    )
    return flag(state, problem, observed, policy)


def _warehouse_cancelled(
    state: OrderState, at: Stage, observed: Observed, policy: Policy
) -> Decision:
    if at == Stage.CANCELLING:
        return confirm(state, observed, policy, awaiting_warehouse=False)
    if at == Stage.CANCELLED or state.warehouse_cancelled:
        return ignore(state, "warehouse cancellation already known")
    if handed_to_carrier(at):
        return ignore(state, f"warehouse cancelled an order already shipped (stage {at})")
    problem = Problem(
        code=WAREHOUSE_CANCELLED,
        summary=f"The warehouse cancelled order {state.order_ref}",
        detail="It was not cancelled in Odoo: release it again or cancel it there.",
        stage=at,
    )
    return hold(state, problem, observed, policy, resumable=False, warehouse_cancelled=True)
