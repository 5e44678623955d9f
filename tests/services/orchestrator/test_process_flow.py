"""The pure state machine along the happy path: commands built right, stages forward only,
duplicates and late events harmless, every transition on the timeline."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from tests.services.orchestrator.journey import (
    POLICY,
    REF,
    T0,
    accepted,
    at,
    booked,
    delivery_recorded,
    happy_path,
    milestone,
    names,
    observe,
    packed,
    picked,
    released,
    run,
    shipment_recorded,
    step,
)
from waybill_contracts.commands import (
    BookShipment,
    RecordDeliveryInOdoo,
    RecordShipmentInOdoo,
    ReleaseToWarehouse,
)
from waybill_contracts.events import Event
from waybill_contracts.model import FulfilledLine, MilestoneCode, ParcelItem, Quantity
from waybill_orchestrator.changes import DeadlineCheck, NotYet
from waybill_orchestrator.instructions import shipment_id_for
from waybill_orchestrator.process import order_ref_of, transition
from waybill_orchestrator.stages import MAIN_LINE, Stage, rank
from waybill_orchestrator.state import decode_state, encode_state

HAPPY_STAGES = [
    (Stage.IN_WAREHOUSE, ["ReleaseToWarehouse"]),
    (Stage.ACCEPTED, []),
    (Stage.PICKED, []),
    (Stage.BOOKING, ["BookShipment"]),
    (Stage.RECORDING, ["RecordShipmentInOdoo"]),
    (Stage.SHIPPED, []),
    (Stage.SHIPPED, []),
    (Stage.RECORDING_DELIVERY, ["RecordDeliveryInOdoo"]),
    (Stage.DELIVERED, []),
]


def test_happy_path_moves_through_every_stage_sending_each_command_once() -> None:
    state = None
    for event, (stage, sent) in zip(happy_path(), HAPPY_STAGES, strict=True):
        decision = step(state, event)
        assert decision.changed, type(event).__name__
        state = decision.state
        assert state is not None
        assert (state.stage, names(decision.messages)) == (stage, sent), type(event).__name__


def test_release_to_warehouse_carries_the_released_order() -> None:
    event = released()
    decision = step(None, event)
    [command] = decision.messages
    assert isinstance(command, ReleaseToWarehouse)
    assert command.order == event.order


def test_book_shipment_is_built_from_the_order_and_the_packed_parcels() -> None:
    order = released().order
    decision = step(run(released(), accepted(), picked()), packed())
    [command] = decision.messages
    assert isinstance(command, BookShipment)
    assert command.shipment_id == "shp-WH-OUT-00042-1" == shipment_id_for(REF, 1)
    assert command.order_ref == REF
    assert command.recipient == order.customer
    assert command.ship_to == order.ship_to
    assert command.service_level == order.service_level
    assert command.deliver_by == order.promised_at
    assert command.warehouse == order.warehouse
    assert command.parcels == packed().parcels
    # What the customer chose in Odoo, for the router's rules.
    assert command.delivery_method == order.delivery_method is not None


def test_record_shipment_carries_the_booked_shipment_and_packed_weight() -> None:
    event = booked()
    decision = step(run(released(), packed()), event)
    [command] = decision.messages
    assert isinstance(command, RecordShipmentInOdoo)
    assert command.shipment == event.shipment
    assert command.odoo_picking_id == released().order.odoo_picking_id
    assert command.shipping_weight_kg == pytest.approx(sum(p.weight_kg for p in packed().parcels))


def _units(value: str) -> Quantity:
    return Quantity(value=Decimal(value), uom="Units")


def _lines(command: object) -> list[tuple[str, str, int | None]]:
    assert isinstance(command, RecordShipmentInOdoo)
    return [(line.sku, str(line.quantity.value), line.odoo_move_id) for line in command.lines]


def _record_command(*events: Event) -> RecordShipmentInOdoo:
    [command] = step(run(*events), booked()).messages
    assert isinstance(command, RecordShipmentInOdoo)
    return command


def test_record_shipment_ships_what_was_packed_per_order_line() -> None:
    # The example parcel holds the whole order: MUG-BLUE 2 (move 101), TEA-EARL 1 (move 102).
    command = _record_command(released(), accepted(), picked(), packed())
    assert _lines(command) == [("MUG-BLUE", "2", 101), ("TEA-EARL", "1", 102)]


def test_record_shipment_ships_what_the_parcels_hold_when_packed_short() -> None:
    short_parcel = msgspec.structs.replace(
        packed().parcels[0], contents=(ParcelItem(sku="MUG-BLUE", quantity=_units("1")),)
    )
    short = msgspec.structs.replace(packed(), parcels=(short_parcel,))
    command = _record_command(released(), accepted(), picked(), short)
    assert _lines(command) == [("MUG-BLUE", "1", 101), ("TEA-EARL", "0", 102)]


def test_without_parcel_contents_the_picked_lines_say_what_ships() -> None:
    bare = msgspec.structs.replace(packed().parcels[0], contents=())
    short_pick = msgspec.structs.replace(
        picked(),
        lines=(
            FulfilledLine(sku="MUG-BLUE", ordered=_units("2"), fulfilled=_units("2")),
            FulfilledLine(sku="TEA-EARL", ordered=_units("1"), fulfilled=_units("0")),
        ),
    )
    no_contents = msgspec.structs.replace(packed(), parcels=(bare,))
    command = _record_command(released(), accepted(), short_pick, no_contents)
    assert _lines(command) == [("MUG-BLUE", "2", 101), ("TEA-EARL", "0", 102)]
    # Neither contents nor a picked report: not known, the whole demand ships.
    assert _record_command(released(), no_contents).lines == ()


def test_one_sku_on_two_order_lines_fills_them_in_order_the_last_taking_the_rest() -> None:
    order = released().order
    mugs = order.lines[0]
    twice = msgspec.structs.replace(
        order, lines=(mugs, msgspec.structs.replace(mugs, odoo_move_id=103))
    )
    three = msgspec.structs.replace(
        packed().parcels[0], contents=(ParcelItem(sku="MUG-BLUE", quantity=_units("3")),)
    )
    command = _record_command(
        msgspec.structs.replace(released(), order=twice),
        msgspec.structs.replace(packed(), parcels=(three,)),
    )
    assert _lines(command) == [("MUG-BLUE", "2", 101), ("MUG-BLUE", "1", 103)]


def test_delivered_milestone_records_the_delivery_with_the_carriers_time() -> None:
    state = run(released(), packed(), booked(), shipment_recorded())
    decision = step(state, milestone(MilestoneCode.DELIVERED, 58))
    [command] = decision.messages
    assert isinstance(command, RecordDeliveryInOdoo)
    assert command.delivered_at == at(58)
    assert command.tracking_number == booked().shipment.tracking_number
    assert command.shipment_id == shipment_id_for(REF, 1)


def test_every_event_of_the_journey_repeated_changes_nothing() -> None:
    state = None
    for event in happy_path():
        state = step(state, event).state
        again = step(state, event)
        assert not again.changed, type(event).__name__
        assert again.messages == ()
        assert again.state == state
        assert again.notes  # says why it was ignored


@pytest.mark.parametrize("position", range(1, len(happy_path())))
def test_no_earlier_event_moves_an_order_backwards(position: int) -> None:
    events = happy_path()
    state = run(*events[: position + 1])
    for earlier in events[:position]:
        decision = step(state, earlier)
        assert decision.messages == ()
        assert decision.state is not None
        assert rank(decision.state.stage) >= rank(state.stage)


def test_picked_after_packed_is_ignored() -> None:
    state = run(released(), accepted(), packed())
    decision = step(state, picked())
    assert (decision.changed, decision.state) == (False, state)


def test_packed_before_accepted_and_picked_goes_straight_to_booking() -> None:
    decision = step(run(released()), packed())
    assert decision.state is not None and decision.state.stage == Stage.BOOKING
    assert names(decision.messages) == ["BookShipment"]


def test_delivered_before_odoo_recorded_the_shipment_records_the_delivery_right_after() -> None:
    state = run(released(), packed(), booked())
    noted = step(state, milestone(MilestoneCode.DELIVERED, 58))
    assert noted.messages == () and noted.state is not None
    assert noted.state.stage == Stage.RECORDING
    decision = step(noted.state, shipment_recorded())
    assert decision.state is not None
    assert decision.state.stage == Stage.RECORDING_DELIVERY
    assert names(decision.messages) == ["RecordDeliveryInOdoo"]
    assert [s.to_stage for s in decision.state.timeline[-2:]] == [
        Stage.SHIPPED,
        Stage.RECORDING_DELIVERY,
    ]


def test_an_older_milestone_does_not_replace_a_newer_one() -> None:
    state = run(released(), packed(), booked(), shipment_recorded())
    state = run(milestone(MilestoneCode.OUT_FOR_DELIVERY, 55), state=state)
    decision = step(state, milestone(MilestoneCode.IN_TRANSIT, 50))
    assert not decision.changed
    assert state.last_milestone is not None
    assert state.last_milestone.code == MilestoneCode.OUT_FOR_DELIVERY


def test_milestone_before_its_booking_was_seen_is_asked_again_later() -> None:
    with pytest.raises(NotYet):
        step(run(released(), packed()), milestone(MilestoneCode.IN_TRANSIT, 21))


def test_label_created_of_the_booking_under_way_is_settled_its_booking_follows() -> None:
    booking = run(released(), packed())
    decision = step(booking, milestone(MilestoneCode.LABEL_CREATED, 21))
    assert not decision.changed and decision.state == booking and decision.messages == ()
    assert decision.notes == ("label_created of shp-WH-OUT-00042-1: its ShipmentBooked follows",)
    # Another attempt's label (not the booking under way) is asked again later.
    with pytest.raises(NotYet):
        step(booking, milestone(MilestoneCode.LABEL_CREATED, 21, attempt=2))
    # The booking then moves the order on as ever; the next scan is its last milestone.
    recording = run(booked(), milestone(MilestoneCode.IN_TRANSIT, 30), state=booking)
    assert recording.stage == Stage.RECORDING and recording.shipment is not None
    assert recording.last_milestone is not None
    assert recording.last_milestone.code == MilestoneCode.IN_TRANSIT


@pytest.mark.parametrize(
    "event", [accepted(), packed(), booked(), shipment_recorded(), delivery_recorded()]
)
def test_event_for_an_order_never_released_is_asked_again_later(event: object) -> None:
    with pytest.raises(NotYet, match=REF):
        step(None, event)  # type: ignore[arg-type]


def test_deadline_check_of_an_unknown_order_changes_nothing() -> None:
    assert not step(None, DeadlineCheck(at=T0)).changed


def test_timeline_records_each_transition_with_its_time_and_cause() -> None:
    state = None
    observed = []
    for minute, event in enumerate(happy_path()):
        happening = observe(event, minutes=minute)
        observed.append(happening)
        state = transition(state, happening, POLICY).state
    assert state is not None
    moves = [(s.from_stage, s.to_stage) for s in state.timeline]
    assert moves == [
        (None, Stage.IN_WAREHOUSE),
        (Stage.IN_WAREHOUSE, Stage.ACCEPTED),
        (Stage.ACCEPTED, Stage.PICKED),
        (Stage.PICKED, Stage.BOOKING),
        (Stage.BOOKING, Stage.RECORDING),
        (Stage.RECORDING, Stage.SHIPPED),
        (Stage.SHIPPED, Stage.RECORDING_DELIVERY),
        (Stage.RECORDING_DELIVERY, Stage.DELIVERED),
    ]
    causes = [s.cause_id for s in state.timeline]
    expected = [observed[i].context.id for i in (0, 1, 2, 3, 4, 5, 7, 8)]
    assert causes == expected
    assert [s.at for s in state.timeline] == [at(i) for i in (0, 1, 2, 3, 4, 5, 7, 8)]
    assert all(s.cause_type.startswith("io.waybill.") for s in state.timeline)


def test_every_main_line_stage_is_reached_on_the_happy_path() -> None:
    reached = {stage for stage, _ in HAPPY_STAGES}
    assert reached == set(MAIN_LINE)


def test_state_survives_the_round_trip_through_the_bucket_encoding() -> None:
    state = run(*happy_path())
    assert decode_state(encode_state(state)) == state


def test_order_ref_is_found_in_every_handled_event() -> None:
    assert {order_ref_of(event) for event in happy_path()} == {REF}
