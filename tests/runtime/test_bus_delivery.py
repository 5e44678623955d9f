"""Delivery guarantees on a real nats-server: effects once, nothing lost on SIGTERM or restart."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient

from tests.runtime import example_service
from tests.runtime.bus_helpers import release_command, send
from waybill_contracts import SubjectMap, fact_id
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.events import WarehouseOrderAccepted
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.outcomes import TransientError
from waybill_runtime.queries import ask
from waybill_runtime.service import Service
from waybill_runtime.settings import env_var_name
from waybill_runtime.testing.authenticated import AuthenticatedServer
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import (
    dead_letters,
    stored_messages,
    stream_count,
    unsettled,
)
from waybill_runtime.testing.tokens import api_keys, bearer, trusting
from waybill_runtime.testing.waiting import eventually

REPO = Path(__file__).resolve().parents[2]


async def test_redelivered_message_makes_its_effect_once(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    service = Service("wms-bridge")
    effects: list[str] = []
    attempts: list[int] = []

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        assert ctx.runtime is not None
        attempts.append(ctx.attempt)

        async def create_wms_order() -> str:
            effects.append(command.order.ref)
            return "WMS-77"

        wms_id = await ctx.runtime.once_only(str).run(f"wms:{command.order.ref}", create_wms_order)
        assert wms_id == "WMS-77"
        if ctx.attempt == 1:
            # The effect happened, then the service lost its ack: a redelivery follows.
            raise TransientError("connection lost after the warehouse call")

    async with running_service(
        service, nats_url=nats_url, subject_prefix=nats_prefix, retry_backoff_s=(0.05,)
    ):
        await send(nc, SubjectMap(nats_prefix), release_command("WH/OUT/10"))

        async def attempted() -> list[int]:
            return attempts

        await eventually(attempted, until=lambda a: len(a) == 2, what="the redelivery")
    assert effects == ["WH/OUT/10"]


async def test_two_messages_with_one_business_key_make_one_effect(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    example_service.effects.clear()
    subjects = SubjectMap(nats_prefix)
    async with running_service(
        example_service.service,
        nats_url=nats_url,
        subject_prefix=nats_prefix,
        **trusting(api_keys(tmp_path)),
    ):
        await send(nc, subjects, release_command("WH/OUT/11"))
        await send(nc, subjects, release_command("WH/OUT/11"))  # a second, distinct message
        await eventually(
            lambda: unsettled(nc, subjects, "wms-bridge"),
            until=lambda n: n == 0,
            what="both commands to be acked",
        )
        events = await stream_count(nc, subjects.events_stream.name)
    assert example_service.effects == ["WH/OUT/11"]
    assert events == 1  # the accepted event's id is derived from the fact: one stored


def _start_example(nats_url: str, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    api = {env_var_name(k): v for k, v in api_keys(log.parent).settings().items()}
    env = {
        **os.environ,
        **api,
        "NATS_URL": nats_url,
        "WAYBILL_SUBJECT_PREFIX": prefix,
        "WAYBILL_HTTP_PORT": "0",
        "WAYBILL_HTTP_HOST": "127.0.0.1",
        "WAYBILL_WAREHOUSE_LATENCY_S": "0.05",
        "WAYBILL_CONSUMER_CONCURRENCY": "8",
        "WAYBILL_SHUTDOWN_DEADLINE_S": "10",
        "WAYBILL_FETCH_WAIT_S": "0.2",
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.runtime.example_service"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.slow
async def test_sigterm_during_a_batch_loses_nothing(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    subjects = SubjectMap(nats_prefix)
    accepted = subjects.subject_for(WarehouseOrderAccepted)
    orders = [f"WH/OUT/{n:04d}" for n in range(300)]
    log = tmp_path / "example.log"
    first = _start_example(nats_url, nats_prefix, log)
    try:
        # Wait for the service to provision its streams, then load the queue.
        await eventually(
            lambda: unsettled(nc, subjects, "wms-bridge"),
            until=lambda n: n == 0,
            what="the service to provision its consumer",
        )
        for ref in orders:
            await send(nc, subjects, release_command(ref))
        # SIGTERM once some, but not all, orders are through.
        await eventually(
            lambda: stream_count(nc, subjects.events_stream.name, accepted),
            until=lambda n: n >= 20,
            what="the first accepted orders",
        )
        first.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(first.wait, 60)
        assert code == 0, log.read_text()
        done_before_restart = await stream_count(nc, subjects.events_stream.name, accepted)
        assert done_before_restart < len(orders), "SIGTERM came after the whole batch"
    finally:
        if first.poll() is None:
            first.kill()
    second = _start_example(nats_url, nats_prefix, log)
    try:
        await eventually(
            lambda: stream_count(nc, subjects.events_stream.name, accepted),
            until=lambda n: n == len(orders),
            timeout_s=90,
            what="every order accepted after the restart",
        )
        await eventually(
            lambda: unsettled(nc, subjects, "wms-bridge"),
            until=lambda n: n == 0,
            what="every command acked",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.to_thread(second.wait, 60)
    assert await dead_letters(nc, subjects) == []
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
async def test_consumption_resumes_after_a_nats_server_restart(
    fresh_nats_server: AuthenticatedServer, nats_prefix: str
) -> None:
    url = fresh_nats_server.client_url
    subjects = SubjectMap(nats_prefix)
    service = Service("wms-bridge")
    processed: set[str] = set()

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        # Publishing too: the publisher's ack subscription must survive the restart.
        ref = command.order.ref
        accepted = WarehouseOrderAccepted(
            order_ref=ref, warehouse_order_id=f"WMS-{ref}", accepted_at=ctx.envelope.time
        )
        await ctx.publish(accepted, fact_id=fact_id("accepted", ref))
        processed.add(ref)

    async def processed_count() -> int:
        return len(processed)

    async with running_service(
        service, nats_url=url, subject_prefix=nats_prefix, retry_backoff_s=(0.1,)
    ):
        client = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        try:
            for n in range(50):
                await send(client, subjects, release_command(f"WH/OUT/A{n}"))
            await eventually(processed_count, until=lambda n: n == 50, what="the first 50")
            await asyncio.to_thread(fresh_nats_server.restart)
            await eventually(
                lambda: asyncio.sleep(0, client.is_connected), what="the test client to reconnect"
            )
            for n in range(50):
                await send(client, subjects, release_command(f"WH/OUT/B{n}"))
            await eventually(
                processed_count, until=lambda n: n == 100, timeout_s=60, what="all 100 orders"
            )
            events = await stream_count(client, subjects.events_stream.name)
        finally:
            await client.close()
    assert len(processed) == 100
    assert events == 100


async def test_a_service_answers_ping_with_its_name_and_version(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    from waybill_contracts.queries import OrderStatusRequest, OrderStatusResponse
    from waybill_runtime.queries import PingResponse, QueryError

    subjects = SubjectMap(nats_prefix)
    async with running_service(
        example_service.service,
        nats_url=nats_url,
        subject_prefix=nats_prefix,
        version="1.2.3",
        **trusting(api_keys(tmp_path)),
    ):
        name = subjects.query_service_name("wms-bridge")
        reply = await nc.request(f"$SRV.PING.{name}", b"", timeout=5)
        import msgspec

        ping = msgspec.json.decode(reply.data, type=PingResponse)
        assert ping.name == name
        assert ping.version == "1.2.3"
        with pytest.raises(QueryError) as refused:
            await ask(
                nc,
                subjects.query_subject("wms-bridge", "order_status"),
                OrderStatusRequest(order_ref="WH/OUT/404"),
                OrderStatusResponse,
                timeout=5,
            )
    assert refused.value.code == 404
    # The handler was given the running service: it read the instance's settings.
    assert "not known in warehouse AMS1" in refused.value.description


async def test_a_running_service_serves_health_readiness_metrics_and_its_routes(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    import aiohttp

    from waybill_runtime.local.ports import free_port

    port = free_port()
    subjects = SubjectMap(nats_prefix)
    keys = api_keys(tmp_path)
    async with (
        running_service(
            example_service.service,
            nats_url=nats_url,
            subject_prefix=nats_prefix,
            http_port=port,
            warehouse="RTM2",
            **trusting(keys),
        ),
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http,
    ):
        await send(nc, subjects, release_command("WH/OUT/20"))
        await eventually(
            lambda: stream_count(nc, subjects.events_stream.name),
            until=lambda n: n == 1,
            what="the accepted event",
        )
        async with http.get("/healthz") as health:
            assert health.status == 200
        async with http.get("/readyz") as ready:
            assert ready.status == 200, await ready.text()
        async with http.get("/metrics") as metrics:
            text = await metrics.text()
        async with http.get("/warehouse", headers=bearer(keys, "viewer")) as route:
            assert await route.json() == {"warehouse": "RTM2"}
        async with http.get("/warehouse") as anonymous:
            assert anonymous.status == 401
        async with http.get("/no-such-page") as missing:
            assert missing.status == 404
            assert missing.content_type == "application/problem+json"
    assert "waybill_messages_processed_total{" in text
    assert "wms-bridge-commands" in text


async def test_the_trace_of_the_handled_message_continues_in_what_it_publishes(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    from waybill_contracts import encode, new_context

    subjects = SubjectMap(nats_prefix)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    command = release_command("WH/OUT/30")
    context = new_context(
        command,
        source="orchestrator",
        traceparent=f"00-{trace_id}-00f067aa0ba902b7-01",
        tracestate="vendor=waybill",
    )
    encoded = encode(command, context, subjects)
    async with running_service(
        example_service.service,
        nats_url=nats_url,
        subject_prefix=nats_prefix,
        **trusting(api_keys(tmp_path)),
    ):
        await nc.jetstream().publish(encoded.subject, encoded.body, headers=dict(encoded.headers))
        await eventually(
            lambda: stream_count(nc, subjects.events_stream.name),
            until=lambda n: n == 1,
            what="the accepted event",
        )
    info = await nc.jetstream().stream_info(subjects.events_stream.name)
    stored = await nc.jetstream().get_msg(subjects.events_stream.name, info.state.last_seq)
    headers = stored.headers or {}
    assert headers["traceparent"].split("-")[1] == trace_id
    assert headers["ce-causationid"] == context.id
    assert headers["ce-correlationid"] == context.correlation_id


async def test_bulk_publishing_stores_every_message_once_even_when_repeated(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    from waybill_contracts import fact_id
    from waybill_runtime.bus.provisioning import StreamPolicy, ensure_streams
    from waybill_runtime.bus.publisher import Outgoing, Publisher

    subjects = SubjectMap(nats_prefix)
    js = nc.jetstream()
    await ensure_streams(js, subjects, StreamPolicy())
    publisher = Publisher(nc, subjects, service="orchestrator")
    batch = [
        Outgoing(message=release_command(f"WH/OUT/P{n}"), fact_id=fact_id("bulk", n))
        for n in range(50)
    ]
    acks = await publisher.publish_many(batch)
    again = await publisher.publish_many(batch)  # a retry of the whole batch
    assert len(acks) == 50 and not any(a.duplicate for a in acks)
    assert all(a.duplicate for a in again)
    stored = await stored_messages(nc, subjects, ReleaseToWarehouse)
    assert [m.order.ref for m, _ in stored] == [f"WH/OUT/P{n}" for n in range(50)]
    assert {ctx.source for _, ctx in stored} == {"waybill/orchestrator"}


@pytest.mark.slow
async def test_a_server_going_lame_duck_is_noticed_and_its_successor_consumed_from(
    fresh_nats_server: AuthenticatedServer, nats_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # What a rolling upgrade of NATS does to each server: lame-duck mode (JetStream
    # stops, clients are told to move), then a new server on the same store.
    url = fresh_nats_server.client_url
    subjects = SubjectMap(nats_prefix)
    service = Service("wms-bridge")
    processed: set[str] = set()

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        processed.add(command.order.ref)

    async def processed_count() -> int:
        return len(processed)

    caplog.set_level(logging.WARNING, logger="waybill.bus")
    async with running_service(service, nats_url=url, subject_prefix=nats_prefix):
        pid = fresh_nats_server.pid
        assert pid is not None
        os.kill(pid, signal.SIGUSR2)  # nats-server: enter lame-duck mode

        async def lame_duck_logged() -> bool:
            return any("lame-duck" in r.getMessage() for r in caplog.records)

        await eventually(lame_duck_logged, what="the service to notice lame-duck mode")
        # A lame duck lingers for its duration; the upgrade's next step replaces it.
        await asyncio.to_thread(fresh_nats_server.restart, grace_s=1.0)
        client = await nats.connect(url, max_reconnect_attempts=-1)
        try:
            for n in range(5):
                await send(client, subjects, release_command(f"WH/OUT/L{n}"))
            await eventually(processed_count, until=lambda n: n == 5, what="all 5 handled")
        finally:
            await client.close()
