"""The return workflow in the orchestrator (issue 20), on a real NATS server: each fact moves
a return on once, compensations and exceptions go out once, and the deadline sweep reminds,
then voids and tells customer service. The clock is the test's, never the machine's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from tests.services.orchestrator.bus import (
    commands,
    count_by_type,
    events,
    publish,
    wait_for_commands,
)
from tests.services.orchestrator.returns_journey import (
    PARCEL_DEADLINE_S,
    RETURN_POLICY,
    STEP_DEADLINE_S,
    T0,
    cancelled,
    credit_note_issued,
    credit_note_refused,
    inspected,
    label_booked,
    label_failed,
    observe,
    received,
    requested,
    retry,
    stock_posted,
)
from waybill_contracts import SubjectMap
from waybill_contracts.events import ExceptionRaised, ReturnCompleted, ReturnParcelOverdue
from waybill_contracts.return_commands import (
    BookReturnLabel,
    IssueCreditNoteInOdoo,
    VoidReturnLabel,
)
from waybill_orchestrator.app import build_service
from waybill_orchestrator.changes import NotYet
from waybill_orchestrator.deadlines import sweep
from waybill_orchestrator.return_state import ReturnStage
from waybill_orchestrator.return_store import ReturnStore
from waybill_runtime.bus.provisioning import StreamPolicy, ensure_bucket, ensure_streams
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.waiting import eventually


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def parts(nc: NatsClient, nats_prefix: str) -> AsyncIterator[tuple[SubjectMap, Any]]:
    subjects = SubjectMap(nats_prefix)
    js = nc.jetstream()
    await ensure_streams(js, subjects, StreamPolicy())
    yield subjects, await ensure_bucket(js, subjects.kv_bucket("workflow"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(nc: NatsClient, parts: tuple[SubjectMap, Any], clock: Clock) -> ReturnStore:
    subjects, kv = parts
    publisher = Publisher(nc, subjects, service="orchestrator")
    return ReturnStore(kv, publisher, RETURN_POLICY, clock=clock)


async def sent(nc: NatsClient, subjects: SubjectMap, return_id: str) -> dict[str, int]:
    """Commands and events the orchestrator published about ``return_id`` (by correlation)."""
    found = [*await commands(nc, subjects), *await events(nc, subjects)]
    return dict(count_by_type(found, return_id))


async def to_awaiting_parcel(store: ReturnStore, return_id: str) -> None:
    await store.apply(return_id, observe(requested(return_id)))
    await store.apply(return_id, observe(label_booked(return_id), 1))


async def stage_of(store: ReturnStore, return_id: str) -> ReturnStage:
    state, _ = await store.read(return_id)
    assert state is not None
    return ReturnStage(state.stage)


# --- through the running service --------------------------------------------------------


async def test_a_return_runs_end_to_end_through_the_service_once_each(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    rid = "WH/RET/00101"
    async with running_service(
        build_service(), nats_url=nats_url, subject_prefix=nats_prefix, retry_backoff_s=(0.1,)
    ):
        await publish(nc, subjects, requested(rid), source="odoo-gateway")
        await wait_for_commands(nc, subjects, {"BookReturnLabel": 1}, order_ref=rid)
        for _ in range(2):  # a redelivered fact moves nothing twice
            await publish(nc, subjects, label_booked(rid), source="carrier-router")
        await wait_for_commands(nc, subjects, {"ExpectReturn": 1}, order_ref=rid)
        await publish(nc, subjects, received(rid))
        await publish(nc, subjects, inspected(rid))
        await wait_for_commands(nc, subjects, {"ReceiveReturnInOdoo": 1}, order_ref=rid)
        await publish(nc, subjects, stock_posted(rid), source="odoo-gateway")
        await wait_for_commands(nc, subjects, {"IssueCreditNoteInOdoo": 1}, order_ref=rid)
        await publish(nc, subjects, credit_note_issued(rid), source="odoo-gateway")
        await publish(nc, subjects, credit_note_issued(rid), source="odoo-gateway")

        async def completions() -> list[ReturnCompleted]:
            return [
                d.message
                for d in await events(nc, subjects)
                if isinstance(d.message, ReturnCompleted)
            ]

        [done] = await eventually(completions, what="the return's completion")
    assert done.return_id == rid and done.credit_note_ref == "RINV/2025/00003"
    assert done.credited is not None and str(done.credited.amount) == "12.50"
    counts = await sent(nc, subjects, rid)
    for name in (
        "BookReturnLabel",
        "ExpectReturn",
        "ReceiveReturnInOdoo",
        "IssueCreditNoteInOdoo",
        "ReturnCompleted",
    ):
        assert counts[name] == 1, (name, counts)
    assert "CreateReturnInOdoo" not in counts  # requested in Odoo: the picking exists


async def test_an_operator_retries_a_refused_credit_note_through_the_service(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    from waybill_contracts.operations import RetryReturnStep

    subjects = SubjectMap(nats_prefix)
    rid = "RMA-2207"
    async with running_service(
        build_service(), nats_url=nats_url, subject_prefix=nats_prefix, retry_backoff_s=(0.1,)
    ):
        for event, source in (
            (requested(rid, rma=True), "odoo-gateway"),
            (label_booked(rid), "carrier-router"),
            (received(rid), "wms-bridge"),
            (inspected(rid), "wms-bridge"),
        ):
            await publish(nc, subjects, event, source=source)
        await wait_for_commands(nc, subjects, {"ReceiveReturnInOdoo": 1}, order_ref=rid)
        await publish(nc, subjects, stock_posted(rid), source="odoo-gateway")
        await wait_for_commands(nc, subjects, {"IssueCreditNoteInOdoo": 1}, order_ref=rid)
        await publish(nc, subjects, credit_note_refused(rid), source="odoo-gateway")

        async def raised() -> list[ExceptionRaised]:
            return [
                d.message
                for d in await events(nc, subjects)
                if isinstance(d.message, ExceptionRaised) and d.context.correlation_id == rid
            ]

        [problem] = await eventually(raised, what="the credit note's exception")
        assert (problem.code, problem.order_held) == ("credit_note_refused", False)
        action = RetryReturnStep(action_id="act-77", operator="dana", return_id=rid)
        await publish(nc, subjects, action, source="auditor")
        await publish(nc, subjects, action, source="auditor")  # one click, delivered twice
        found = await wait_for_commands(nc, subjects, {"IssueCreditNoteInOdoo": 2}, order_ref=rid)
    notes = [d.message for d in found if isinstance(d.message, IssueCreditNoteInOdoo)]
    assert sorted(n.attempt for n in notes) == [1, 2]
    counts = await sent(nc, subjects, rid)
    assert counts["CreateReturnInOdoo"] == 1  # an RMA: Odoo gets its return picking
    assert counts["PostExceptionInOdoo"] == 1


# --- the store and the sweep, with the test's clock ---------------------------------------


async def test_a_fact_about_a_return_never_requested_waits(store: ReturnStore) -> None:
    with pytest.raises(NotYet):
        await store.apply("WH/RET/9", observe(label_booked("WH/RET/9")))


async def test_a_parcel_that_never_comes_is_reminded_then_voided_and_raised(
    nc: NatsClient, parts: tuple[SubjectMap, Any], store: ReturnStore, clock: Clock
) -> None:
    subjects, _ = parts
    rid = "WH/RET/00201"
    await to_awaiting_parcel(store, rid)
    assert (await sweep(store)).late == 0

    clock.advance(PARCEL_DEADLINE_S + 60)  # label bought a minute after T0
    assert (await sweep(store)).late == 1
    reminded = [d.message for d in await events(nc, subjects)]
    [overdue] = [m for m in reminded if isinstance(m, ReturnParcelOverdue)]
    assert (overdue.reminder, overdue.label.tracking_number) == (
        1,
        label_booked(rid).label.tracking_number,
    )
    assert await stage_of(store, rid) == ReturnStage.AWAITING_PARCEL

    clock.advance(PARCEL_DEADLINE_S + 1)
    report = await sweep(store)
    assert (report.late, report.escalated) == (1, 1)
    assert await stage_of(store, rid) == ReturnStage.EXCEPTION
    counts = await sent(nc, subjects, rid)
    assert counts["ReturnParcelOverdue"] == 1
    assert counts["VoidReturnLabel"] == 1 and counts["CancelExpectedReturn"] == 1
    assert counts["ExceptionRaised"] == 1 and counts["PostExceptionInOdoo"] == 1

    clock.advance(10 * PARCEL_DEADLINE_S)
    assert (await sweep(store)).late == 0  # customer service decides now, not the clock

    # The parcel turns up after all: the goods are real, the return goes on.
    await store.apply(rid, observe(received(rid), 5000))
    assert await stage_of(store, rid) == ReturnStage.RECEIVED


async def test_an_inspection_that_accepts_nothing_gets_no_credit_note(
    nc: NatsClient, parts: tuple[SubjectMap, Any], store: ReturnStore
) -> None:
    subjects, _ = parts
    rid = "WH/RET/00301"
    await to_awaiting_parcel(store, rid)
    await store.apply(rid, observe(received(rid), 2))
    await store.apply(rid, observe(inspected(rid, resellable="0", damaged="2"), 3))
    await store.apply(rid, observe(stock_posted(rid), 4))
    assert await stage_of(store, rid) == ReturnStage.EXCEPTION
    counts = await sent(nc, subjects, rid)
    assert counts["ReceiveReturnInOdoo"] == 1  # the damaged goods still go to scrap
    assert "IssueCreditNoteInOdoo" not in counts
    problems = [
        d.message for d in await events(nc, subjects) if isinstance(d.message, ExceptionRaised)
    ]
    assert [p.code for p in problems] == ["return_rejected_in_full"]

    # Customer service closes it: completed, nothing credited.
    await store.apply(rid, retry(rid, "act-close", 10))
    assert await stage_of(store, rid) == ReturnStage.COMPLETED
    completed = [
        d.message for d in await events(nc, subjects) if isinstance(d.message, ReturnCompleted)
    ]
    assert [(c.return_id, c.credited) for c in completed] == [(rid, None)]


async def test_a_return_cancelled_before_receipt_voids_its_label_and_unannounces_it(
    nc: NatsClient, parts: tuple[SubjectMap, Any], store: ReturnStore
) -> None:
    subjects, _ = parts
    rid = "WH/RET/00401"
    await to_awaiting_parcel(store, rid)
    await store.apply(rid, observe(cancelled(rid), 2))
    await store.apply(rid, observe(cancelled(rid), 3))  # told twice
    assert await stage_of(store, rid) == ReturnStage.CANCELLED
    counts = await sent(nc, subjects, rid)
    assert counts["VoidReturnLabel"] == 1 and counts["CancelExpectedReturn"] == 1
    assert rid not in {k.removeprefix("return.") for k in await store.open_keys()}


async def test_a_label_bought_after_the_cancellation_is_voided(
    nc: NatsClient, parts: tuple[SubjectMap, Any], store: ReturnStore
) -> None:
    subjects, _ = parts
    rid = "WH/RET/00402"
    await store.apply(rid, observe(requested(rid)))
    await store.apply(rid, observe(cancelled(rid), 1))
    await store.apply(rid, observe(label_booked(rid), 2))  # the purchase was under way
    voids = [
        d.message for d in await commands(nc, subjects) if isinstance(d.message, VoidReturnLabel)
    ]
    assert [v.label_id for v in voids] == [label_booked(rid).label.shipment_id]
    assert "CancelExpectedReturn" not in await sent(nc, subjects, rid)  # never announced


async def test_a_cancellation_after_receipt_is_raised_and_the_return_goes_on(
    nc: NatsClient, parts: tuple[SubjectMap, Any], store: ReturnStore
) -> None:
    subjects, _ = parts
    rid = "WH/RET/00403"
    await to_awaiting_parcel(store, rid)
    await store.apply(rid, observe(received(rid), 2))
    await store.apply(rid, observe(cancelled(rid), 3))
    assert await stage_of(store, rid) == ReturnStage.RECEIVED
    counts = await sent(nc, subjects, rid)
    assert counts["ExceptionRaised"] == 1 and "VoidReturnLabel" not in counts


async def test_no_label_sold_is_raised_and_a_retry_buys_under_the_next_label_id(
    nc: NatsClient, parts: tuple[SubjectMap, Any], store: ReturnStore
) -> None:
    subjects, _ = parts
    rid = "WH/RET/00501"
    await store.apply(rid, observe(requested(rid)))
    await store.apply(rid, observe(label_failed(rid), 1))
    assert await stage_of(store, rid) == ReturnStage.EXCEPTION
    await store.apply(rid, retry(rid, "act-1", 5))
    await store.apply(rid, retry(rid, "act-1", 6))  # the same click again
    await store.apply(rid, observe(label_booked(rid, attempt=2), 7))
    assert await stage_of(store, rid) == ReturnStage.AWAITING_PARCEL
    labels = [
        d.message.label_id
        for d in await commands(nc, subjects)
        if isinstance(d.message, BookReturnLabel)
    ]
    assert labels == ["ret-WH-RET-00501-1", "ret-WH-RET-00501-2"]


async def test_a_late_credit_note_is_asked_again_once_then_raised(
    nc: NatsClient, parts: tuple[SubjectMap, Any], store: ReturnStore, clock: Clock
) -> None:
    subjects, _ = parts
    rid = "WH/RET/00601"
    await to_awaiting_parcel(store, rid)
    for minute, event in enumerate((received(rid), inspected(rid), stock_posted(rid)), start=2):
        await store.apply(rid, observe(event, minute))
    clock.advance(4 * 60 + STEP_DEADLINE_S + 1)
    await sweep(store)
    assert (await sent(nc, subjects, rid))["IssueCreditNoteInOdoo"] == 2
    clock.advance(STEP_DEADLINE_S + 1)
    await sweep(store)
    assert await stage_of(store, rid) == ReturnStage.EXCEPTION
    # Odoo answers after all: the return completes.
    await store.apply(rid, observe(credit_note_issued(rid), 30))
    assert await stage_of(store, rid) == ReturnStage.COMPLETED
