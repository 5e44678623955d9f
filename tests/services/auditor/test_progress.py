"""An order's stage from its messages: each message's step, any arrival order, holds, cancels."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from tests.services.auditor.journey import T0, for_order, milestone
from waybill_auditor.progress import (
    REACHES,
    Observation,
    OrderFacts,
    derive,
    merge,
    observe,
    settle,
)
from waybill_auditor.stages import MAIN_LINE, Stage, rank
from waybill_contracts import Message, order_ref_of
from waybill_contracts.commands import (
    BookShipment,
    CancelWarehouseOrder,
    RecordDeliveryInOdoo,
    RecordShipmentInOdoo,
    ReleaseToWarehouse,
    SyncProducts,
    VoidShipment,
)
from waybill_contracts.events import (
    DeliveryRecordedInOdoo,
    ExceptionRaised,
    MilestoneReached,
    NotificationSent,
    OrderCancelled,
    OrderReleased,
    ProductsChanged,
    ShipmentBooked,
    ShipmentRecordedInOdoo,
    ShipmentVoided,
    WarehouseOrderAccepted,
    WarehouseOrderCancelled,
    WarehouseOrderCancelRefused,
    WarehouseOrderPacked,
    WarehouseOrderPicked,
)
from waybill_contracts.model import MilestoneCode

REF = "WH/OUT/00042"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def happy_path(ref: str = REF) -> list[tuple[Message, datetime]]:
    """One order from release to delivery, each message a minute after the one before."""
    messages: list[Message] = [
        for_order(OrderReleased, ref),
        for_order(ReleaseToWarehouse, ref),
        for_order(WarehouseOrderAccepted, ref),
        for_order(WarehouseOrderPicked, ref),
        for_order(WarehouseOrderPacked, ref),
        for_order(BookShipment, ref),
        for_order(ShipmentBooked, ref),
        for_order(RecordShipmentInOdoo, ref),
        for_order(ShipmentRecordedInOdoo, ref),
        for_order(MilestoneReached, ref, milestone=milestone(MilestoneCode.IN_TRANSIT)),
        for_order(MilestoneReached, ref, milestone=milestone(MilestoneCode.DELIVERED)),
        for_order(RecordDeliveryInOdoo, ref),
        for_order(DeliveryRecordedInOdoo, ref),
    ]
    return [(message, at(minute)) for minute, message in enumerate(messages)]


def fold(steps: Sequence[tuple[Message, datetime]]) -> OrderFacts:
    facts = OrderFacts()
    for message, moment in steps:
        facts = merge(facts, observe(message, moment))
    return facts


def stages_along(steps: Sequence[tuple[Message, datetime]]) -> list[Stage]:
    facts, seen = OrderFacts(), []
    for message, moment in steps:
        facts = merge(facts, observe(message, moment))
        seen.append(derive(facts)[0])
    return seen


def test_each_step_of_the_happy_path_reaches_the_next_main_line_stage() -> None:
    stages = stages_along(happy_path())

    assert stages == [
        Stage.RELEASED,
        Stage.IN_WAREHOUSE,
        Stage.ACCEPTED,
        Stage.PICKED,
        Stage.PACKED,
        Stage.BOOKING,
        Stage.BOOKED,
        Stage.RECORDING,
        Stage.SHIPPED,
        Stage.SHIPPED,  # in transit: still shipped
        Stage.RECORDING_DELIVERY,  # the carrier delivered; Odoo not told yet
        Stage.RECORDING_DELIVERY,
        Stage.DELIVERED,
    ]


def test_every_main_line_stage_is_reached_by_exactly_one_message_type() -> None:
    reached = sorted(REACHES.values(), key=rank)

    assert reached == list(MAIN_LINE)


def test_a_delivered_order_is_delivered_since_odoo_confirmed_it() -> None:
    steps = happy_path()

    assert derive(fold(steps)) == (Stage.DELIVERED, steps[-1][1])


@pytest.mark.parametrize("seed", range(50))
def test_any_arrival_order_gives_the_same_stage_and_since(seed: int) -> None:
    steps = happy_path()[:9]  # up to shipped
    shuffled = list(steps)
    random.Random(seed).shuffle(shuffled)

    assert derive(fold(shuffled)) == derive(fold(steps)) == (Stage.SHIPPED, at(8))


@pytest.mark.parametrize("seed", range(50))
def test_a_late_message_never_moves_the_order_backwards(seed: int) -> None:
    shuffled = happy_path()
    random.Random(seed).shuffle(shuffled)

    # An in-transit milestone first places the order nowhere yet (unknown).
    ranks = [rank(s) if s is not Stage.UNKNOWN else -1 for s in stages_along(shuffled)]

    assert ranks == sorted(ranks)
    assert ranks[-1] == rank(Stage.DELIVERED)


def test_a_command_sent_again_does_not_restart_the_stage_clock() -> None:
    steps = happy_path()[:6]  # booking at minute 5
    resent = (for_order(BookShipment, REF), at(30))

    assert derive(fold([*steps, resent])) == (Stage.BOOKING, at(5))


def held(ref: str = REF, *, held: bool = True) -> ExceptionRaised:
    return for_order(ExceptionRaised, ref, order_held=held)


def test_an_order_held_after_its_last_step_is_held_since_the_exception() -> None:
    steps = [*happy_path()[:6], (held(), at(20))]

    assert derive(fold(steps)) == (Stage.HELD, at(20))


def test_an_exception_that_does_not_hold_the_order_leaves_its_stage() -> None:
    steps = [*happy_path()[:6], (held(held=False), at(20))]

    assert derive(fold(steps))[0] is Stage.BOOKING


def test_a_held_order_resumes_when_it_moves_on_later() -> None:
    steps = [*happy_path()[:6], (held(), at(20)), (for_order(ShipmentBooked, REF), at(25))]

    assert derive(fold(steps)) == (Stage.BOOKED, at(25))


def test_a_late_copy_of_an_earlier_step_does_not_release_a_held_order() -> None:
    late_accepted = (for_order(WarehouseOrderAccepted, REF), at(30))
    steps = [*happy_path()[:6], (held(), at(20)), late_accepted]

    assert derive(fold(steps))[0] is Stage.HELD


def test_a_hold_older_than_the_last_step_arriving_late_does_not_hold_the_order() -> None:
    steps = [*happy_path()[:8], (held(), at(3))]

    assert derive(fold(steps))[0] is Stage.RECORDING


def cancellation(ref: str = REF) -> list[tuple[Message, datetime]]:
    return [
        (for_order(OrderCancelled, ref), at(20)),
        (for_order(CancelWarehouseOrder, ref), at(21)),
    ]


def test_an_order_cancelled_before_booking_is_cancelling_until_the_warehouse_confirms() -> None:
    steps = [*happy_path()[:4], *cancellation()]

    assert derive(fold(steps)) == (Stage.CANCELLING, at(20))
    confirmed = [*steps, (for_order(WarehouseOrderCancelled, REF), at(22))]
    assert derive(fold(confirmed)) == (Stage.CANCELLED, at(22))


def test_an_order_cancelled_after_booking_is_cancelled_only_once_its_label_is_voided() -> None:
    steps = [
        *happy_path()[:7],
        *cancellation(),
        (for_order(VoidShipment, REF), at(21)),
        (for_order(WarehouseOrderCancelled, REF), at(22)),
    ]

    assert derive(fold(steps))[0] is Stage.CANCELLING
    voided = [*steps, (for_order(ShipmentVoided, REF), at(24))]
    assert derive(fold(voided)) == (Stage.CANCELLED, at(24))


@pytest.mark.parametrize("seed", range(20))
def test_a_compensated_cancellation_is_cancelled_in_any_arrival_order(seed: int) -> None:
    steps = [
        *happy_path()[:7],
        *cancellation(),
        (for_order(VoidShipment, REF), at(21)),
        (for_order(WarehouseOrderCancelled, REF), at(22)),
        (for_order(ShipmentVoided, REF), at(24)),
    ]
    random.Random(seed).shuffle(steps)

    assert derive(fold(steps)) == (Stage.CANCELLED, at(24))


def test_a_cancellation_before_the_warehouse_heard_of_the_order_needs_no_confirmation() -> None:
    steps = [(for_order(OrderReleased, REF), at(0)), (for_order(OrderCancelled, REF), at(1))]

    assert derive(fold(steps)) == (Stage.CANCELLED, at(1))


def test_a_cancellation_after_shipping_comes_too_late_and_changes_no_stage() -> None:
    steps = [*happy_path()[:9], *cancellation()]

    assert derive(fold(steps)) == (Stage.SHIPPED, at(8))


def test_a_cancelled_held_order_is_cancelling_not_held() -> None:
    steps = [*happy_path()[:4], (held(), at(10)), *cancellation()]

    assert derive(fold(steps))[0] is Stage.CANCELLING


def test_an_order_held_after_its_cancellation_waits_for_a_person() -> None:
    # The warehouse refused the cancel; the orchestrator held the order for ops.
    refused = (for_order(WarehouseOrderCancelRefused, REF), at(22))
    steps = [*happy_path()[:7], *cancellation(), refused, (held(), at(23))]

    assert derive(fold(steps)) == (Stage.HELD, at(23))
    # The void confirmed meanwhile changes nothing: the goods are still out there.
    later = [*steps, (for_order(ShipmentVoided, REF), at(24))]
    assert derive(fold(later))[0] is Stage.HELD


def test_a_final_stage_stays_whatever_arrives_after_it() -> None:
    facts = fold([*happy_path()[:1], (for_order(OrderCancelled, REF), at(1))])
    stage, since = derive(facts)
    assert stage is Stage.CANCELLED

    # The warehouse release was sent before the cancellation and arrives late.
    later = merge(facts, observe(for_order(ReleaseToWarehouse, REF), at(0.5)))

    assert derive(later)[0] is Stage.CANCELLING  # what the facts alone would say
    assert settle(stage, since, later) == (Stage.CANCELLED, at(1))


def test_settle_follows_the_facts_while_the_stage_is_not_final() -> None:
    facts = fold(happy_path()[:3])

    assert settle(Stage.RELEASED, at(0), facts) == (Stage.ACCEPTED, at(2))
    assert settle(None, None, facts) == (Stage.ACCEPTED, at(2))


def test_an_order_seen_only_in_a_notification_is_unknown_since_first_seen() -> None:
    notification = for_order(NotificationSent, REF)
    facts = fold([(notification, at(3)), (notification, at(1))])

    assert derive(facts) == (Stage.UNKNOWN, at(1))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (for_order(OrderReleased, "A/1"), "A/1"),
        (for_order(ReleaseToWarehouse, "A/2"), "A/2"),
        (for_order(ShipmentBooked, "A/3"), "A/3"),
        (for_order(RecordShipmentInOdoo, "A/4"), "A/4"),
        (for_order(MilestoneReached, "A/5"), "A/5"),
        (for_order(ExceptionRaised, "A/6"), "A/6"),
        (for_order(ExceptionRaised, "A/7", order_ref=None), None),
        (for_order(ProductsChanged, "A/8"), None),
        (for_order(SyncProducts, "A/9"), None),
    ],
)
def test_the_order_of_a_message_comes_from_its_body(message: Message, expected: str | None) -> None:
    assert order_ref_of(message) == expected


def test_an_observation_without_a_step_only_marks_the_order_seen() -> None:
    facts = merge(OrderFacts(), Observation(at=at(4)))

    assert facts == OrderFacts(first_seen_at=at(4))
    assert derive(facts) == (Stage.UNKNOWN, at(4))


def test_a_stage_off_the_main_line_has_no_rank() -> None:
    with pytest.raises(ValueError, match="held is not on the main line"):
        rank(Stage.HELD)


def _observed_field_by_field(message: Message, moment: datetime) -> Observation:
    """What a message says about progress, read field by field (the rule ``observe`` keeps)."""
    from waybill_contracts.operations import ReleaseHeldOrder

    reached = REACHES.get(type(message))
    if isinstance(message, MilestoneReached) and message.milestone.code is MilestoneCode.DELIVERED:
        reached = Stage.RECORDING_DELIVERY
    return Observation(
        at=moment,
        reached=reached,
        held=isinstance(message, ExceptionRaised) and message.order_held,
        resumed=isinstance(message, ReleaseHeldOrder),
        cancel_requested=isinstance(message, OrderCancelled),
        warehouse_cancelled=isinstance(message, WarehouseOrderCancelled),
        booked_shipment=(
            message.shipment.shipment_id if isinstance(message, ShipmentBooked) else None
        ),
        voided_shipment=message.shipment_id if isinstance(message, ShipmentVoided) else None,
    )


def _every_kind_of_message() -> list[Message]:
    import msgspec

    from waybill_contracts import MESSAGE_TYPES
    from waybill_contracts.examples import example_of

    messages: list[Message] = [example_of(t) for t in MESSAGE_TYPES]
    holding = example_of(ExceptionRaised)
    messages += [
        msgspec.structs.replace(holding, order_held=not holding.order_held),
        *(for_order(MilestoneReached, REF, milestone=milestone(code)) for code in MilestoneCode),
    ]
    return messages


def test_every_type_of_message_is_observed_as_its_fields_say() -> None:
    for message in _every_kind_of_message():
        assert observe(message, at(3)) == _observed_field_by_field(message, at(3)), message


def test_observing_a_message_asks_no_question_of_its_type() -> None:
    import sys
    from typing import Any

    steps = happy_path()
    for message, moment in steps:  # each type's observer chosen once
        observe(message, moment)
    asked: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call" and arg in (isinstance, issubclass):
            asked.append(arg.__name__)

    sys.setprofile(profile)
    try:
        for message, moment in steps:
            observe(message, moment)
    finally:
        sys.setprofile(None)

    # The type chose what to read once: no isinstance per message (seven a message
    # before, 155 an order in the end-to-end stage).
    assert asked == []
