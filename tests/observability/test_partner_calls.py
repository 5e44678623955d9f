"""Partner HTTP calls: a CLIENT span under the handler's span, a duration sample per call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.trace import SpanKind, StatusCode

from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.partner_calls import (
    bind_partner_metrics,
    operation_of,
    partner_call,
    partner_session,
)
from waybill_runtime.telemetry import process_span
from waybill_runtime.testing.tracing import recorded_spans


@pytest.fixture
async def partner() -> AsyncIterator[str]:
    async def shipment(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"]})

    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/v2/shipments/{id}", shipment)
    app.router.add_post("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _samples(metrics: MetricsRegistry, outcome: str) -> dict[tuple[str, str], float]:
    found = {}
    for family in metrics.collector_registry.collect():
        for sample in family.samples:
            if (
                sample.name == "waybill_partner_call_duration_seconds_count"
                and sample.labels["outcome"] == outcome
            ):
                found[(sample.labels["partner"], sample.labels["operation"])] = sample.value
    return found


async def test_a_partner_call_is_a_client_span_under_the_handler_with_http_conventions(
    partner: str,
) -> None:
    metrics = MetricsRegistry("carrier-router")
    bind_partner_metrics(metrics)
    with recorded_spans() as exporter:
        async with partner_session("carrier_a") as session:
            with process_span(
                "waybill.cmd.carrier.book_shipment.v1",
                message_id="m-1",
                consumer_group="carrier-router",
                parent_headers=None,
            ):
                url = f"{partner}/v2/shipments/shp_123?api_key=sekret"
                async with session.get(url) as answer:
                    assert answer.status == 200
        spans = {span.name: span for span in exporter.get_finished_spans()}
    client = spans["GET /v2/shipments/{id}"]
    handler = spans["process waybill.cmd.carrier.book_shipment.v1"]
    assert client.kind is SpanKind.CLIENT
    assert client.parent is not None and client.parent.span_id == handler.context.span_id
    attributes = dict(client.attributes or {})
    assert attributes["http.request.method"] == "GET"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == int(partner.rsplit(":", 1)[1])
    assert attributes["http.response.status_code"] == 200
    assert "sekret" not in str(attributes["url.full"])
    assert str(attributes["url.full"]).endswith("/v2/shipments/shp_123?api_key=REDACTED")
    assert _samples(metrics, "ok") == {("carrier_a", "GET /v2/shipments/{id}"): 1}


async def test_a_failed_call_has_an_error_status_and_type_and_counts_as_its_outcome(
    partner: str,
) -> None:
    metrics = MetricsRegistry("wms-bridge")
    bind_partner_metrics(metrics)
    with recorded_spans() as exporter:
        async with partner_session("wms") as session:
            async with session.post(f"{partner}/broken") as answer:
                assert answer.status == 503
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get("http://127.0.0.1:9/unreachable")
        spans = {span.name: span for span in exporter.get_finished_spans()}
    broken = spans["POST /broken"]
    assert broken.status.status_code is StatusCode.ERROR
    assert dict(broken.attributes or {})["error.type"] == "503"
    unreachable = spans["GET /unreachable"]
    assert unreachable.status.status_code is StatusCode.ERROR
    assert "Error" in str(dict(unreachable.attributes or {})["error.type"])
    assert _samples(metrics, "server_error") == {("wms", "POST /broken"): 1}
    assert _samples(metrics, "network_error") == {("wms", "GET /unreachable"): 1}


async def test_a_session_may_name_every_call_alike(partner: str) -> None:
    metrics = MetricsRegistry("notifier")
    bind_partner_metrics(metrics)
    async with (
        partner_session("webhook", operation="POST webhook") as session,
        session.post(f"{partner}/broken"),
    ):
        pass
    assert _samples(metrics, "server_error") == {("webhook", "POST webhook"): 1}


async def test_a_partner_call_makes_no_aiohttp_trace_and_keeps_no_cookies(
    partner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiohttp trace hooks send about eight signals per request (listened to or not);
    # one session middleware observes the call instead. Issue 18: CPU per partner call.
    traces: list[object] = []

    class CountedTrace(aiohttp.tracing.Trace):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            traces.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(aiohttp.client, "Trace", CountedTrace)
    metrics = MetricsRegistry("wms-bridge")
    bind_partner_metrics(metrics)
    async with partner_session("wms") as session:
        for n in range(3):
            async with session.get(f"{partner}/v2/shipments/shp_{n}") as answer:
                assert answer.status == 200
        assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)
    assert traces == []
    assert _samples(metrics, "ok") == {("wms", "GET /v2/shipments/{id}"): 3}


async def test_a_call_that_is_not_http_is_a_client_span_too() -> None:
    metrics = MetricsRegistry("notifier")
    bind_partner_metrics(metrics)
    with recorded_spans() as exporter:
        with (
            pytest.raises(TimeoutError),
            partner_call("smtp", "smtp send", server_address="mail", server_port=25),
        ):
            raise TimeoutError
        [span] = exporter.get_finished_spans()
    assert span.kind is SpanKind.CLIENT and span.name == "smtp send"
    assert dict(span.attributes or {})["server.address"] == "mail"
    assert span.status.status_code is StatusCode.ERROR
    assert _samples(metrics, "timeout") == {("smtp", "smtp send"): 1}


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/jsonrpc", "POST /jsonrpc"),
        ("/json/2/sale.order/search_read", "POST /json/2/sale.order/search_read"),
        ("/v2/shipments/shp_8f2a/refund", "POST /v2/shipments/{id}/refund"),
        ("/orders/ORD-10042", "POST /orders/{id}"),
    ],
)
def test_record_ids_are_kept_out_of_the_operation(path: str, operation: str) -> None:
    from yarl import URL

    assert operation_of("post", URL("http://partner" + path)) == operation
