"""Operator actions in the state machine: each fits only some states, is applied once per
action id, and names the operator in the order's timeline."""

from __future__ import annotations

from tests.services.orchestrator.journey import (
    POLICY,
    REF,
    accepted,
    at,
    booked,
    booking_failed,
    packed,
    picked,
    released,
    run,
)
from waybill_contracts import new_context
from waybill_contracts.commands import (
    BookShipment,
    PostNoteInOdoo,
    ReleaseToWarehouse,
    VoidShipment,
)
from waybill_contracts.operations import (
    CancelOrderShipment,
    OrderAction,
    ReleaseHeldOrder,
    ResolveException,
    RetryOrderStage,
)
from waybill_orchestrator.changes import Decision, Requested
from waybill_orchestrator.instructions import shipment_id_for
from waybill_orchestrator.process import transition
from waybill_orchestrator.stages import Stage
from waybill_orchestrator.state import OrderState


def act(state: OrderState, action: OrderAction, minutes: float = 30.0) -> Decision:
    context = new_context(action, source="auditor")
    return transition(state, Requested(command=action, context=context, at=at(minutes)), POLICY)


def held() -> OrderState:
    state = run(released(), accepted(), picked(), packed(), booking_failed(retryable=False))
    assert state.stage == Stage.HELD
    return state


def test_a_retry_sends_the_stage_command_again_and_names_the_operator() -> None:
    state = run(released())
    decision = act(state, RetryOrderStage(action_id="a1", operator="dana", order_ref=REF))
    assert [type(m) for m in decision.messages] == [ReleaseToWarehouse]
    assert decision.state is not None
    assert decision.state.timeline[-1].note == "RetryOrderStage by dana"
    # The same click delivered again changes nothing.
    again = act(decision.state, RetryOrderStage(action_id="a1", operator="dana", order_ref=REF))
    assert not again.changed and again.messages == ()


def test_a_held_order_is_released_to_a_new_booking_not_retried() -> None:
    state = held()
    refused = act(state, RetryOrderStage(action_id="a1", operator="dana", order_ref=REF))
    assert not refused.changed
    decision = act(state, ReleaseHeldOrder(action_id="a2", operator="dana", order_ref=REF))
    assert decision.state is not None and decision.state.stage == Stage.BOOKING
    assert decision.state.hold is None and decision.state.open_exceptions == ()
    (booking,) = decision.messages
    assert isinstance(booking, BookShipment)
    assert booking.shipment_id == shipment_id_for(REF, 2)
    assert decision.state.timeline[-1].from_stage == Stage.HELD


def test_releasing_an_order_that_is_not_held_changes_nothing() -> None:
    state = run(released())
    assert not act(state, ReleaseHeldOrder(action_id="a", operator="x", order_ref=REF)).changed


def test_resolving_the_holding_exception_releases_the_order_and_notes_it_in_odoo() -> None:
    state = held()
    (exception,) = state.open_exceptions
    decision = act(
        state,
        ResolveException(
            action_id="a3",
            operator="lee",
            order_ref=REF,
            exception_id=exception.exception_id,
            note="carrier B is back",
        ),
    )
    assert decision.state is not None and decision.state.stage == Stage.BOOKING
    note = decision.messages[-1]
    assert isinstance(note, PostNoteInOdoo)
    assert note.text == f"Exception {exception.exception_id} resolved by lee: carrier B is back"
    unknown = act(
        decision.state,
        ResolveException(
            action_id="a4", operator="lee", order_ref=REF, exception_id="nope", note="x"
        ),
    )
    assert not unknown.changed


def test_a_cancelled_shipment_is_not_cancelled_twice() -> None:
    state = run(released(), accepted(), picked(), packed(), booked())
    first = act(state, CancelOrderShipment(action_id="c1", operator="lee", order_ref=REF))
    assert first.state is not None and first.state.stage == Stage.HELD
    assert isinstance(first.messages[0], VoidShipment)
    again = act(first.state, CancelOrderShipment(action_id="c2", operator="lee", order_ref=REF))
    assert not again.changed
