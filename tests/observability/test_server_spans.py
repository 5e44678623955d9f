"""SERVER spans for inbound HTTP: a traced caller's child, a webhook in its order's trace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import test_utils, web
from opentelemetry.trace import SpanKind, StatusCode

from waybill_runtime.http import create_http_app
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.server_spans import adopt_order_trace, continue_server_span
from waybill_runtime.telemetry import send_span
from waybill_runtime.testing.tracing import recorded_spans

ORDER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ORDER_TRACEPARENT = f"00-{ORDER_TRACE}-00f067aa0ba902b7-01"

Serve = Callable[[], Awaitable[test_utils.TestClient[web.Request, web.Application]]]


async def _webhook(request: web.Request) -> web.Response:
    # What the publisher does for a fact without a cause: the order's trace, then the send.
    headers = {"traceparent": ORDER_TRACEPARENT}
    adopt_order_trace(headers)
    with send_span("waybill.evt.shipment.milestone_reached.v1", message_id="f-1", headers=headers):
        pass
    return web.json_response({"accepted": True}, status=202)


_handed_off: list[asyncio.Task[None]] = []


async def _nudge(request: web.Request) -> web.Response:
    # As Odoo's webhook: answered at once, the work (and its fact) done after the answer.
    async def later() -> None:
        await asyncio.sleep(0.05)
        await _webhook(request)

    _handed_off.append(asyncio.create_task(later()))
    return web.json_response({"queued": True}, status=202)


_carried: list[asyncio.Task[None]] = []


async def _released_later(request: web.Request) -> web.Response:
    # Odoo's webhook as the gateway takes it: answered at once, the order it starts
    # released by work after the answer, which the request's span goes on into.
    continuation = continue_server_span()

    async def later() -> None:
        await asyncio.sleep(0.05)
        # The order's first fact: no trace yet, so its trace begins with this request.
        adopt_order_trace({})
        with send_span("waybill.evt.order.released.v1", message_id="r-1", headers={}):
            pass

    if request.query.get("full"):
        continuation.abandon()  # a full backlog: the work never runs
        return web.json_response({"overloaded": True}, status=503)
    _carried.append(asyncio.create_task(continuation.around(later())))
    return web.json_response({"queued": True}, status=202)


async def _query(request: web.Request) -> web.Response:
    return web.json_response({"order": request.match_info["ref"]})


async def _broken(request: web.Request) -> web.Response:
    raise RuntimeError("boom")


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    clients = []

    async def start() -> test_utils.TestClient[web.Request, web.Application]:
        app = create_http_app(
            service="carrier-router",
            registry=MetricsRegistry("carrier-router"),
            readiness=(),
            routes=[
                web.post("/webhooks/carriers/{carrier}", _webhook),
                web.get("/orders/{ref}", _query),
                web.get("/broken", _broken),
                web.post("/webhooks/odoo", _nudge),
                web.post("/webhooks/odoo/{token}", _released_later),
            ],
        )
        client = test_utils.TestClient(test_utils.TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


async def test_a_webhook_span_joins_the_trace_of_the_order_it_reports_on(serve: Serve) -> None:
    with recorded_spans() as exporter:
        client = await serve()
        answer = await client.post("/webhooks/carriers/carrier-a", json={})
        assert answer.status == 202
        spans = {span.name: span for span in exporter.get_finished_spans()}
    server = spans["POST /webhooks/carriers/{carrier}"]
    fact = spans["send waybill.evt.shipment.milestone_reached.v1"]
    assert server.kind is SpanKind.SERVER
    assert f"{server.context.trace_id:032x}" == ORDER_TRACE
    assert fact.parent is not None and fact.parent.span_id == server.context.span_id
    attributes = dict(server.attributes or {})
    assert attributes["http.route"] == "/webhooks/carriers/{carrier}"
    assert attributes["url.path"] == "/webhooks/carriers/carrier-a"
    assert attributes["http.response.status_code"] == 202
    assert server.end_time is not None and fact.start_time is not None
    assert server.start_time is not None and server.start_time <= fact.start_time


async def test_a_traced_caller_gets_a_child_span_and_an_untraced_one_a_root(
    serve: Serve,
) -> None:
    with recorded_spans() as exporter:
        client = await serve()
        traced = await client.get("/orders/SO1", headers={"traceparent": ORDER_TRACEPARENT})
        untraced = await client.get("/orders/SO2")
        assert (traced.status, untraced.status) == (200, 200)
        await client.get("/healthz")
        spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["GET /orders/{ref}", "GET /orders/{ref}"]
    child, root = spans
    assert f"{child.context.trace_id:032x}" == ORDER_TRACE
    assert child.parent is not None and f"{child.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert root.parent is None and f"{root.context.trace_id:032x}" != ORDER_TRACE


async def test_a_server_error_sets_the_span_status(serve: Serve) -> None:
    with recorded_spans() as exporter:
        client = await serve()
        answer = await client.get("/broken")
        assert answer.status == 500
        [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "500"


async def test_work_handed_off_after_the_answer_does_not_start_a_second_server_span(
    serve: Serve,
) -> None:
    with recorded_spans() as exporter:
        client = await serve()
        answer = await client.post("/webhooks/odoo", json={})
        assert answer.status == 202
        await asyncio.gather(*_handed_off)
        spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert len(servers) == 1 and servers[0].parent is None
    [fact] = [s for s in spans if s.name.startswith("send ")]
    assert f"{fact.context.trace_id:032x}" == ORDER_TRACE  # still in the order's trace
    # ... under the order's span, not under a second SERVER span that nobody ends.
    assert fact.parent is not None and f"{fact.parent.span_id:016x}" == "00f067aa0ba902b7"


async def test_a_span_carried_into_work_after_the_answer_starts_the_order_it_releases(
    serve: Serve,
) -> None:
    _carried.clear()
    with recorded_spans() as exporter:
        client = await serve()
        answer = await client.post("/webhooks/odoo/token", json={})
        assert answer.status == 202
        assert [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER] == []
        await asyncio.gather(*_carried)
        spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    [released] = [s for s in spans if s.name.startswith("send ")]
    assert server.parent is None  # the order's trace begins with the webhook
    assert released.parent is not None and released.parent.span_id == server.context.span_id
    assert dict(server.attributes or {})["http.response.status_code"] == 202
    assert server.end_time is not None and released.end_time is not None
    assert server.end_time >= released.end_time  # ended with the work, not with the answer


async def test_a_carried_span_whose_work_never_runs_ends_with_the_answer(serve: Serve) -> None:
    with recorded_spans() as exporter:
        client = await serve()
        answer = await client.post("/webhooks/odoo/token?full=1", json={})
        assert answer.status == 503
        [server] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.status.status_code is StatusCode.ERROR
    assert dict(server.attributes or {})["http.response.status_code"] == 503
