"""Breaker news the publisher refuses before sending: dropped with an error, never retried."""

from __future__ import annotations

import logging

import pytest
from nats.aio.client import Client as NatsClient

from waybill_contracts import SubjectMap
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.circuit_news import CircuitNews
from waybill_runtime.resilience import CircuitState
from waybill_runtime.testing.streams import stream_count
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
