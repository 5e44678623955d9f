"""The webhook endpoint when recording fails: retry-able trouble is 503, a bug is a plain 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import aiohttp
import nats.errors
import pytest

from tests.services.carrier_router.harness import B_SECRET, signed
from tests.services.carrier_router.payloads import shippo_track
from waybill_carrier_router.carriers import ShippoWebhooks
from waybill_carrier_router.router import CarrierRouter
from waybill_carrier_router.webhooks import tracking_routes
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.http import create_http_app
from waybill_runtime.metrics import MetricsRegistry
from waybill_sandboxes.server import serve


class FailingBook:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def record(self, *args: Any) -> Any:
        raise self.error


@pytest.fixture
async def endpoint() -> AsyncIterator[Callable[[Exception], Any]]:
    async with aiohttp.ClientSession() as http:

        async def post(error: Exception) -> tuple[int, dict[str, str], dict[str, Any]]:
            router = CarrierRouter(
                fleet=cast(Any, None),
                booker=cast(Any, None),
                voider=cast(Any, None),
                returns=cast(Any, None),
                tracking=cast(Any, FailingBook(error)),
                webhooks={"carrier-b": ShippoWebhooks(B_SECRET)},
                replays=cast(Any, None),  # carrier B signs a timestamp: no ids kept
                metrics=MetricsRegistry("carrier-router"),
            )
            app = create_http_app(
                service="carrier-router",
                registry=router.metrics,
                readiness=[],
                routes=tracking_routes(router, cast(Publisher, None)),
            )
            body = shippo_track(("TRANSIT", "package_arrived", "2025-03-14T09:00:00Z"))
            async with (
                serve(app) as running,
                http.post(
                    f"{running.url}/webhooks/carriers/carrier-b",
                    data=body,
                    headers=signed("carrier-b", body),
                ) as response,
            ):
                return (
                    response.status,
                    dict(response.headers),
                    await response.json(content_type=None),
                )

        yield post


async def test_update_that_cannot_be_recorded_now_is_answered_503_to_be_sent_again(
    endpoint: Callable[[Exception], Any],
) -> None:
    status, headers, problem = await endpoint(nats.errors.ConnectionClosedError())
    assert status == 503
    assert int(headers["Retry-After"]) > 0
    assert "send it again" in problem["detail"]


async def test_unexpected_failure_is_a_plain_500_without_details(
    endpoint: Callable[[Exception], Any],
) -> None:
    status, _, problem = await endpoint(RuntimeError("a bug with secrets in it"))
    assert status == 500
    assert "secrets" not in problem["detail"]
