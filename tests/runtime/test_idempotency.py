"""Effects once per business key, on a real KV bucket."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from waybill_runtime.bus.provisioning import ensure_bucket
from waybill_runtime.idempotency import EffectInProgress, OnceOnly, kv_key
from waybill_runtime.outcomes import TransientError


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def bucket(nc: NatsClient, nats_prefix: str) -> KeyValue:
    return await ensure_bucket(nc.jetstream(), f"{nats_prefix}_idempotency")


async def test_a_completed_effect_is_not_repeated(bucket: KeyValue) -> None:
    calls: list[str] = []

    async def buy() -> str:
        calls.append("buy")
        return "LABEL-1"

    once = OnceOnly(bucket, str)
    assert await once.run("label:shp-1", buy) == "LABEL-1"
    assert await once.run("label:shp-1", buy) == "LABEL-1"
    assert calls == ["buy"]
    assert await once.result_of("label:shp-1") == "LABEL-1"
    assert await once.result_of("label:shp-2") is None


async def test_a_failed_attempt_lets_the_next_one_try_at_once(bucket: KeyValue) -> None:
    calls: list[int] = []

    async def flaky() -> int:
        calls.append(len(calls))
        if len(calls) == 1:
            raise TransientError("carrier answered 503")
        return 7

    once = OnceOnly(bucket, int, clock=Clock())
    with pytest.raises(TransientError):
        await once.run("label:shp-3", flaky)
    assert await once.run("label:shp-3", flaky) == 7
    assert calls == [0, 1]


async def test_a_young_intent_elsewhere_is_left_alone_until_in_doubt(bucket: KeyValue) -> None:
    clock = Clock()
    second = OnceOnly(bucket, str, clock=clock)
    calls: list[str] = []
    # Another worker recorded its intent a moment ago and is (or was) mid-call.
    await bucket.put(kv_key("label:shp-4"), b'{"state":"intent","at":1000000.0}')

    async def nothing_found() -> str | None:
        return None

    async def buy() -> str:
        calls.append("buy")
        return "LABEL-4"

    with pytest.raises(EffectInProgress):
        await second.run("label:shp-4", buy, recover=nothing_found)
    clock.now += 120  # the other worker is long gone
    assert await second.run("label:shp-4", buy, recover=nothing_found) == "LABEL-4"
    assert calls == ["buy"]


async def test_recover_finds_the_effect_an_interrupted_call_made(bucket: KeyValue) -> None:
    calls: list[str] = []
    await bucket.put(kv_key("label:shp-5"), b'{"state":"intent","at":0.0}')

    async def found_at_carrier() -> str | None:
        return "LABEL-FOUND"

    async def buy() -> str:
        calls.append("buy")
        return "LABEL-NEW"

    once = OnceOnly(bucket, str)
    assert await once.run("label:shp-5", buy, recover=found_at_carrier) == "LABEL-FOUND"
    assert calls == []
    assert await once.result_of("label:shp-5") == "LABEL-FOUND"
