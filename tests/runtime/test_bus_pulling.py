"""The consumer's pull engine: bounded concurrency, idle expiries, lost inboxes, statuses."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sized
from contextlib import asynccontextmanager
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from tests.runtime.bus_helpers import release_command, send
from waybill_contracts import SubjectMap, encode, new_context
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.client import connect_client
from waybill_runtime.bus.consumer import Consumer, ConsumerOptions, Handler, HandlerContext
from waybill_runtime.bus.provisioning import (
    ConsumerPolicy,
    StreamPolicy,
    ensure_consumer,
    ensure_streams,
)
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.bus.pull import PullInbox, delivery_of, next_subject
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.service import Service
from waybill_runtime.testing.services import bare_runtime, running_service
from waybill_runtime.testing.waiting import eventually


async def provision(nc: NatsClient, subjects: SubjectMap) -> str:
    """The streams and wms-bridge's durable consumer of release commands; returns its name."""
    js = nc.jetstream()
    await ensure_streams(js, subjects, StreamPolicy())
    durable = subjects.durable("wms-bridge", "commands")
    await ensure_consumer(
        js,
        stream=subjects.commands_stream.name,
        durable=durable,
        filter_subjects=[subjects.subject_for(ReleaseToWarehouse)],
        policy=ConsumerPolicy(),
    )
    return durable


def release_consumer(
    nc: NatsClient,
    subjects: SubjectMap,
    handler: Handler[Any],
    options: ConsumerOptions,
    metrics: MetricsRegistry | None = None,
) -> Consumer:
    """The wms-bridge's consumer of release commands, not started."""
    return Consumer(
        nc=nc,
        js=nc.jetstream(),
        subjects=subjects,
        service="wms-bridge",
        stream=subjects.commands_stream.name,
        durable=subjects.durable("wms-bridge", "commands"),
        handlers={ReleaseToWarehouse: handler},
        publisher=Publisher(nc, subjects, service="wms-bridge"),
        runtime=bare_runtime(nc, subjects, service="wms-bridge"),
        options=options,
        metrics=metrics,
    )


@asynccontextmanager
async def consuming(
    nc: NatsClient,
    subjects: SubjectMap,
    handler: Handler[Any],
    options: ConsumerOptions,
    metrics: MetricsRegistry | None = None,
) -> AsyncIterator[Consumer]:
    """A started consumer of release commands on the commands stream, stopped afterwards."""
    await provision(nc, subjects)
    consumer = release_consumer(nc, subjects, handler, options, metrics)
    consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop(deadline_s=5)


@pytest.fixture(params=["nats-py", "waybill"])
async def puller(request: pytest.FixtureRequest, nats_url: str) -> AsyncIterator[NatsClient]:
    """The client a consumer pulls with: nats-py's, or the runtime's (deliveries handed
    over from its read loop, as every service pulls)."""
    if request.param == "nats-py":
        client = await nats.connect(nats_url, connect_timeout=5)
    else:
        client = await connect_client(nats_url, connect_timeout=5)
    try:
        yield client
    finally:
        await client.close()


def counter(items: Sized) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return len(items)

    return count


# A small consumer with short requests, for tests that watch it live.
SMALL = ConsumerOptions(concurrency=4, fetch_batch=4, fetch_timeout_s=0.3)


async def handle_one(nc: NatsClient, subjects: SubjectMap, handled: list[str], ref: str) -> None:
    """Send a release for ``ref`` and wait until it is among the ``handled``."""
    await send(nc, subjects, release_command(ref))
    await eventually(counter(handled), until=lambda _: ref in handled, what=f"{ref} handled")


def recorder() -> tuple[list[str], Handler[Any]]:
    """A handler that records the order of each command it handles, and its record."""
    handled: list[str] = []

    async def record(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        handled.append(command.order.ref)

    return handled, record


async def test_a_consumer_never_runs_more_handlers_than_its_concurrency(
    nc: NatsClient, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    running = 0
    most = 0
    handled: list[str] = []

    async def slow(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        handled.append(command.order.ref)

    await provision(nc, subjects)
    for n in range(40):
        await send(nc, subjects, release_command(f"WH/OUT/C{n}"))
    options = ConsumerOptions(concurrency=3, fetch_batch=10, fetch_timeout_s=0.5)
    async with consuming(nc, subjects, slow, options):
        await eventually(counter(handled), until=lambda n: n == 40, what="all 40 handled")
    assert most == 3
    assert sorted(handled) == sorted(f"WH/OUT/C{n}" for n in range(40))


async def test_an_idle_consumer_keeps_asking_and_takes_what_comes_later(
    nc: NatsClient, nats_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    subjects = SubjectMap(nats_prefix)
    handled, record = recorder()
    options = ConsumerOptions(concurrency=4, fetch_batch=4, fetch_timeout_s=0.2)
    with caplog.at_level(logging.WARNING, logger="waybill.bus"):
        async with consuming(nc, subjects, record, options):
            await asyncio.sleep(1.5)  # several requests expire unanswered by messages
            for n in range(10):
                await send(nc, subjects, release_command(f"WH/OUT/I{n}"))
            await eventually(counter(handled), until=lambda n: n == 10, what="all 10 handled")
    # Expiries are answered by the server: no inbox was taken for lost.
    assert not [r for r in caplog.records if "heard nothing" in r.getMessage()]


async def test_a_consumer_whose_inbox_goes_deaf_opens_a_new_one(
    nc: NatsClient, puller: NatsClient, nats_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    subjects = SubjectMap(nats_prefix)
    handled, record = recorder()
    with caplog.at_level(logging.WARNING, logger="waybill.bus"):
        async with consuming(puller, subjects, record, SMALL) as consumer:
            await handle_one(nc, subjects, handled, "WH/OUT/D0")
            # What nats-py can do after a server restart: the subscription stays
            # in place but nothing reaches it any more.
            inbox = consumer._inbox
            assert inbox is not None and inbox._sub is not None
            await puller._send_command(f"UNSUB {inbox._sub._id}\r\n".encode())
            await puller.flush()
            for n in range(1, 6):
                await send(nc, subjects, release_command(f"WH/OUT/D{n}"))
            await eventually(counter(handled), until=lambda n: n == 6, what="all 6 handled")
    assert [r for r in caplog.records if "heard nothing" in r.getMessage()]
    assert sorted(handled) == [f"WH/OUT/D{n}" for n in range(6)]


async def test_stopping_hands_back_what_was_delivered_but_not_handled(
    nc: NatsClient, puller: NatsClient, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    handled: list[str] = []

    async def record(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        await asyncio.sleep(0.05)
        handled.append(command.order.ref)

    durable = await provision(nc, subjects)
    for n in range(60):
        await send(nc, subjects, release_command(f"WH/OUT/S{n}"))
    options = ConsumerOptions(concurrency=8, fetch_batch=8, fetch_timeout_s=0.5)
    async with consuming(puller, subjects, record, options):
        await eventually(counter(handled), until=lambda n: n >= 8, what="some handled")

    # Stopped mid-stream: nothing is left delivered-but-unsettled (it would
    # wait out its ack wait); the rest is pending for the next consumer.
    # (The server applies acks and naks a moment after it receives them, hence
    # the wait; a message left unsettled would stay so for its 30 s ack wait.)
    async def consumer_state() -> tuple[int, int]:
        info = await nc.jetstream().consumer_info(subjects.commands_stream.name, durable)
        return info.num_ack_pending, info.num_pending

    unacked, pending = await eventually(
        consumer_state, until=lambda state: state[0] == 0, timeout_s=10, what="no unacked"
    )
    assert unacked == 0 and pending > 0
    async with consuming(puller, subjects, record, options):
        await eventually(counter(handled), until=lambda n: n >= 60, what="the rest")
    assert sorted(set(handled)) == sorted(f"WH/OUT/S{n}" for n in range(60))


async def test_deliveries_on_waybills_client_start_their_handlers_without_a_queue(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    handled, record = recorder()
    client = await connect_client(nats_url, connect_timeout=5)
    queued: list[Msg] = []
    try:
        async with consuming(client, subjects, record, SMALL) as consumer:
            await handle_one(nc, subjects, handled, "WH/OUT/Q0")
            inbox = consumer._inbox
            assert inbox is not None and inbox._sub is not None
            put = inbox._sub._pending_queue.put_nowait

            def counted(msg: Msg) -> None:
                queued.append(msg)
                put(msg)

            inbox._sub._pending_queue.put_nowait = counted  # type: ignore[method-assign,assignment]
            for n in range(1, 11):
                await send(nc, subjects, release_command(f"WH/OUT/Q{n}"))
            await eventually(counter(handled), until=lambda n: n == 11, what="all 11 handled")
    finally:
        await client.close()
    # Each delivery went through the subscription's queue and task before (10 here).
    assert queued == []


async def test_the_ack_subject_is_read_as_nats_py_reads_it() -> None:
    replies = [
        "$JS.ACK.ORDERS.wms-bridge-commands.3.1042.17.1795746692191475610.5",
        "$JS.ACK.hub.ACCHASH.ORDERS.wms-bridge-commands.2.77.9.1795746692191475610.0.rnd",
        "$JS.ACK.hub.ACCHASH.ORDERS.wms-bridge-commands.4.78.10.1795746692191475610.12",
    ]
    for reply in replies:
        msg = Msg(None, subject="orders", reply=reply)  # type: ignore[arg-type]
        meta = msg.metadata
        assert delivery_of(msg) == (meta.num_delivered, meta.sequence.stream, meta.num_pending)


class _Ended:
    def __init__(self) -> None:
        self.calls: list[tuple[int | None, str | None]] = []

    def __call__(self, undelivered: int | None, refusal: str | None) -> None:
        self.calls.append((undelivered, refusal))


def _status(code: str, description: str, **headers: str) -> Msg:
    return Msg(
        None,  # type: ignore[arg-type]
        subject="_INBOX.abc.7-16",
        reply="",
        data=b"",
        headers={"Status": code, "Description": description, **headers},
    )


async def test_the_end_of_each_pull_request_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    ended = _Ended()
    delivered: list[Msg] = []
    inbox = PullInbox(
        None,  # type: ignore[arg-type]
        stream="ORDERS",
        durable="wms-bridge-commands",
        on_message=delivered.append,
        on_ended=ended,
    )
    with caplog.at_level(logging.WARNING, logger="waybill.bus"):
        await inbox._receive(_status("100", "Idle Heartbeat"))
        await inbox._receive(_status("408", "Request Timeout", **{"Nats-Pending-Messages": "5"}))
        await inbox._receive(_status("404", "No Messages"))  # a no_wait request took all there was
        assert not caplog.records  # heartbeats, expiries and the end of a no_wait are routine
        await inbox._receive(_status("409", "Leadership Change", **{"Nats-Pending-Messages": "3"}))
        await inbox._receive(_status("503", "No Responders"))
        await inbox._receive(_status("409", "Consumer Deleted"))
        await inbox._receive(Msg(None, subject="_INBOX.abc.1-1", data=b"stray"))  # type: ignore[arg-type]
        await inbox._receive(Msg(None, subject="orders", reply="$JS.ACK.a.b.1.1.1.1.0"))  # type: ignore[arg-type]
    assert ended.calls == [
        (5, None),
        (None, None),
        (3, "409 Leadership Change"),
        (16, "503 no responders: the consumer does not exist or JetStream is unavailable"),
        (None, "409 Consumer Deleted"),
    ]
    assert len(delivered) == 1
    warnings = [r.getMessage() for r in caplog.records]
    assert any("Leadership Change" in w for w in warnings)
    assert any("Consumer Deleted" in w for w in warnings)
    assert any("not from JetStream" in w for w in warnings)


async def test_a_consumer_deleted_under_a_service_is_reported_not_hammered(
    nc: NatsClient, nats_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    subjects = SubjectMap(nats_prefix)
    handled, record = recorder()
    with caplog.at_level(logging.WARNING, logger="waybill.bus"):
        async with consuming(nc, subjects, record, SMALL) as consumer:
            await handle_one(nc, subjects, handled, "WH/OUT/X0")
            durable = subjects.durable("wms-bridge", "commands")
            await nc.jetstream().delete_consumer(subjects.commands_stream.name, durable)

            async def bound() -> bool:
                return consumer.bound

            await eventually(bound, until=lambda b: not b, what="readiness to drop")
            await asyncio.sleep(2.0)
            refusals = [r for r in caplog.records if "pull request for" in r.getMessage()]
            # Asked again with a growing pause (0.5, 1, 2 s ...), not in a tight loop.
            assert 1 <= len(refusals) <= 6
            assert "the consumer does not exist" in refusals[-1].getMessage()
            # An operator (or the next deployment) provisions it again: it resumes
            # (from the start of the stream: a new consumer has no position).
            await provision(nc, subjects)
            await handle_one(nc, subjects, handled, "WH/OUT/X1")
            assert consumer.bound


async def test_a_message_that_cannot_be_settled_is_reported(
    nc: NatsClient, nats_url: str, nats_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    subjects = SubjectMap(nats_prefix)
    handled, record = recorder()
    consumer = release_consumer(nc, subjects, record, SMALL)
    # Delivered on a connection that is gone by the time the ack is sent.
    gone = await nats.connect(nats_url)
    await gone.close()
    command = release_command("WH/OUT/L0")
    encoded = encode(command, new_context(command, source="orchestrator"), subjects)
    msg = Msg(
        gone,
        subject=encoded.subject,
        reply="$JS.ACK.S.wms-bridge-commands.1.5.5.1795746692191475610.0",
        data=encoded.body,
        headers=dict(encoded.headers),
    )
    with caplog.at_level(logging.ERROR, logger="waybill.bus"):
        consumer._delivered(msg)

        async def settled() -> bool:
            return not consumer._in_flight

        await eventually(settled, what="the handler to finish")
    assert handled == ["WH/OUT/L0"]
    [line] = [r.getMessage() for r in caplog.records if "could not settle" in r.getMessage()]
    assert encoded.subject in line and "redelivered after its ack wait" in line


@pytest.mark.parametrize("gather_s", [0.0, 0.5])
async def test_a_delivery_whose_ack_subject_cannot_be_read_is_reported_and_not_started(
    nc: NatsClient, nats_prefix: str, caplog: pytest.LogCaptureFixture, gather_s: float
) -> None:
    subjects = SubjectMap(nats_prefix)
    handled, record = recorder()
    options = ConsumerOptions(concurrency=4, fetch_batch=4, gather_s=gather_s)
    consumer = release_consumer(nc, subjects, record, options)
    command = release_command("WH/OUT/U0")
    encoded = encode(command, new_context(command, source="orchestrator"), subjects)
    # A reply of no ack subject layout nats-py or the runtime knows.
    odd = Msg(nc, subject=encoded.subject, reply="$JS.ACK.S.d.1", data=encoded.body)
    with caplog.at_level(logging.ERROR, logger="waybill.bus"):
        consumer._delivered(odd)
    assert not consumer._in_flight and handled == []
    [line] = [r.getMessage() for r in caplog.records]
    assert "could not read the delivery of" in line and encoded.subject in line
    assert "redelivered after its ack wait" in line


async def test_consumer_lag_is_what_the_server_says_is_still_pending(
    nc: NatsClient, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    metrics = MetricsRegistry("wms-bridge")
    labels = {"service": "wms-bridge", "consumer": subjects.durable("wms-bridge", "commands")}
    go_on = asyncio.Event()
    seen_lag: list[float] = []

    async def held(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        lag = metrics.collector_registry.get_sample_value(
            "waybill_consumer_pending_messages", labels
        )
        assert lag is not None
        seen_lag.append(lag)
        await go_on.wait()

    await provision(nc, subjects)
    for n in range(5):
        await send(nc, subjects, release_command(f"WH/OUT/G{n}"))
    one_at_a_time = ConsumerOptions(concurrency=1, fetch_batch=1, fetch_timeout_s=0.3)
    async with consuming(nc, subjects, held, one_at_a_time, metrics):

        async def first_seen() -> int:
            return len(seen_lag)

        await eventually(first_seen, what="the first message")
        assert seen_lag == [4.0]  # four more wait behind the first
        go_on.set()
        await eventually(first_seen, until=lambda n: n == 5, what="all five")
    assert seen_lag == [4.0, 3.0, 2.0, 1.0, 0.0]


class PullRequests:
    """The pull requests a consumer sends, as the server receives them."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def watch(self, nc: NatsClient, subjects: SubjectMap, durable: str) -> None:
        async def record(msg: Msg) -> None:
            self.seen.append(json.loads(msg.data))

        await nc.subscribe(next_subject(subjects.commands_stream.name, durable), cb=record)
        await nc.flush()


async def test_a_gathering_consumer_takes_what_came_while_it_waited_in_one_request(
    nc: NatsClient, puller: NatsClient, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    requests = PullRequests()
    await requests.watch(nc, subjects, await provision(nc, subjects))
    # For each message handled: how many requests the server had received by then.
    handled: dict[str, int] = {}

    async def record(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        handled[command.order.ref] = len(requests.seen)

    # Long enough that the five below are sent while it lets them gather.
    options = ConsumerOptions(concurrency=16, fetch_batch=16, fetch_timeout_s=0.5, gather_s=3.0)
    async with consuming(puller, subjects, record, options):
        await eventually(counter(requests.seen), what="a first request")
        await send(nc, subjects, release_command("WH/OUT/Q0"))
        await eventually(counter(handled), until=lambda n: n == 1, what="the first handled")
        asked_after_the_first = len(requests.seen)
        for n in range(1, 6):
            await send(nc, subjects, release_command(f"WH/OUT/Q{n}"))
        await eventually(counter(handled), until=lambda n: n == 6, what="all six handled")
    # The first, after a quiet spell, came on a request waiting on the server for one
    # message (the last one sent before it was handled), not held back for a gather.
    waiting_for_one = {"batch": 1, "expires": 500_000_000}
    assert requests.seen[0] == waiting_for_one
    assert requests.seen[handled["WH/OUT/Q0"] - 1] == waiting_for_one
    # The five sent while it waited came together, on the one request sent after the wait.
    [gathered] = requests.seen[asked_after_the_first : max(handled.values())]
    assert gathered == {"batch": 16, "expires": 500_000_000, "no_wait": True}
    assert {handled[f"WH/OUT/Q{n}"] for n in range(1, 6)} == {max(handled.values())}


async def test_a_gathering_consumer_behind_a_backlog_asks_again_without_waiting(
    nc: NatsClient, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    requests = PullRequests()
    await requests.watch(nc, subjects, await provision(nc, subjects))
    for n in range(40):
        await send(nc, subjects, release_command(f"WH/OUT/B{n}"))
    handled, record = recorder()
    # A wait between requests would outlast the test's patience many times over.
    options = ConsumerOptions(concurrency=8, fetch_batch=8, fetch_timeout_s=0.5, gather_s=120.0)
    async with consuming(nc, subjects, record, options):
        await eventually(counter(handled), until=lambda n: n == 40, what="all 40 handled")
    assert sorted(handled) == sorted(f"WH/OUT/B{n}" for n in range(40))
    # One message waited for, then the rest taken as the server said more was waiting.
    assert requests.seen[0] == {"batch": 1, "expires": 500_000_000}
    assert all(request.get("no_wait") for request in requests.seen[1:])


@pytest.mark.parametrize(("setting", "first_request"), [(None, 1), (0.0, 16)])
async def test_a_service_gathers_unless_its_setting_says_not_to(
    nc: NatsClient, nats_url: str, nats_prefix: str, setting: float | None, first_request: int
) -> None:
    subjects = SubjectMap(nats_prefix)
    requests = PullRequests()
    await requests.watch(nc, subjects, subjects.durable("wms-bridge", "commands"))
    service = Service("wms-bridge")
    handled, record = recorder()
    service.handles(ReleaseToWarehouse)(record)
    told = {} if setting is None else {"fetch_gather_s": setting}
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix, **told):
        await handle_one(nc, subjects, handled, "WH/OUT/S0")
    # Gathering waits on the server for one message; without, for a request's worth.
    assert requests.seen[0]["batch"] == first_request
