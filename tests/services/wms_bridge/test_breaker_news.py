"""The WMS's circuit breaker on the bus: each transition announced once, off the call path."""

from __future__ import annotations

import itertools
import logging
import os
import signal
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient

from tests.services.wms_bridge.harness import wms_and_bridge
from waybill_contracts import SubjectMap
from waybill_contracts.events import PartnerCircuitChanged, WarehouseOrderAccepted
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.circuit_news import CircuitNews, bind_circuit_news
from waybill_runtime.resilience import CircuitOpenError, CircuitState
from waybill_runtime.settings import load_settings
from waybill_runtime.testing.authenticated import AuthenticatedServer
from waybill_runtime.testing.streams import stored_in
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.server import serve
from waybill_sandboxes.wms import WmsConfig, WmsSandbox
from waybill_wms_bridge.config import WmsBridgeSettings
from waybill_wms_bridge.wms_client import WmsUnavailable, open_wms_client


def _one_announcement_per_transition(news: list[PartnerCircuitChanged]) -> None:
    """Each announcement leaves the state the one before entered: none repeated, none missing."""
    assert news, "nothing announced"
    assert news[0].previous_state == "closed"
    for before, after in itertools.pairwise(news):
        assert after.previous_state == before.state, (before, after)
        assert after.changed_at >= before.changed_at


async def test_a_failing_wms_opens_the_breaker_and_each_transition_is_announced_once(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    ref = "WH/OUT/00031"
    async with wms_and_bridge(
        nc, nats_url, nats_prefix, wms_circuit_failures=2, wms_circuit_reset_s=0.3
    ) as rig:
        rig.wms.faults.set("create_order", error_rate=1.0)
        await rig.release(ref)
        [opened, *_] = await rig.wait_for(PartnerCircuitChanged)
        assert (opened.service, opened.partner, opened.state) == ("wms-bridge", "wms", "open")
        assert opened.reason == "2 failures in a row (WmsUnavailable)"
        rig.wms.faults.clear()
        await rig.wait_for(WarehouseOrderAccepted, ref)

        async def announced() -> list[PartnerCircuitChanged]:
            return await rig.events(PartnerCircuitChanged)

        news = await eventually(
            announced, until=lambda found: found[-1].state == "closed", what="the breaker closed"
        )
        await rig.commands_settled()
    _one_announcement_per_transition(news)
    assert {n.state for n in news} == {"open", "half_open", "closed"}
    assert news[-2].state == "half_open"
    assert news[-1].reason == "a trial call succeeded"
    assert len({n.instance for n in news}) == 1
    assert [n.business_key() for n in news] == [f"wms-bridge/{news[0].instance}/wms"] * len(news)


async def test_the_breaker_moving_while_nats_is_away_neither_blocks_nor_breaks_the_call(
    fresh_nats_server: AuthenticatedServer, nats_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    subjects = SubjectMap(nats_prefix)
    url = fresh_nats_server.client_url
    client = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    wms = WmsSandbox(WmsConfig(api_key="news-key"))
    options: dict[str, Any] = {
        "wms_api_key": "news-key",
        "wms_webhook_secret": "s",
        "wms_retry_attempts": 1,
        "wms_circuit_failures": 2,
        "wms_circuit_reset_s": 3600,
    }
    caplog.set_level(logging.WARNING, logger="waybill_runtime.circuit_news")
    pid = fresh_nats_server.pid
    assert pid is not None
    try:
        js = client.jetstream()
        stream = subjects.events_stream
        await js.add_stream(name=stream.name, subjects=list(stream.subjects))
        publisher = Publisher(client, subjects, service="wms-bridge", ack_timeout_s=0.5)
        news = CircuitNews(publisher, service="wms-bridge", instance="test:1", retry_s=0.2)
        async with serve(wms.app()) as running, news.running():
            settings = load_settings(
                WmsBridgeSettings, environ={}, service="wms-bridge", wms_url=running.url, **options
            )
            bind_circuit_news(news)
            async with open_wms_client(settings) as wms_client:
                wms.faults.set("list_orders", error_rate=1.0)
                # The server stops answering (a hung server or a partition looks the same).
                os.kill(pid, signal.SIGSTOP)
                # The calls fail as the WMS makes them fail, never because NATS is away.
                for _ in range(2):
                    with pytest.raises(WmsUnavailable):
                        await wms_client.find_order("WH/OUT/00032")
                assert wms_client.breaker.state is CircuitState.OPEN
                with pytest.raises(CircuitOpenError):
                    await wms_client.find_order("WH/OUT/00032")

                async def warnings() -> list[str]:
                    return [r.getMessage() for r in caplog.records]

                await eventually(warnings, until=bool, what="the failed announcement logged")
                os.kill(pid, signal.SIGCONT)

                async def announced() -> list[PartnerCircuitChanged]:
                    found = await stored_in(client, subjects, stream)
                    return [
                        d.message for d in found if isinstance(d.message, PartnerCircuitChanged)
                    ]

                async def unannounced() -> int:
                    return news.unannounced

                await eventually(
                    unannounced, until=lambda n: n == 0, timeout_s=60, what="the news sent"
                )
                stored = await announced()
        bind_circuit_news(None)
    finally:
        os.kill(pid, signal.SIGCONT)
        await client.close()
    [opened] = stored
    assert (opened.partner, opened.previous_state, opened.state) == ("wms", "closed", "open")
    # Logged once for the outage, however often it was tried again.
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "cannot announce circuit wms closed -> open" in warning
