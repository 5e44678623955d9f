"""Queries as ADR-32 NATS micro services: discovery, typed answers, error replies,
concurrency and draining, against a real nats-server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from opentelemetry.trace import SpanKind, StatusCode

from waybill_runtime.errors import UserFacingError
from waybill_runtime.queries import (
    ERROR_CODE_HEADER,
    ERROR_HEADER,
    QueryError,
    QueryService,
    QueryUnansweredError,
    ask,
    discovery_subjects,
)
from waybill_runtime.testing.tracing import recorded_spans

# Generous: these bound how long a broken test waits, they are never the thing tested.
PATIENCE = 10.0


class OrderStatusRequest(msgspec.Struct):
    order_ref: str


class OrderStatusAnswer(msgspec.Struct):
    order_ref: str
    status: str


class CarrierListRequest(msgspec.Struct):
    pass


class CarrierListAnswer(msgspec.Struct):
    carriers: list[str]


Handler = Callable[[OrderStatusRequest], Awaitable[OrderStatusAnswer]]


async def released(request: OrderStatusRequest) -> OrderStatusAnswer:
    """A handler that knows one order and refuses the rest."""
    if request.order_ref != "SO042":
        raise QueryError(404, f"order {request.order_ref} not found")
    return OrderStatusAnswer(order_ref=request.order_ref, status="released")


@pytest.fixture
def subject(nats_prefix: str) -> str:
    return f"{nats_prefix}.qry.gateway.order_status"


@pytest.fixture
async def services(nc: NatsClient) -> AsyncIterator[list[QueryService]]:
    """Services a test starts; each is stopped (quickly) after the test."""
    started: list[QueryService] = []
    yield started
    for service in started:
        await service.stop(drain_timeout=1.0)


@pytest.fixture
def gateway(
    nc: NatsClient, nats_prefix: str, subject: str, services: list[QueryService]
) -> Callable[..., Awaitable[QueryService]]:
    """Start an order-status service on this test's subject with the given handler."""

    async def start(handler: Handler = released, **options: Any) -> QueryService:
        service = QueryService(
            nc,
            name=f"gateway-{nats_prefix}",
            version="1.4.0",
            description="order status from Odoo",
            metadata={"region": "eu-west"},
            **options,
        )
        service.endpoint(
            "order_status",
            subject,
            OrderStatusRequest,
            OrderStatusAnswer,
            handler,
            metadata={"owner": "odoo-gateway"},
        )
        services.append(service)
        await service.start()
        return service

    return start


async def raw_request(nc: NatsClient, subject: str, body: bytes) -> Msg:
    return await nc.request(subject, body, timeout=PATIENCE)


async def discovery_reply(nc: NatsClient, subject: str, instance_id: str) -> dict[str, Any]:
    """Our instance's reply on a discovery subject, ignoring other services that answer."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        await nc.publish(subject, b"", reply=inbox)
        async with asyncio.timeout(PATIENCE):
            while True:
                msg = await sub.next_msg(timeout=PATIENCE)
                reply: dict[str, Any] = msgspec.json.decode(msg.data)
                if reply.get("id") == instance_id:
                    return reply
    finally:
        await sub.unsubscribe()


def assert_standard_fields(reply: dict[str, Any], service: QueryService, kind: str) -> None:
    assert reply["type"] == f"io.nats.micro.v1.{kind}_response"
    assert reply["name"] == service.name
    assert reply["id"] == service.id
    assert reply["version"] == "1.4.0"
    assert reply["metadata"] == {"region": "eu-west"}


@pytest.mark.parametrize("level", [0, 1, 2], ids=["all", "by-name", "by-id"])
async def test_ping_answers_with_the_standard_fields_on_every_subject_level(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], level: int
) -> None:
    service = await gateway()
    reply = await discovery_reply(
        nc, discovery_subjects("PING", service.name, service.id)[level], service.id
    )
    assert set(reply) == {"type", "name", "id", "version", "metadata"}
    assert_standard_fields(reply, service, "ping")


@pytest.mark.parametrize("level", [0, 1, 2], ids=["all", "by-name", "by-id"])
async def test_info_describes_the_service_and_its_endpoints_on_every_subject_level(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str, level: int
) -> None:
    service = await gateway()
    reply = await discovery_reply(
        nc, discovery_subjects("INFO", service.name, service.id)[level], service.id
    )
    assert set(reply) == {"type", "name", "id", "version", "metadata", "description", "endpoints"}
    assert_standard_fields(reply, service, "info")
    assert reply["description"] == "order status from Odoo"
    assert reply["endpoints"] == [
        {
            "name": "order_status",
            "subject": subject,
            "queue_group": "q",
            "metadata": {"owner": "odoo-gateway"},
        }
    ]


@pytest.mark.parametrize("level", [0, 1, 2], ids=["all", "by-name", "by-id"])
async def test_stats_report_start_time_and_endpoint_counters_on_every_subject_level(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str, level: int
) -> None:
    service = await gateway()
    reply = await discovery_reply(
        nc, discovery_subjects("STATS", service.name, service.id)[level], service.id
    )
    assert set(reply) == {"type", "name", "id", "version", "metadata", "started", "endpoints"}
    assert_standard_fields(reply, service, "stats")
    started = datetime.fromisoformat(reply["started"])
    offset = started.utcoffset()
    assert offset is not None and offset.total_seconds() == 0
    [endpoint] = reply["endpoints"]
    assert endpoint == {
        "name": "order_status",
        "subject": subject,
        "queue_group": "q",
        "num_requests": 0,
        "num_errors": 0,
        "last_error": "",
        "processing_time": 0,
        "average_processing_time": 0,
    }


async def test_instances_of_one_service_have_distinct_ids(nc: NatsClient) -> None:
    first = QueryService(nc, name="gateway", version="1.0.0")
    second = QueryService(nc, name="gateway", version="1.0.0")
    assert first.id != second.id
    assert first.id and second.id


async def test_stats_count_requests_errors_and_processing_time(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str
) -> None:
    service = await gateway()
    await ask(nc, subject, OrderStatusRequest("SO042"), OrderStatusAnswer, timeout=PATIENCE)
    await ask(nc, subject, OrderStatusRequest("SO042"), OrderStatusAnswer, timeout=PATIENCE)
    with pytest.raises(QueryError):
        await ask(nc, subject, OrderStatusRequest("SO999"), OrderStatusAnswer, timeout=PATIENCE)
    await raw_request(nc, subject, b'{"order_ref": 7}')

    reply = await discovery_reply(
        nc, discovery_subjects("STATS", service.name, service.id)[2], service.id
    )
    [endpoint] = reply["endpoints"]
    assert endpoint["num_requests"] == 4
    assert endpoint["num_errors"] == 2
    assert endpoint["last_error"].startswith("400 ")
    assert endpoint["processing_time"] > 0
    assert endpoint["average_processing_time"] == endpoint["processing_time"] // 4


async def test_typed_request_gets_the_handlers_typed_answer(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str
) -> None:
    await gateway()
    answer = await ask(
        nc, subject, OrderStatusRequest("SO042"), OrderStatusAnswer, timeout=PATIENCE
    )
    assert answer == OrderStatusAnswer(order_ref="SO042", status="released")


async def test_query_without_fields_accepts_an_empty_body(
    nc: NatsClient, nats_prefix: str, services: list[QueryService]
) -> None:
    async def carriers(_: CarrierListRequest) -> CarrierListAnswer:
        return CarrierListAnswer(carriers=["dhl", "ups"])

    service = QueryService(nc, name=f"router-{nats_prefix}", version="0.1.0")
    service.endpoint(
        "carriers",
        f"{nats_prefix}.qry.router.carriers",
        CarrierListRequest,
        CarrierListAnswer,
        carriers,
    )
    services.append(service)
    await service.start()
    reply = await raw_request(nc, f"{nats_prefix}.qry.router.carriers", b"")
    assert not reply.headers
    assert msgspec.json.decode(reply.data) == {"carriers": ["dhl", "ups"]}


async def test_query_error_replies_with_both_service_error_headers(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str
) -> None:
    await gateway()
    reply = await raw_request(nc, subject, b'{"order_ref": "SO999"}')
    assert reply.headers == {ERROR_HEADER: "order SO999 not found", ERROR_CODE_HEADER: "404"}
    assert reply.data == b""


async def test_ask_raises_the_services_query_error(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str
) -> None:
    await gateway()
    with pytest.raises(QueryError) as refused:
        await ask(nc, subject, OrderStatusRequest("SO999"), OrderStatusAnswer, timeout=PATIENCE)
    assert refused.value.code == 404
    assert refused.value.description == "order SO999 not found"
    assert not isinstance(refused.value, QueryUnansweredError)


async def test_unexpected_exception_replies_500_without_leaking_it_and_logs_it(
    nc: NatsClient,
    gateway: Callable[..., Awaitable[QueryService]],
    subject: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def crashing(_: OrderStatusRequest) -> OrderStatusAnswer:
        raise RuntimeError("password=hunter2 in /srv/odoo/rpc.py")

    await gateway(crashing)
    with caplog.at_level(logging.ERROR, logger="waybill_runtime.queries"):
        reply = await raw_request(nc, subject, b'{"order_ref": "SO042"}')

    assert reply.headers == {ERROR_HEADER: "internal error", ERROR_CODE_HEADER: "500"}
    wire = reply.data.decode() + repr(reply.headers)
    for secret in ("hunter2", "RuntimeError", "Traceback", "rpc.py"):
        assert secret not in wire
    logged = [record.getMessage() for record in caplog.records]
    assert any(
        "order_status" in line and "RuntimeError" in line and "hunter2" in line for line in logged
    ), logged


async def test_handler_returning_the_wrong_type_replies_500(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str
) -> None:
    async def confused(_: OrderStatusRequest) -> OrderStatusAnswer:
        return {"status": "released"}  # type: ignore[return-value]

    await gateway(confused)
    with pytest.raises(QueryError) as refused:
        await ask(nc, subject, OrderStatusRequest("SO042"), OrderStatusAnswer, timeout=PATIENCE)
    assert (refused.value.code, refused.value.description) == (500, "internal error")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"order_ref": 42}', "order_ref"),
        (b"{}", "order_ref"),
        (b'{"order_ref": SO042}', "malformed"),
        (b"[1, 2]", "object"),
        (b'{"order_ref": "SO042", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "levels deep"),
    ],
    ids=["wrong-type", "missing-field", "malformed-json", "not-an-object", "nested-too-deep"],
)
async def test_bad_request_body_replies_400_naming_the_problem(
    nc: NatsClient,
    gateway: Callable[..., Awaitable[QueryService]],
    subject: str,
    body: bytes,
    named: str,
) -> None:
    await gateway()
    reply = await raw_request(nc, subject, body)
    assert reply.headers is not None
    assert reply.headers[ERROR_CODE_HEADER] == "400"
    assert reply.headers[ERROR_HEADER].startswith("bad request: ")
    assert named in reply.headers[ERROR_HEADER]
    assert "Traceback" not in reply.headers[ERROR_HEADER]


async def test_error_description_with_line_breaks_is_sent_on_one_line(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str
) -> None:
    async def chatty(_: OrderStatusRequest) -> OrderStatusAnswer:
        raise QueryError(409, "order SO042\r\nis locked\nby a picker")

    await gateway(chatty)
    reply = await raw_request(nc, subject, b'{"order_ref": "SO042"}')
    assert reply.headers == {
        ERROR_HEADER: "order SO042 is locked by a picker",
        ERROR_CODE_HEADER: "409",
    }


async def test_requests_on_one_endpoint_are_handled_concurrently(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str
) -> None:
    # The first request waits for something only the second can do: handled
    # one at a time, the first would never finish.
    first_arrived = asyncio.Event()
    second_done = asyncio.Event()

    async def rendezvous(request: OrderStatusRequest) -> OrderStatusAnswer:
        if request.order_ref == "first":
            first_arrived.set()
            await second_done.wait()
        else:
            second_done.set()
        return OrderStatusAnswer(order_ref=request.order_ref, status="answered")

    await gateway(rendezvous)
    first = asyncio.create_task(
        ask(nc, subject, OrderStatusRequest("first"), OrderStatusAnswer, timeout=PATIENCE)
    )
    await asyncio.wait_for(first_arrived.wait(), PATIENCE)
    second = await ask(
        nc, subject, OrderStatusRequest("second"), OrderStatusAnswer, timeout=PATIENCE
    )
    assert second.status == "answered"
    assert (await first).status == "answered"


async def test_concurrent_requests_never_exceed_max_concurrency(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str
) -> None:
    running = 0
    peak = 0

    async def counted(request: OrderStatusRequest) -> OrderStatusAnswer:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)  # hold the slot so others would pile up if unbounded
        running -= 1
        return OrderStatusAnswer(order_ref=request.order_ref, status="answered")

    await gateway(counted, max_concurrency=2)
    answers = await asyncio.gather(
        *(
            ask(nc, subject, OrderStatusRequest(f"SO{n}"), OrderStatusAnswer, timeout=PATIENCE)
            for n in range(8)
        )
    )
    assert [answer.order_ref for answer in answers] == [f"SO{n}" for n in range(8)]
    assert peak == 2


async def test_stop_stops_taking_requests_and_lets_in_flight_ones_finish(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str
) -> None:
    arrived = asyncio.Event()
    may_finish = asyncio.Event()

    async def slow(request: OrderStatusRequest) -> OrderStatusAnswer:
        arrived.set()
        await may_finish.wait()
        return OrderStatusAnswer(order_ref=request.order_ref, status="released")

    service = await gateway(slow)
    in_flight = asyncio.create_task(
        ask(nc, subject, OrderStatusRequest("SO042"), OrderStatusAnswer, timeout=PATIENCE)
    )
    await asyncio.wait_for(arrived.wait(), PATIENCE)
    stopping = asyncio.create_task(service.stop(drain_timeout=PATIENCE))

    # Once the endpoint has let go of its subject, new requests find nobody.
    async with asyncio.timeout(PATIENCE):
        while True:
            try:
                await ask(nc, subject, OrderStatusRequest("SO043"), OrderStatusAnswer, timeout=1)
            except QueryUnansweredError as unanswered:
                if unanswered.code == 503:
                    break
            await asyncio.sleep(0.05)
    assert not stopping.done()  # still waiting for the request in flight

    may_finish.set()
    assert (await in_flight).status == "released"
    await asyncio.wait_for(stopping, PATIENCE)


async def test_stop_refuses_with_503_a_request_still_waiting_for_a_free_slot(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str
) -> None:
    arrived = asyncio.Event()
    may_finish = asyncio.Event()

    async def slow(request: OrderStatusRequest) -> OrderStatusAnswer:
        arrived.set()
        await may_finish.wait()
        return OrderStatusAnswer(order_ref=request.order_ref, status="released")

    service = await gateway(slow, max_concurrency=1)
    in_flight = asyncio.create_task(
        ask(nc, subject, OrderStatusRequest("SO042"), OrderStatusAnswer, timeout=PATIENCE)
    )
    await asyncio.wait_for(arrived.wait(), PATIENCE)
    # Sent before stop() on the same connection, so the server delivers it
    # before the endpoint lets go of its subject; the one slot is taken.
    waiting_inbox = nc.new_inbox()
    waiting = await nc.subscribe(waiting_inbox)
    await nc.publish(subject, b'{"order_ref": "SO043"}', reply=waiting_inbox)
    stopping = asyncio.create_task(service.stop(drain_timeout=PATIENCE))

    refused = await waiting.next_msg(timeout=PATIENCE)
    assert refused.headers == {ERROR_HEADER: "service stopping: retry", ERROR_CODE_HEADER: "503"}
    may_finish.set()
    assert (await in_flight).status == "released"
    await asyncio.wait_for(stopping, PATIENCE)


async def test_stop_deadline_answers_a_stuck_request_with_503(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str
) -> None:
    arrived = asyncio.Event()

    async def stuck(_: OrderStatusRequest) -> OrderStatusAnswer:
        arrived.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    service = await gateway(stuck)
    in_flight = asyncio.create_task(
        ask(nc, subject, OrderStatusRequest("SO042"), OrderStatusAnswer, timeout=PATIENCE)
    )
    await asyncio.wait_for(arrived.wait(), PATIENCE)
    await service.stop(drain_timeout=0.1)
    with pytest.raises(QueryError) as refused:
        await in_flight
    assert refused.value.code == 503


async def test_stop_is_safe_before_start_and_twice(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]]
) -> None:
    never_started = QueryService(nc, name="idle", version="1.0.0")
    await never_started.stop()
    service = await gateway()
    await service.stop()
    await service.stop()
    with pytest.raises(UserFacingError, match="started twice"):
        await service.start()


async def test_ask_with_nobody_listening_raises_unanswered_503(
    nc: NatsClient, subject: str
) -> None:
    with pytest.raises(QueryUnansweredError) as unanswered:
        await ask(nc, subject, OrderStatusRequest("SO042"), OrderStatusAnswer, timeout=PATIENCE)
    assert unanswered.value.code == 503
    assert subject in unanswered.value.description


async def test_ask_without_an_answer_in_time_raises_unanswered_504(
    nc: NatsClient, subject: str
) -> None:
    await nc.subscribe(subject)  # listens, never answers
    with pytest.raises(QueryUnansweredError) as unanswered:
        await ask(nc, subject, OrderStatusRequest("SO042"), OrderStatusAnswer, timeout=0.2)
    assert unanswered.value.code == 504
    assert subject in unanswered.value.description


async def test_ask_rejects_an_answer_of_the_wrong_shape_with_502(
    nc: NatsClient, subject: str
) -> None:
    async def odd_answer(msg: Msg) -> None:
        await msg.respond(b'{"order_ref": "SO042"}')

    await nc.subscribe(subject, cb=odd_answer)
    with pytest.raises(QueryError) as refused:
        await ask(nc, subject, OrderStatusRequest("SO042"), OrderStatusAnswer, timeout=PATIENCE)
    assert refused.value.code == 502
    assert "status" in refused.value.description


async def test_ask_reads_a_non_numeric_error_code_as_500(nc: NatsClient, subject: str) -> None:
    async def sloppy(msg: Msg) -> None:
        await nc.publish(msg.reply, b"", headers={ERROR_HEADER: "busy", ERROR_CODE_HEADER: "soon"})

    await nc.subscribe(subject, cb=sloppy)
    with pytest.raises(QueryError) as refused:
        await ask(nc, subject, OrderStatusRequest("SO042"), OrderStatusAnswer, timeout=PATIENCE)
    assert (refused.value.code, refused.value.description) == (500, "busy")


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"name": "order gateway"}, "name"),
        ({"name": ""}, "name"),
        ({"version": "1.4"}, "version"),
        ({"version": "v1.4.0"}, "version"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"metadata": {"region": 3}}, "metadata"),
    ],
)
async def test_bad_service_settings_are_refused_in_one_line(
    nc: NatsClient, options: dict[str, Any], complaint: str
) -> None:
    settings: dict[str, Any] = {"name": "gateway", "version": "1.4.0", **options}
    with pytest.raises(UserFacingError, match=complaint) as refused:
        QueryService(nc, **settings)
    assert "\n" not in str(refused.value)


async def test_semver_prerelease_and_build_versions_are_accepted(nc: NatsClient) -> None:
    service = QueryService(nc, name="gateway", version="2.0.0-rc.1+build.7")
    assert service.version == "2.0.0-rc.1+build.7"


@pytest.mark.parametrize(
    ("name", "endpoint_subject", "request_type", "complaint"),
    [
        ("order status", "waybill.qry.gateway.status", OrderStatusRequest, "name"),
        ("order_status", "", OrderStatusRequest, "subject"),
        ("order_status", "waybill..status", OrderStatusRequest, "subject"),
        ("order_status", "waybill.qry gateway", OrderStatusRequest, "subject"),
        ("order_status", "$SRV.PING", OrderStatusRequest, "subject"),
        ("order_status", "waybill.qry.gateway.status", dict, "msgspec Struct"),
    ],
)
async def test_bad_endpoint_registration_is_refused(
    nc: NatsClient, name: str, endpoint_subject: str, request_type: Any, complaint: str
) -> None:
    service = QueryService(nc, name="gateway", version="1.4.0")
    with pytest.raises(UserFacingError, match=complaint):
        service.endpoint(name, endpoint_subject, request_type, OrderStatusAnswer, released)


async def test_endpoints_may_not_share_a_name_or_subject(nc: NatsClient) -> None:
    service = QueryService(nc, name="gateway", version="1.4.0")
    service.endpoint(
        "order_status",
        "waybill.qry.gateway.status",
        OrderStatusRequest,
        OrderStatusAnswer,
        released,
    )
    with pytest.raises(UserFacingError, match="clashes"):
        service.endpoint(
            "order_status",
            "waybill.qry.gateway.other",
            OrderStatusRequest,
            OrderStatusAnswer,
            released,
        )
    with pytest.raises(UserFacingError, match="clashes"):
        service.endpoint(
            "other", "waybill.qry.gateway.status", OrderStatusRequest, OrderStatusAnswer, released
        )


async def test_endpoints_cannot_be_added_after_start(
    gateway: Callable[..., Awaitable[QueryService]], nats_prefix: str
) -> None:
    service = await gateway()
    with pytest.raises(UserFacingError, match="after start"):
        service.endpoint(
            "late",
            f"{nats_prefix}.qry.gateway.late",
            OrderStatusRequest,
            OrderStatusAnswer,
            released,
        )


async def test_start_on_a_closed_connection_is_a_one_line_error(nats_url: str) -> None:
    closed = await nats.connect(nats_url)
    await closed.close()
    service = QueryService(closed, name="gateway", version="1.4.0")
    with pytest.raises(UserFacingError, match="could not subscribe"):
        await service.start()


async def test_a_query_is_a_client_span_and_its_answer_a_server_child_in_one_trace(
    nc: NatsClient, gateway: Callable[..., Awaitable[QueryService]], subject: str
) -> None:
    await gateway()
    with recorded_spans() as exporter:
        await ask(nc, subject, OrderStatusRequest("SO042"), OrderStatusAnswer, timeout=PATIENCE)
        with pytest.raises(QueryError):
            await ask(nc, subject, OrderStatusRequest("SO999"), OrderStatusAnswer, timeout=PATIENCE)
        spans = exporter.get_finished_spans()
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [s.name for s in clients] == [f"query {subject}"] * 2
    assert len(servers) == 2
    for client, server in zip(clients, servers, strict=True):
        assert server.parent is not None and server.parent.span_id == client.context.span_id
        assert server.context.trace_id == client.context.trace_id
    found, refused = servers
    assert found.status.status_code is StatusCode.UNSET
    assert refused.status.status_code is StatusCode.ERROR
    assert dict(refused.attributes or {})["error.type"] == "404"
    assert clients[1].status.status_code is StatusCode.ERROR
