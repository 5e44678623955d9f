"""Every service's /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from aiohttp import test_utils, web

from waybill_runtime.http import (
    METRICS_KEY,
    SERVICE_KEY,
    ApiAccess,
    CheckResult,
    ProbeCheck,
    ReadinessCheck,
    create_http_app,
)
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.outcomes import Outcome

Client = test_utils.TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


class StaticCheck:
    def __init__(self, name: str, ok: bool, detail: str = "") -> None:
        self.name = name
        self._result = CheckResult(ok, detail)

    async def check(self) -> CheckResult:
        return self._result


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    clients: list[Client] = []

    async def make(
        readiness: Sequence[ReadinessCheck] = (),
        registry: MetricsRegistry | None = None,
        **kwargs: object,
    ) -> Client:
        app = create_http_app(
            service="carrier-router",
            registry=registry or MetricsRegistry("carrier-router"),
            readiness=readiness,
            **kwargs,  # type: ignore[arg-type]
        )
        client = test_utils.TestClient(test_utils.TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_healthz_says_the_service_is_alive(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "service": "carrier-router"}


async def test_readyz_is_ready_when_every_check_passes(make_client: MakeClient) -> None:
    client = await make_client(
        [StaticCheck("nats", True, "connected"), StaticCheck("consumers", True)]
    )
    response = await client.get("/readyz")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ready"
    assert body["checks"] == [
        {"name": "nats", "ok": True, "detail": "connected"},
        {"name": "consumers", "ok": True, "detail": ""},
    ]


async def test_readyz_is_ready_without_checks(make_client: MakeClient) -> None:
    assert (await (await make_client()).get("/readyz")).status == 200


async def test_readyz_answers_503_when_a_check_fails(make_client: MakeClient) -> None:
    client = await make_client(
        [StaticCheck("nats", True), StaticCheck("carrier-a", False, "circuit open")]
    )
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "not ready"
    assert {"name": "carrier-a", "ok": False, "detail": "circuit open"} in body["checks"]


async def test_a_check_that_raises_counts_as_not_ready(make_client: MakeClient) -> None:
    async def broken() -> bool:
        raise ConnectionRefusedError("odoo at 10.0.0.5 refused")

    response = await (await make_client([ProbeCheck("odoo", broken)])).get("/readyz")
    assert response.status == 503
    [check] = (await response.json())["checks"]
    assert check["ok"] is False
    assert check["detail"] == "check failed: ConnectionRefusedError"  # the host only in the log


async def test_a_check_that_hangs_counts_as_not_ready(make_client: MakeClient) -> None:
    async def hangs() -> bool:
        await asyncio.Event().wait()
        return True

    client = await make_client([ProbeCheck("wms", hangs)], readiness_timeout_s=0.05)
    response = await client.get("/readyz")
    assert response.status == 503
    [check] = (await response.json())["checks"]
    assert check == {"name": "wms", "ok": False, "detail": "no answer within 0.05 s"}


async def test_probe_checks_accept_a_bool_or_a_check_result(make_client: MakeClient) -> None:
    async def connected() -> bool:
        return True

    async def degraded() -> CheckResult:
        return CheckResult(False, "2 of 3 carriers down")

    response = await (
        await make_client([ProbeCheck("nats", connected), ProbeCheck("carriers", degraded)])
    ).get("/readyz")
    checks = (await response.json())["checks"]
    assert checks == [
        {"name": "nats", "ok": True, "detail": ""},
        {"name": "carriers", "ok": False, "detail": "2 of 3 carriers down"},
    ]


async def test_metrics_serves_prometheus_text_with_the_message_metrics(
    make_client: MakeClient,
) -> None:
    registry = MetricsRegistry("carrier-router")
    registry.handler("carrier-router-cmd", "waybill.cmd.carrier.book_shipment.v1").record(
        Outcome.ACK, 0.1
    )
    registry.published("waybill.evt.shipment.booked.v1").inc()
    response = await (await make_client(registry=registry)).get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == registry.render()[1]
    text = await response.text()
    assert "waybill_messages_processed_total{" in text
    assert "waybill_handler_duration_seconds_bucket{" in text
    assert "waybill_messages_published_total{" in text


async def test_service_routes_are_served_beside_the_standard_ones(
    make_client: MakeClient,
) -> None:
    async def carriers(request: web.Request) -> web.Response:
        return web.json_response({"service": request.app[SERVICE_KEY]})

    client = await make_client(routes=[web.get("/carriers", carriers)])
    response = await client.get("/carriers")
    assert await response.json() == {"service": "carrier-router"}
    assert isinstance(client.app[METRICS_KEY], MetricsRegistry)


def test_a_body_limit_below_one_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        create_http_app(service="x", registry=MetricsRegistry("x"), readiness=(), max_body_bytes=0)


def test_each_app_is_independent() -> None:
    first = create_http_app(service="a", registry=MetricsRegistry("a"), readiness=())
    second = create_http_app(service="b", registry=MetricsRegistry("b"), readiness=())
    assert (first[SERVICE_KEY], second[SERVICE_KEY]) == ("a", "b")


async def test_a_request_passes_one_runtime_middleware(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The span, the problem answers, the caller's access and the body limit are one
    # layer (four middlewares before, each called by aiohttp through a wrapper of
    # its own for every request). Issue 18: CPU per webhook served.
    async def hook(request: web.Request) -> web.Response:
        return web.json_response({"bytes": len(await request.read())}, status=202)

    access = ApiAccess(service="carrier-router", routes=[], verifier=None)
    admitted: list[web.Request] = []

    async def admit(request: web.Request) -> None:
        admitted.append(request)

    monkeypatch.setattr(access, "admit", admit)
    client = await make_client(routes=[web.post("/webhooks/x", hook)], access=access)
    assert len(client.app.middlewares) == 1
    answer = await client.post("/webhooks/x", data=b"{}")
    assert answer.status == 202
    too_large = await client.post("/webhooks/x", data=b"x" * 2_000_000)
    assert too_large.status == 413
    assert too_large.content_type == "application/problem+json"
    # No route needs a role: no caller is looked up.
    assert admitted == []
