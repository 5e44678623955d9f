"""Breaker news off the call path: refused news dropped with an error, and when far behind
only each breaker's latest news kept until NATS takes it."""

from __future__ import annotations

import logging

import pytest
from nats.aio.client import Client as NatsClient

from waybill_contracts import SubjectMap
from waybill_contracts.events import PartnerCircuitChanged
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.circuit_news import CircuitNews
from waybill_runtime.resilience import CircuitState
from waybill_runtime.testing.streams import stored_in, stream_count
from waybill_runtime.testing.waiting import eventually


async def test_news_a_service_may_not_publish_is_dropped_with_an_error_not_tried_forever(
    nc: NatsClient, nats_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    subjects = SubjectMap(nats_prefix)
    stream = subjects.events_stream
    await nc.jetstream().add_stream(name=stream.name, subjects=list(stream.subjects))
    # A service the contracts do not name a publisher of the news.
    publisher = Publisher(nc, subjects, service="auditor", may_publish=frozenset())
    news = CircuitNews(publisher, service="auditor", instance="test:1", retry_s=0.05)
    caplog.set_level(logging.WARNING, logger="waybill_runtime.circuit_news")
    async with news.running():
        news.announce("archive", CircuitState.CLOSED, CircuitState.OPEN, "3 failures in a row")

        async def unannounced() -> int:
            return news.unannounced

        await eventually(unannounced, until=lambda n: n == 0, what="the news settled")
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "circuit archive news dropped: auditor may not publish PartnerCircuitChanged" in (
        record.getMessage()
    )
    assert await stream_count(nc, stream.name) == 0


async def test_far_behind_only_each_breaker_s_latest_news_waits_and_goes_once_nats_takes_it(
    nc: NatsClient, nats_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    subjects = SubjectMap(nats_prefix)
    stream = subjects.events_stream
    # No events stream yet: JetStream answers no publish, as while it is away.
    publisher = Publisher(nc, subjects, service="wms-bridge", ack_timeout_s=0.2)
    news = CircuitNews(publisher, service="wms-bridge", instance="test:1", capacity=1, retry_s=0.05)
    caplog.set_level(logging.WARNING, logger="waybill_runtime.circuit_news")
    async with news.running():
        news.announce("wms", CircuitState.CLOSED, CircuitState.OPEN, "2 failures in a row")
        news.announce("wms", CircuitState.OPEN, CircuitState.HALF_OPEN, "trials go through")
        news.announce("wms", CircuitState.HALF_OPEN, CircuitState.OPEN, "a trial call failed")

        async def warnings() -> list[str]:
            return [r.getMessage() for r in caplog.records]

        # The first try failed (no stream) before JetStream can take anything.
        await eventually(warnings, until=bool, what="the failed announcement logged")
        await nc.jetstream().add_stream(name=stream.name, subjects=list(stream.subjects))

        async def unannounced() -> int:
            return news.unannounced

        await eventually(unannounced, until=lambda n: n == 0, what="the news settled")
    stored = [
        d.message
        for d in await stored_in(nc, subjects, stream)
        if isinstance(d.message, PartnerCircuitChanged)
    ]
    assert [(m.previous_state, m.state, m.reason) for m in stored] == [
        ("half_open", "open", "a trial call failed")
    ]
