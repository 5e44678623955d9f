"""Disabled webhook endpoints: remembered in the bucket, asked about at most every few seconds."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from waybill_notifier import endpoint_registry
from waybill_notifier.endpoint_registry import EndpointRegistry
from waybill_notifier.subscriptions import Endpoint
from waybill_runtime.bus.provisioning import ensure_bucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingReads:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self.reads = 0

    async def get(self, key: str) -> Any:
        self.reads += 1
        return await self._kv.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)


@pytest.fixture
async def bucket(nc: NatsClient, nats_prefix: str) -> KeyValue:
    return await ensure_bucket(nc.jetstream(), f"{nats_prefix}_workflow")


def _endpoint() -> Endpoint:
    return Endpoint(label="shop", url="http://shop.test/hooks", secret="s" * 32)


async def test_an_endpoints_state_is_read_once_while_fresh(bucket: KeyValue) -> None:
    clock, counting = Clock(), CountingReads(bucket)
    registry = EndpointRegistry(counting, clock=clock)  # type: ignore[arg-type]
    endpoint = _endpoint()
    for _ in range(5):
        assert await registry.disabled(endpoint) is None
    assert counting.reads == 1
    # Another replica disables it; seen once the answer is no longer fresh.
    await EndpointRegistry(bucket).disable(endpoint, "HTTP 410")
    assert await registry.disabled(endpoint) is None
    clock.now += endpoint_registry.FRESH_FOR_S
    disabled = await registry.disabled(endpoint)
    assert disabled is not None and disabled.reason == "HTTP 410"
    assert counting.reads == 2


async def test_disabling_here_is_seen_here_at_once(bucket: KeyValue) -> None:
    counting = CountingReads(bucket)
    registry = EndpointRegistry(counting, clock=Clock())  # type: ignore[arg-type]
    endpoint = _endpoint()
    assert await registry.disabled(endpoint) is None
    await registry.disable(endpoint, "HTTP 410")
    disabled = await registry.disabled(endpoint)
    assert disabled is not None and disabled.label == "shop"
    assert counting.reads == 1
