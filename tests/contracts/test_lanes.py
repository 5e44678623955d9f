"""Lanes: which orders go express, and how a lane travels in subjects and contexts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from waybill_contracts import Lane, SubjectMap, decode, encode, new_context, order_lane
from waybill_contracts.commands import BookShipment
from waybill_contracts.events import OrderReleased
from waybill_contracts.examples import EXAMPLES, ORDER
from waybill_contracts.model import Priority, ServiceLevel
from waybill_contracts.queries import OrderStatusRequest

NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
SUBJECTS = SubjectMap("acme")
PLAIN = msgspec.structs.replace(
    ORDER,
    service_level=ServiceLevel.STANDARD,
    priority=Priority.NORMAL,
    promised_at=NOW + timedelta(days=3),
)


@pytest.mark.parametrize(
    ("changes", "lane"),
    [
        ({}, Lane.STANDARD),
        ({"priority": Priority.URGENT}, Lane.EXPRESS),
        ({"service_level": ServiceLevel.EXPRESS}, Lane.EXPRESS),
        ({"service_level": ServiceLevel.NEXT_DAY}, Lane.EXPRESS),
        ({"service_level": ServiceLevel.SAME_DAY}, Lane.EXPRESS),
        ({"service_level": ServiceLevel.ECONOMY}, Lane.STANDARD),
        ({"promised_at": NOW + timedelta(hours=23)}, Lane.EXPRESS),
        ({"promised_at": NOW + timedelta(hours=24)}, Lane.EXPRESS),
        ({"promised_at": NOW + timedelta(hours=25)}, Lane.STANDARD),
        ({"promised_at": NOW - timedelta(hours=1)}, Lane.EXPRESS),  # already late
        ({"promised_at": None}, Lane.STANDARD),
    ],
)
def test_an_order_goes_express_when_urgent_promised_fast_or_promised_soon(
    changes: dict[str, object], lane: Lane
) -> None:
    order = msgspec.structs.replace(PLAIN, **changes)
    assert order_lane(order, now=NOW, promise_within=timedelta(hours=24)) is lane


def test_without_a_promise_window_only_priority_and_service_level_count() -> None:
    soon = msgspec.structs.replace(PLAIN, promised_at=NOW + timedelta(minutes=5))
    assert order_lane(soon, now=NOW, promise_within=None) is Lane.STANDARD
    urgent = msgspec.structs.replace(soon, priority=Priority.URGENT)
    assert order_lane(urgent, now=NOW, promise_within=None) is Lane.EXPRESS


def test_every_event_and_command_has_an_express_twin_that_carries_the_same_type() -> None:
    for channel in SUBJECTS.channels:
        [message_type, *_] = channel.message_types
        twin = SUBJECTS.on_lane(channel.subject, Lane.EXPRESS)
        if message_type.kind.value in ("event", "command"):
            assert twin == f"{channel.subject}.express"
            assert SUBJECTS.find_message_type(twin) is message_type
            assert SUBJECTS.lane_of(twin) is Lane.EXPRESS
            assert SUBJECTS.lane_subjects(channel.subject) == (channel.subject, twin)
            # One destination for spans and metrics, whichever lane.
            assert SUBJECTS.subject_template(twin) == channel.subject
        else:  # queries answer at once: they have no queue to overtake
            assert twin == channel.subject
            assert SUBJECTS.lane_subjects(channel.subject) == (channel.subject,)
        assert SUBJECTS.lane_of(channel.subject) is Lane.STANDARD
        assert SUBJECTS.on_lane(channel.subject, Lane.STANDARD) == channel.subject


def test_a_subject_outside_the_map_has_no_twin() -> None:
    assert SUBJECTS.find_message_type("acme.evt.order.released.v1.express.more") is None
    assert SUBJECTS.find_message_type("acme.evt.order.unknown.v1.express") is None
    assert SUBJECTS.lane_of("acme.evt.order.unknown.v1.express") is Lane.STANDARD


def test_the_express_durable_is_named_after_the_standard_one() -> None:
    assert SUBJECTS.durable("orchestrator", "events") == "orchestrator-events"
    assert SUBJECTS.durable("orchestrator", "events", Lane.EXPRESS) == "orchestrator-events-express"


def test_an_express_message_goes_out_on_the_twin_and_reads_back_express() -> None:
    released = EXAMPLES[OrderReleased]
    context = new_context(released, source="odoo-gateway", lane=Lane.EXPRESS)
    encoded = encode(released, context, SUBJECTS)
    assert encoded.subject == "acme.evt.order.released.v1.express"
    decoded = decode(encoded.subject, encoded.headers, encoded.body, SUBJECTS)
    assert decoded.message == released
    assert decoded.context.lane is Lane.EXPRESS
    # No header says it: the subject is the only truth about the lane.
    assert not any("lane" in name.lower() for name in encoded.headers)


def test_what_a_message_causes_follows_it_on_its_lane_unless_told_otherwise() -> None:
    released = EXAMPLES[OrderReleased]
    booking = EXAMPLES[BookShipment]
    express = decode(
        *encode(released, new_context(released, source="x", lane=Lane.EXPRESS), SUBJECTS)[:3],
        SUBJECTS,
    ).context
    assert new_context(booking, source="orchestrator", cause=express).lane is Lane.EXPRESS
    assert new_context(booking, source="orchestrator").lane is Lane.STANDARD
    told = new_context(booking, source="orchestrator", cause=express, lane=Lane.STANDARD)
    assert told.lane is Lane.STANDARD


def test_a_query_made_while_handling_an_express_message_keeps_its_one_subject() -> None:
    express = new_context(EXAMPLES[OrderReleased], source="x", lane=Lane.EXPRESS)
    request = EXAMPLES[OrderStatusRequest]
    encoded = encode(request, new_context(request, source="auditor", cause=express), SUBJECTS)
    assert encoded.subject == SUBJECTS.subject_for(OrderStatusRequest)


def test_a_standard_message_reads_back_standard() -> None:
    released = EXAMPLES[OrderReleased]
    encoded = encode(released, new_context(released, source="x"), SUBJECTS)
    assert encoded.subject == "acme.evt.order.released.v1"
    assert decode(*encoded[:3], SUBJECTS).context.lane is Lane.STANDARD
