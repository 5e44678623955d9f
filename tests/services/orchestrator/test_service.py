"""The orchestrator as a running service on a real nats-server: events in, commands out
on the command stream, exceptions on the event stream, the status query, PING, dead letters."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.services.orchestrator.bus import (
    commands,
    count_by_type,
    events,
    publish,
    wait_for_commands,
)
from tests.services.orchestrator.journey import (
    accepted,
    booked,
    cancel_refused,
    cancelled,
    delivery_recorded,
    milestone,
    packed,
    picked,
    released,
    shipment_recorded,
    short_picked,
    void_refused,
    voided,
    warehouse_cancelled,
)
from waybill_contracts import SubjectMap
from waybill_contracts.events import Event, ExceptionRaised
from waybill_contracts.model import MilestoneCode
from waybill_contracts.queries import OrderStatusRequest, OrderStatusResponse
from waybill_orchestrator.app import build_service
from waybill_runtime.bus.dead_letters import DeadLetter
from waybill_runtime.queries import PingResponse, QueryError, QueryUnansweredError, ask
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters, settled
from waybill_runtime.testing.waiting import eventually

PATIENCE = 10.0
Start = Callable[..., Awaitable[SubjectMap]]


@pytest.fixture
async def orchestrator(nc: NatsClient, nats_url: str, nats_prefix: str) -> AsyncIterator[Start]:
    """Start the orchestrator (settings overridable); stopped after the test."""
    async with AsyncExitStack() as stack:

        async def start(**settings: Any) -> SubjectMap:
            settings.setdefault("retry_backoff_s", (0.1,))
            await stack.enter_async_context(
                running_service(
                    build_service(), nats_url=nats_url, subject_prefix=nats_prefix, **settings
                )
            )
            subjects = SubjectMap(nats_prefix)
            await answering(nc, subjects)
            return subjects

        yield start


async def answering(nc: NatsClient, subjects: SubjectMap) -> None:
    """Wait until the service answers queries.

    nats-py's flush() can return before the server has seen subscriptions made
    just before it (its PING overtakes them), so a request sent right after
    start-up may find no responders for a moment.
    """

    async def answers() -> bool:
        try:
            await status(nc, subjects, "WH/OUT/PROBE")
        except QueryUnansweredError:
            return False
        return True

    await eventually(answers, what="the order_status endpoint to answer")


async def status(nc: NatsClient, subjects: SubjectMap, ref: str) -> OrderStatusResponse:
    return await ask(
        nc,
        subjects.query_subject("orchestrator", "order_status"),
        OrderStatusRequest(order_ref=ref),
        OrderStatusResponse,
        timeout=PATIENCE,
    )


async def wait_for_stage(
    nc: NatsClient, subjects: SubjectMap, ref: str, stage: str
) -> OrderStatusResponse:
    async def probe() -> OrderStatusResponse:
        return await status(nc, subjects, ref)

    return await eventually(probe, until=lambda s: s.stage == stage, what=f"{ref} {stage}")


async def test_order_travels_from_release_to_delivered_sending_each_command_once(
    nc: NatsClient, orchestrator: Start
) -> None:
    subjects = await orchestrator()
    ref = "WH/OUT/1001"
    steps: list[tuple[list[Event], dict[str, int]]] = [
        ([released(ref)], {"ReleaseToWarehouse": 1}),
        ([accepted(ref), picked(ref), packed(ref)], {"BookShipment": 1}),
        ([booked(ref)], {"RecordShipmentInOdoo": 1}),
        ([shipment_recorded(ref), milestone(MilestoneCode.DELIVERED, 58, ref)], {}),
    ]
    for sent, wanted in steps:
        for event in sent:
            await publish(nc, subjects, event)
            await publish(nc, subjects, event)  # observed twice, with another id
        if wanted:
            await wait_for_commands(nc, subjects, wanted, order_ref=ref)
    await wait_for_commands(nc, subjects, {"RecordDeliveryInOdoo": 1}, order_ref=ref)
    await publish(nc, subjects, delivery_recorded(ref))
    final = await wait_for_stage(nc, subjects, ref, "delivered")
    assert final.found and not final.held
    assert final.shipment == booked(ref).shipment
    assert final.last_milestone is not None
    assert final.last_milestone.code == MilestoneCode.DELIVERED
    assert count_by_type(await commands(nc, subjects), ref) == {
        "ReleaseToWarehouse": 1,
        "BookShipment": 1,
        "RecordShipmentInOdoo": 1,
        "RecordDeliveryInOdoo": 1,
    }


async def test_short_pick_holds_the_order_raises_an_exception_and_posts_to_odoo(
    nc: NatsClient, orchestrator: Start
) -> None:
    subjects = await orchestrator()
    ref = "WH/OUT/1002"
    await publish(nc, subjects, released(ref))
    await wait_for_commands(nc, subjects, {"ReleaseToWarehouse": 1}, order_ref=ref)
    await publish(nc, subjects, short_picked(ref))
    [post] = [
        d.message
        for d in await wait_for_commands(nc, subjects, {"PostExceptionInOdoo": 1}, order_ref=ref)
        if type(d.message).__name__ == "PostExceptionInOdoo"
    ]
    raised = [
        d.message for d in await events(nc, subjects) if isinstance(d.message, ExceptionRaised)
    ]
    assert len(raised) == 1
    assert raised[0].order_held and raised[0].code == "short_pick"
    assert raised[0].exception_id == post.exception_id  # type: ignore[attr-defined]
    held = await status(nc, subjects, ref)
    assert held.stage == "held" and held.held
    assert held.open_exceptions == (raised[0].summary,)


async def test_cancellation_after_booking_cancels_voids_then_notes_it_in_odoo(
    nc: NatsClient, orchestrator: Start
) -> None:
    subjects = await orchestrator()
    ref = "WH/OUT/1003"
    await publish(nc, subjects, released(ref))
    await publish(nc, subjects, packed(ref))
    await wait_for_commands(nc, subjects, {"BookShipment": 1}, order_ref=ref)
    await publish(nc, subjects, booked(ref))
    await wait_for_commands(nc, subjects, {"RecordShipmentInOdoo": 1}, order_ref=ref)
    await publish(nc, subjects, cancelled(ref), source="odoo-gateway")
    await wait_for_commands(
        nc, subjects, {"CancelWarehouseOrder": 1, "VoidShipment": 1}, order_ref=ref
    )
    assert (await status(nc, subjects, ref)).stage == "cancelling"
    await publish(nc, subjects, warehouse_cancelled(ref))
    await publish(nc, subjects, voided(ref), source="carrier-router")
    await wait_for_commands(nc, subjects, {"PostNoteInOdoo": 1}, order_ref=ref)
    assert (await wait_for_stage(nc, subjects, ref, "cancelled")).found
    assert count_by_type(await commands(nc, subjects), ref)["PostExceptionInOdoo"] == 0


async def test_refused_cancel_and_void_hold_the_order_and_put_both_in_front_of_ops(
    nc: NatsClient, orchestrator: Start
) -> None:
    subjects = await orchestrator()
    ref = "WH/OUT/1005"
    await publish(nc, subjects, released(ref))
    await publish(nc, subjects, packed(ref))
    await wait_for_commands(nc, subjects, {"BookShipment": 1}, order_ref=ref)
    await publish(nc, subjects, booked(ref), source="carrier-router")
    await publish(nc, subjects, cancelled(ref), source="odoo-gateway")
    await wait_for_commands(
        nc, subjects, {"CancelWarehouseOrder": 1, "VoidShipment": 1}, order_ref=ref
    )
    await publish(nc, subjects, cancel_refused(ref), source="wms-bridge")
    await wait_for_commands(nc, subjects, {"PostExceptionInOdoo": 1}, order_ref=ref)
    held = await wait_for_stage(nc, subjects, ref, "held")
    assert held.held
    await publish(nc, subjects, void_refused(ref), source="carrier-router")
    await wait_for_commands(nc, subjects, {"PostExceptionInOdoo": 2}, order_ref=ref)
    raised = [
        d.message for d in await events(nc, subjects) if isinstance(d.message, ExceptionRaised)
    ]
    assert [(e.code, e.order_held) for e in raised if e.order_ref == ref] == [
        ("warehouse_cancel_refused", True),
        ("void_refused", False),
    ]
    assert len((await status(nc, subjects, ref)).open_exceptions) == 2
    # Nothing cancelled for real: no note saying so.
    assert count_by_type(await commands(nc, subjects), ref)["PostNoteInOdoo"] == 0


async def test_stage_past_its_deadline_is_resent_once_then_escalated(
    nc: NatsClient, orchestrator: Start
) -> None:
    subjects = await orchestrator(deadline_in_warehouse_s=0.3, deadline_sweep_interval_s=0.05)
    ref = "WH/OUT/1004"
    await publish(nc, subjects, released(ref), source="odoo-gateway")
    found = await wait_for_commands(
        nc, subjects, {"ReleaseToWarehouse": 2, "PostExceptionInOdoo": 1}, order_ref=ref
    )
    releases = [d for d in found if type(d.message).__name__ == "ReleaseToWarehouse"]
    assert len(releases) == 2  # sent, re-sent once, then no more
    assert releases[0].context.id != releases[1].context.id
    assert releases[0].context.subject == releases[1].context.subject == ref
    assert releases[1].context.causation_id is None  # the sweep re-sent it, not an event
    held = await wait_for_stage(nc, subjects, ref, "held")
    assert held.held and len(held.open_exceptions) == 1
    raised = [
        d.message for d in await events(nc, subjects) if isinstance(d.message, ExceptionRaised)
    ]
    assert [(e.code, e.order_held) for e in raised] == [("deadline_in_warehouse", True)]
    # The late fact still lets the order go on.
    await publish(nc, subjects, accepted(ref))
    resumed = await wait_for_stage(nc, subjects, ref, "accepted")
    assert not resumed.held and resumed.open_exceptions == ()
    assert count_by_type(await commands(nc, subjects), ref)["ReleaseToWarehouse"] == 2


async def test_order_status_of_an_unknown_order_is_not_found(
    nc: NatsClient, orchestrator: Start
) -> None:
    subjects = await orchestrator()
    answer = await status(nc, subjects, "WH/OUT/NOPE")
    assert answer == OrderStatusResponse(order_ref="WH/OUT/NOPE", found=False)


async def test_order_status_request_without_an_order_ref_is_a_bad_request(
    nc: NatsClient, orchestrator: Start
) -> None:
    subjects = await orchestrator()

    class Empty(msgspec.Struct):
        pass

    with pytest.raises(QueryError) as refused:
        await ask(
            nc,
            subjects.query_subject("orchestrator", "order_status"),
            Empty(),
            OrderStatusResponse,
            timeout=PATIENCE,
        )
    assert refused.value.code == 400 and "order_ref" in refused.value.description


async def test_ping_answers_with_the_orchestrators_name_and_version(
    nc: NatsClient, orchestrator: Start
) -> None:
    subjects = await orchestrator(version="2.3.4")
    name = subjects.query_service_name("orchestrator")
    reply = await nc.request(f"$SRV.PING.{name}", b"", timeout=PATIENCE)
    ping = msgspec.json.decode(reply.data, type=PingResponse)
    assert (ping.name, ping.version) == (name, "2.3.4")


async def test_event_for_an_order_never_released_is_retried_then_dead_lettered(
    nc: NatsClient, orchestrator: Start
) -> None:
    subjects = await orchestrator(max_deliver=2)
    await publish(nc, subjects, packed("WH/OUT/GHOST"))

    async def letters() -> list[DeadLetter]:
        return await dead_letters(nc, subjects)

    [letter] = await eventually(letters, what="the dead letter")
    assert letter.attempts == 2
    assert "WH/OUT/GHOST" in letter.error_message
    assert await commands(nc, subjects) == []


async def test_one_service_object_run_twice_answers_each_installation_from_its_own_state(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    # Query handlers are given the runtime they run in: two serves of one
    # declaration (two prefixes here) never answer from each other's bucket.
    service = build_service()
    first, second = SubjectMap(nats_prefix), SubjectMap(f"{nats_prefix}b")
    async with (
        running_service(service, nats_url=nats_url, subject_prefix=first.prefix),
        running_service(service, nats_url=nats_url, subject_prefix=second.prefix),
    ):
        await answering(nc, first)
        await answering(nc, second)
        await publish(nc, first, released("WH/OUT/TWICE"))
        await wait_for_stage(nc, first, "WH/OUT/TWICE", "in_warehouse")
        assert not (await status(nc, second, "WH/OUT/TWICE")).found


async def test_an_orders_changes_are_not_logged_at_info_and_its_ignored_repeats_are(
    nc: NatsClient, orchestrator: Start, caplog: pytest.LogCaptureFixture
) -> None:
    subjects = await orchestrator()
    ref = "WH/OUT/1002"
    caplog.set_level(logging.INFO, logger="waybill.orchestrator")
    await publish(nc, subjects, released(ref))
    await wait_for_commands(nc, subjects, {"ReleaseToWarehouse": 1}, order_ref=ref)
    for event in (accepted(ref), picked(ref), packed(ref)):
        await publish(nc, subjects, event)
    await wait_for_commands(nc, subjects, {"BookShipment": 1}, order_ref=ref)
    await publish(nc, subjects, accepted(ref))  # late: the order is past it

    async def ignored() -> bool:
        return any("WarehouseOrderAccepted" in line for line in _info_lines(caplog, ref))

    await eventually(ignored, what="the late event's note")
    # Four changes (in the order's timeline) and one ignored repeat: one line at INFO,
    # the repeat's reason (five before, one per note).
    [line] = _info_lines(caplog, ref)
    assert "WarehouseOrderAccepted" in line


def _info_lines(caplog: pytest.LogCaptureFixture, ref: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "waybill.orchestrator"
        and record.levelno == logging.INFO
        and ref in record.getMessage()
    ]


async def test_the_label_created_that_beats_its_booking_is_settled_not_retried(
    nc: NatsClient, orchestrator: Start, caplog: pytest.LogCaptureFixture
) -> None:
    subjects = await orchestrator()
    caplog.set_level(logging.INFO, logger="waybill.orchestrator")
    ref = "WH/OUT/1003"
    await publish(nc, subjects, released(ref))
    await wait_for_commands(nc, subjects, {"ReleaseToWarehouse": 1}, order_ref=ref)
    await publish(nc, subjects, packed(ref))
    await wait_for_commands(nc, subjects, {"BookShipment": 1}, order_ref=ref)
    # The carrier answered the purchase with label_created: the router published it
    # before the orchestrator saw the ShipmentBooked.
    await publish(nc, subjects, milestone(MilestoneCode.LABEL_CREATED, 21, ref))
    await settled(nc, subjects, "orchestrator", "events")  # without its booking
    await publish(nc, subjects, booked(ref))
    await wait_for_commands(nc, subjects, {"RecordShipmentInOdoo": 1}, order_ref=ref)
    await publish(nc, subjects, milestone(MilestoneCode.IN_TRANSIT, 30, ref))
    await settled(nc, subjects, "orchestrator", "events")
    consumer = await nc.jetstream().consumer_info(
        subjects.events_stream.name, subjects.durable("orchestrator", "events")
    )
    # Five events, five handlings. Before, the milestone was handled, nakked and
    # warned about again every backoff until its booking was seen (12 here, where
    # the booking is only sent once the milestone is settled).
    assert consumer.delivered.consumer_seq == 5
    state = await wait_for_stage(nc, subjects, ref, "recording")
    assert state.last_milestone is not None
    assert state.last_milestone.code == MilestoneCode.IN_TRANSIT
    # The carrier repeats its scans: one already known is routine.
    await publish(nc, subjects, milestone(MilestoneCode.IN_TRANSIT, 30, ref))
    await settled(nc, subjects, "orchestrator", "events")
    # Nothing an operator needs at INFO (before: the settled label_created's and
    # the repeated scan's notes, 2 lines).
    assert _info_lines(caplog, ref) == []
