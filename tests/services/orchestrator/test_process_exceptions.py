"""The pure state machine off the happy path: cancellation and its compensations, holds
with their exception and Odoo note, booking retries, deadlines re-sent then escalated."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from tests.services.orchestrator.journey import (
    POLICY,
    REF,
    accepted,
    booked,
    booking_failed,
    cancel_refused,
    cancelled,
    late,
    names,
    observe,
    packed,
    picked,
    released,
    run,
    shipment_recorded,
    short_picked,
    step,
    void_refused,
    voided,
    warehouse_cancelled,
)
from waybill_contracts.commands import (
    BookShipment,
    CancelWarehouseOrder,
    PostExceptionInOdoo,
    PostNoteInOdoo,
    RecordShipmentInOdoo,
    ReleaseToWarehouse,
    VoidShipment,
)
from waybill_contracts.events import ExceptionRaised
from waybill_orchestrator.changes import DeadlineCheck, Policy
from waybill_orchestrator.instructions import shipment_id_for
from waybill_orchestrator.process import transition
from waybill_orchestrator.stages import Stage

# --- cancellation ---------------------------------------------------------------------


def test_cancel_before_booking_cancels_the_warehouse_order_then_notes_it_in_odoo() -> None:
    decision = step(run(released(), accepted()), cancelled(reason="duplicate order"))
    assert decision.state is not None and decision.state.stage == Stage.CANCELLING
    [command] = decision.messages
    assert isinstance(command, CancelWarehouseOrder)
    assert (command.order_ref, command.reason) == (REF, "duplicate order")
    done = step(decision.state, warehouse_cancelled())
    assert done.state is not None and done.state.stage == Stage.CANCELLED
    # A note for the record, no to-do: nothing is left for anyone to do.
    [note] = done.messages
    assert isinstance(note, PostNoteInOdoo)
    assert note.odoo_picking_id == released().order.odoo_picking_id
    assert note.note_id == f"cancel-{REF}"
    assert "cancelled" in note.text and note.text.endswith("Reason: duplicate order")


def test_cancel_after_booking_voids_the_label_with_the_booked_carrier_and_tracking() -> None:
    decision = step(run(released(), packed(), booked()), cancelled())
    assert names(decision.messages) == ["CancelWarehouseOrder", "VoidShipment"]
    void = decision.messages[1]
    assert isinstance(void, VoidShipment)
    shipment = booked().shipment
    assert (void.shipment_id, void.carrier, void.tracking_number) == (
        shipment.shipment_id,
        shipment.carrier,
        shipment.tracking_number,
    )
    assert decision.state is not None
    half = step(decision.state, voided())
    assert half.state is not None and half.state.stage == Stage.CANCELLING
    assert half.messages == ()
    done = step(half.state, warehouse_cancelled())
    assert done.state is not None and done.state.stage == Stage.CANCELLED
    [note] = done.messages
    assert isinstance(note, PostNoteInOdoo)
    assert shipment.tracking_number in note.text


def test_cancel_while_booking_voids_the_label_that_arrives_afterwards() -> None:
    cancelling = step(run(released(), packed()), cancelled()).state
    assert cancelling is not None and cancelling.cancellation is not None
    assert cancelling.cancellation.awaiting_booking
    after_wms = step(cancelling, warehouse_cancelled()).state
    assert after_wms is not None and after_wms.stage == Stage.CANCELLING
    label = step(after_wms, booked())
    assert names(label.messages) == ["VoidShipment"]
    assert label.state is not None
    done = step(label.state, voided())
    assert done.state is not None and done.state.stage == Stage.CANCELLED
    assert names(done.messages) == ["PostNoteInOdoo"]


def test_cancel_while_booking_completes_when_the_booking_fails() -> None:
    cancelling = run(released(), packed(), cancelled(), warehouse_cancelled())
    done = step(cancelling, booking_failed(retryable=True))
    assert done.state is not None and done.state.stage == Stage.CANCELLED
    assert names(done.messages) == ["PostNoteInOdoo"]


def test_cancel_before_the_release_was_seen_means_the_release_starts_nothing() -> None:
    state = run(cancelled())
    assert state.stage == Stage.CANCELLED and state.order is None
    decision = step(state, released())
    assert not decision.changed and decision.messages == ()


def test_cancel_after_shipping_is_too_late_and_raised_for_ops_once() -> None:
    shipped = run(released(), packed(), booked(), shipment_recorded())
    decision = step(shipped, cancelled())
    assert decision.state is not None and decision.state.stage == Stage.SHIPPED
    event, note = decision.messages
    assert isinstance(event, ExceptionRaised) and isinstance(note, PostExceptionInOdoo)
    assert event.code == "cancelled_after_shipping" and not event.order_held
    assert event.exception_id == note.exception_id
    assert not step(decision.state, cancelled()).changed


def test_cancel_of_an_order_the_warehouse_already_cancelled_completes_at_once() -> None:
    held = run(released(), accepted(), warehouse_cancelled())
    assert held.stage == Stage.HELD
    decision = step(held, cancelled())
    assert decision.state is not None and decision.state.stage == Stage.CANCELLED
    assert names(decision.messages) == ["PostNoteInOdoo"]


def test_a_cancel_the_warehouse_refuses_holds_the_order_for_a_person() -> None:
    cancelling = run(released(), packed(), booked(), cancelled())
    decision = step(cancelling, cancel_refused())
    state = decision.state
    assert state is not None and state.stage == Stage.HELD
    assert state.hold is not None and state.hold.held_from == Stage.CANCELLING
    assert not state.hold.resumable
    event, post = decision.messages
    assert isinstance(event, ExceptionRaised) and isinstance(post, PostExceptionInOdoo)
    assert (event.code, event.order_held, event.stage) == (
        "warehouse_cancel_refused",
        True,
        "cancelling",
    )
    assert "already shipped" in (event.detail or "")
    assert state.cancellation is not None and not state.cancellation.awaiting_warehouse
    # No deadline re-sends the refused cancel; the void still confirms while held.
    assert step(state, DeadlineCheck(at=state.updated_at + timedelta(days=1))).messages == ()
    confirmed = step(state, voided()).state
    assert confirmed is not None and confirmed.stage == Stage.HELD
    assert confirmed.cancellation is not None and not confirmed.cancellation.awaiting_void
    assert not step(confirmed, cancelled()).changed


def test_a_void_the_carrier_refuses_during_a_cancellation_holds_the_order() -> None:
    cancelling = run(released(), packed(), booked(), cancelled(), warehouse_cancelled())
    decision = step(cancelling, void_refused())
    assert decision.state is not None and decision.state.stage == Stage.HELD
    event, _post = decision.messages
    assert isinstance(event, ExceptionRaised)
    assert (event.code, event.order_held) == ("void_refused", True)
    assert booked().shipment.tracking_number in event.summary


def test_both_compensations_refused_raise_two_exceptions_and_hold_once() -> None:
    held = run(released(), packed(), booked(), cancelled(), cancel_refused())
    decision = step(held, void_refused())
    assert decision.state is not None and decision.state.stage == Stage.HELD
    assert decision.state.hold is not None
    assert decision.state.hold.code == "warehouse_cancel_refused"
    event, _post = decision.messages
    assert isinstance(event, ExceptionRaised) and event.code == "void_refused"
    assert not event.order_held  # held already, for the first refusal
    assert [e.code for e in decision.state.open_exceptions] == [
        "warehouse_cancel_refused",
        "void_refused",
    ]


def test_refusals_in_either_order_hold_once_and_raise_both() -> None:
    cancelling = run(released(), packed(), booked(), cancelled())
    first, second = (void_refused(), cancel_refused()), (cancel_refused(), void_refused())
    for refusals in (first, second):
        state = run(*refusals, state=cancelling)
        assert state.stage == Stage.HELD and state.hold is not None
        # Held by the first refusal; the second is raised beside it.
        held_for = "void_refused" if refusals is first else "warehouse_cancel_refused"
        assert state.hold.code == held_for
        assert {e.code for e in state.open_exceptions} == {
            "warehouse_cancel_refused",
            "void_refused",
        }
        assert state.cancellation is not None
        assert not state.cancellation.awaiting_warehouse
        assert not state.cancellation.awaiting_void


def test_a_refused_void_of_a_second_label_is_raised_and_the_order_goes_on() -> None:
    state = run(released(), packed(), booking_failed(retryable=True), booked(attempt=2))
    extra = step(state, booked(attempt=1, tracking="EXTRA1")).state
    assert extra is not None
    decision = step(extra, void_refused(attempt=1))
    assert decision.state is not None and decision.state.stage == Stage.RECORDING
    event, _post = decision.messages
    assert isinstance(event, ExceptionRaised)
    assert (event.code, event.order_held) == ("void_refused", False)


def test_a_transfer_odoo_left_unvalidated_is_raised_and_the_order_ships_on() -> None:
    decision = step(run(released(), packed(), booked()), shipment_recorded(validated=False))
    assert decision.state is not None and decision.state.stage == Stage.SHIPPED
    event, post = decision.messages
    assert isinstance(event, ExceptionRaised) and isinstance(post, PostExceptionInOdoo)
    assert (event.code, event.order_held) == ("picking_not_validated", False)


# --- holds ----------------------------------------------------------------------------


def test_short_pick_holds_the_order_with_an_exception_and_an_odoo_activity() -> None:
    decision = step(run(released(), accepted()), short_picked(), minutes=12)
    state = decision.state
    assert state is not None and state.stage == Stage.HELD
    assert state.hold is not None and state.hold.held_from == Stage.ACCEPTED
    event, note = decision.messages
    assert isinstance(event, ExceptionRaised) and isinstance(note, PostExceptionInOdoo)
    assert (event.code, event.order_held, event.stage) == ("short_pick", True, "accepted")
    assert "TEA-EARL" in event.summary
    assert event.exception_id == note.exception_id == f"exc-{REF}-1"
    assert note.assignee_login == POLICY.ops_assignee_login
    assert note.odoo_sale_order_id == released().order.odoo_sale_order_id
    assert [e.summary for e in state.open_exceptions] == [event.summary]
    # Held for a person: the warehouse going on does not move it.
    assert not step(state, packed()).changed


def test_short_pick_under_ship_picked_goes_on_and_records_with_a_backorder() -> None:
    ship_picked = dataclasses.replace(POLICY, ship_picked=True)
    state = run(released(), accepted())
    decision = transition(state, observe(short_picked(), 12), ship_picked)
    after = decision.state
    assert after is not None and after.stage == Stage.ACCEPTED and after.hold is None
    assert after.ships_picked is True
    [event, note] = decision.messages
    assert isinstance(event, ExceptionRaised) and isinstance(note, PostExceptionInOdoo)
    assert (event.code, event.order_held) == ("ships_picked", False)
    # The warehouse goes on: packed, booked, and Odoo is told to keep a backorder.
    packed_state = transition(after, observe(packed(), 13), ship_picked).state
    assert packed_state is not None and packed_state.stage == Stage.BOOKING
    recording = transition(packed_state, observe(booked(), 14), ship_picked)
    [record] = [m for m in recording.messages if isinstance(m, RecordShipmentInOdoo)]
    assert record.ship_picked is True
    # The hold policy (the default) records without it.
    held_policy = transition(run(released(), packed()), observe(booked(), 2), POLICY)
    [default] = [m for m in held_policy.messages if isinstance(m, RecordShipmentInOdoo)]
    assert default.ship_picked is False


def test_booking_failure_that_may_pass_books_again_under_a_new_shipment_id() -> None:
    decision = step(run(released(), packed()), booking_failed(retryable=True))
    command, note = decision.messages
    assert isinstance(command, BookShipment)
    assert command.shipment_id == shipment_id_for(REF, 2) != shipment_id_for(REF, 1)
    # People in Odoo see why the label is late; nobody has to act yet.
    assert isinstance(note, PostNoteInOdoo)
    assert note.note_id == f"rebook-{shipment_id_for(REF, 1)}"
    assert "failed" in note.text and "attempt 2 of 2" in note.text
    assert decision.state is not None and decision.state.stage == Stage.BOOKING
    # The first attempt's failure, repeated, is not the current booking any more.
    assert not step(decision.state, booking_failed(retryable=True)).changed
    final = step(decision.state, booking_failed(retryable=True, attempt=2))
    assert final.state is not None and final.state.stage == Stage.HELD
    assert names(final.messages) == ["ExceptionRaised", "PostExceptionInOdoo"]


def test_booking_failure_for_good_holds_the_order() -> None:
    decision = step(run(released(), packed()), booking_failed(retryable=False))
    assert decision.state is not None and decision.state.stage == Stage.HELD
    event = decision.messages[0]
    assert isinstance(event, ExceptionRaised)
    assert (event.code, event.order_held) == ("booking_failed", True)


def test_a_second_label_for_one_order_is_voided_and_the_first_kept() -> None:
    state = run(released(), packed(), booking_failed(retryable=True), booked(attempt=2))
    extra = booked(attempt=1, tracking="EXTRA1")
    decision = step(state, extra)
    [void] = decision.messages
    assert isinstance(void, VoidShipment) and void.tracking_number == "EXTRA1"
    assert decision.state is not None
    assert decision.state.shipment == booked(attempt=2).shipment


# --- deadlines ------------------------------------------------------------------------


def test_deadline_not_passed_changes_nothing() -> None:
    state = run(released())
    assert state.deadline_at == state.stage_since + timedelta(seconds=60)
    assert not step(state, DeadlineCheck(at=state.deadline_at - timedelta(seconds=1))).changed


def test_first_deadline_resends_the_same_command_then_the_second_escalates() -> None:
    state = run(released())
    first = step(state, late(state))
    [again] = first.messages
    assert isinstance(again, ReleaseToWarehouse) and again.business_key() == REF
    assert first.state is not None
    assert first.state.stage == Stage.IN_WAREHOUSE and first.state.deadline_resends == 1
    assert first.state.timeline[-1].cause_type == "deadline"
    assert first.state.deadline_at is not None and first.state.deadline_at > late(state).at
    second = step(first.state, late(first.state))
    assert second.state is not None and second.state.stage == Stage.HELD
    event, note = second.messages
    assert isinstance(event, ExceptionRaised) and isinstance(note, PostExceptionInOdoo)
    assert (event.code, event.order_held) == ("deadline_in_warehouse", True)


def test_each_stage_gets_its_own_deadline_from_the_policy() -> None:
    state = run(released(), accepted(), picked())
    assert state.deadline_at == state.stage_since + timedelta(seconds=60)
    assert run(released(), packed(), booked(), shipment_recorded()).deadline_at is None


def test_the_awaited_fact_arriving_after_escalation_releases_the_hold() -> None:
    state = run(released(), packed(), booked())
    resent = step(state, late(state))
    assert names(resent.messages) == ["RecordShipmentInOdoo"]
    assert isinstance(resent.messages[0], RecordShipmentInOdoo)
    assert resent.state is not None
    held = step(resent.state, late(resent.state)).state
    assert held is not None and held.stage == Stage.HELD and held.open_exceptions
    decision = step(held, shipment_recorded())
    assert decision.state is not None and decision.state.stage == Stage.SHIPPED
    assert decision.state.hold is None and decision.state.open_exceptions == ()


@pytest.mark.parametrize("deadlines", [{}, {Stage.BOOKING: 5.0}])
def test_stages_without_a_deadline_have_none(deadlines: dict[Stage, float]) -> None:
    state = transition(None, observe(released()), Policy(deadlines_s=deadlines)).state
    assert state is not None and state.deadline_at is None
