"""Two auditor replicas on one PostgreSQL database, on a real nats-server: they share the
auditor's durables, every message is recorded once whichever replica it reaches and however
often, and each replica's metrics and live pages see the rows the other stored."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import asyncpg
from nats.aio.client import Client as NatsClient

from tests.services.auditor.databases import opened
from tests.services.auditor.journey import Journey, for_order, publish
from tests.services.auditor.rows import record_of
from tests.services.auditor.test_service import full_journey
from waybill_auditor.app import build_service
from waybill_auditor.postgres_store import PostgresAuditStore
from waybill_contracts import SubjectMap
from waybill_contracts.events import OrderReleased
from waybill_runtime.local.ports import free_port
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import settled
from waybill_runtime.testing.tokens import bearer, temporary_api_keys, trusting
from waybill_runtime.testing.waiting import eventually

ORDERS = [f"WH/OUT/R{n:03}" for n in range(6)]


@contextlib.asynccontextmanager
async def replicas(
    nats_url: str, prefix: str, database_url: str, count: int = 2
) -> AsyncIterator[list[aiohttp.ClientSession]]:
    """``count`` auditors on one database, and an HTTP session (viewer) on each."""
    with temporary_api_keys() as keys:
        async with contextlib.AsyncExitStack() as stack:
            sessions = []
            for _ in range(count):
                port = free_port()
                await stack.enter_async_context(
                    running_service(
                        build_service(),
                        nats_url=nats_url,
                        subject_prefix=prefix,
                        http_port=port,
                        audit_database_url=database_url,
                        **trusting(keys),
                    )
                )
                sessions.append(
                    await stack.enter_async_context(
                        aiohttp.ClientSession(
                            f"http://127.0.0.1:{port}", headers=bearer(keys, "viewer")
                        )
                    )
                )
            yield sessions


async def metric(http: aiohttp.ClientSession, name: str, kind: str) -> float:
    """One sample of the replica's /metrics (0 when absent)."""
    async with http.get("/metrics") as response:
        text = await response.text()
    found = re.search(rf'^{name}{{kind="{kind}"}} ([0-9.e+]+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_two_replicas_record_every_message_once_however_often_it_is_delivered(
    nc: NatsClient, nats_url: str, nats_prefix: str, postgres_url: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    start = datetime.now(UTC)
    journeys = [full_journey(ref, start) for ref in ORDERS]
    # A replica stored this message and stopped before acknowledging it: the
    # durable hands it out again, to whichever replica asks next.
    ref = "WH/OUT/R-acked-late"
    released = for_order(OrderReleased, ref)
    context = Journey(ref).add(released, start=start)
    died = PostgresAuditStore(postgres_url)
    await died.open()
    await died.record(record_of(released, context))
    await died.close()

    async with replicas(nats_url, nats_prefix, postgres_url) as (first, second):
        for journey in journeys:
            for message, sent in journey.sent:
                await publish(nc, subjects, message, sent)
                # The same message again past JetStream's duplicate window: the two
                # copies may reach the two replicas at the same moment.
                await publish(nc, subjects, message, sent, nats_msg_id=f"{sent.id}:again")
        await publish(nc, subjects, released, context)
        for purpose in ("events", "commands"):
            await settled(nc, subjects, "auditor", purpose)
        sent_ids = {sent.id for journey in journeys for _, sent in journey.sent} | {context.id}
        events = sum(1 for j in journeys for m, _ in j.sent if m.kind.value == "event") + 1
        commands = len(sent_ids) - events

        # Each replica counts every row, those the other stored too (NOTIFY).
        for http in (first, second):
            await eventually(
                functools.partial(metric, http, "waybill_audit_rows", "event"),
                until=lambda n: n == events,
                what="every event row counted on each replica",
            )
            assert await metric(http, "waybill_audit_rows", "command") == commands
        duplicates = [
            await metric(http, "waybill_audit_duplicates_total", kind)
            for http in (first, second)
            for kind in ("event", "command")
        ]
        async with second.get(f"/orders/{ORDERS[0]}/timeline") as response:
            timeline = await response.json()

    assert sum(duplicates) == len(sent_ids)  # every copy but the first of each, and the late ack
    conn = await asyncpg.connect(postgres_url)
    try:
        stored = [row["id"] for row in await conn.fetch("SELECT id FROM messages")]
        orders = {
            row["order_ref"]: row["messages"]
            for row in await conn.fetch("SELECT order_ref, messages FROM orders")
        }
    finally:
        await conn.close()
    assert sorted(stored) == sorted(sent_ids)
    assert orders == {**{ref: 9 for ref in ORDERS}, ref: 1}
    assert timeline["order"]["stage"] == "shipped"
    assert [e["id"] for e in timeline["entries"]] == journeys[0].ids()


async def test_a_page_on_one_replica_hears_of_rows_the_other_stored(
    nc: NatsClient, nats_url: str, nats_prefix: str, postgres_url: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    journey = full_journey("WH/OUT/R-live", datetime.now(UTC))
    async with replicas(nats_url, nats_prefix, postgres_url) as (first, second):
        # Both pages listen; whichever replica records a message, both are told.
        streams = [await http.get("/tower/live") for http in (first, second)]
        try:
            for response in streams:
                assert response.status == 200
                assert (await response.content.readline()).startswith(b"retry:")
            for message, sent in journey.sent:
                await publish(nc, subjects, message, sent)
            heard = await asyncio.gather(
                *(
                    _updates_about(response, "WH/OUT/R-live", len(journey.sent))
                    for response in streams
                )
            )
        finally:
            for response in streams:
                response.close()

    assert heard == [len(journey.sent), len(journey.sent)]


async def _updates_about(response: aiohttp.ClientResponse, ref: str, count: int) -> int:
    """Read server-sent events until ``count`` updates about ``ref`` came."""
    seen = 0
    async with asyncio.timeout(30):
        while seen < count:
            line = await response.content.readline()
            if line.startswith(b"data:") and ref.encode() in line:
                seen += 1
    return seen


async def test_a_message_redelivered_after_a_replica_stored_it_unacknowledged_counts_once(
    nc: NatsClient, nats_url: str, nats_prefix: str, postgres_url: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    ref = "WH/OUT/R-redelivered"
    released = for_order(OrderReleased, ref)
    context = Journey(ref).add(released, start=datetime.now(UTC))
    async with replicas(nats_url, nats_prefix, postgres_url):
        pass  # the auditor's durables exist from here on
    await publish(nc, subjects, released, context)
    # A replica takes the message from the shared durable, stores it, and stops
    # before its ack: the durable hands the message out again.
    durable = subjects.durable("auditor", "events")
    taken = await nc.jetstream().pull_subscribe_bind(durable, subjects.events_stream.name)
    [message] = await taken.fetch(1, timeout=5)
    store = PostgresAuditStore(postgres_url)
    async with opened(store):
        assert (await store.record(record_of(released, context))).new
    await message.nak()
    await taken.unsubscribe()

    async with replicas(nats_url, nats_prefix, postgres_url) as sessions:
        await settled(nc, subjects, "auditor", "events")
        info = await nc.jetstream().consumer_info(subjects.events_stream.name, durable)
        duplicates = [
            await metric(http, "waybill_audit_duplicates_total", "event") for http in sessions
        ]
        async with sessions[0].get(f"/orders/{ref}/timeline") as response:
            timeline = await response.json()

    # Delivered twice (the durable's delivery count runs ahead of the stream's one message).
    assert (info.delivered.stream_seq, info.delivered.consumer_seq) == (1, 2)
    assert sum(duplicates) == 1
    assert [e["id"] for e in timeline["entries"]] == [context.id]
    assert timeline["order"]["messages"] == 1
