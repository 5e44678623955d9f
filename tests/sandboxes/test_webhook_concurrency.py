"""Webhook senders deliver one event at a time by default, several at once when told to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from waybill_sandboxes.delivery import DeliveryPolicy, WebhookSender
from waybill_sandboxes.server import RunningSandbox, serve


class HoldingReceiver:
    """Holds every POST until ``release`` is set; counts how many it held at once."""

    def __init__(self, release_at: int) -> None:
        self.in_flight = 0
        self.most_at_once = 0
        self.received = 0
        self.release = asyncio.Event()
        self._release_at = release_at

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hooks", self._receive)
        return app

    async def _receive(self, request: web.Request) -> web.Response:
        await request.read()
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)
        if self.in_flight >= self._release_at:
            self.release.set()
        try:
            # Yield long enough for any other POST the sender has open to arrive.
            async with asyncio.timeout(0.2):
                await self.release.wait()
        except TimeoutError:
            pass
        finally:
            self.in_flight -= 1
            self.received += 1
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[HoldingReceiver, RunningSandbox]]:
    holding = HoldingReceiver(release_at=4)
    async with serve(holding.app()) as running:
        yield holding, running


async def deliver(sender: WebhookSender, events: int) -> None:
    await sender.start()
    try:
        for n in range(events):
            sender.enqueue(f"evt-{n}", "order.accepted", b"{}")
        await sender.drain(timeout_s=30)
    finally:
        await sender.close()


async def test_a_concurrent_sender_has_several_posts_open_at_once(
    receiver: tuple[HoldingReceiver, RunningSandbox],
) -> None:
    holding, running = receiver
    sender = WebhookSender(
        sign=lambda body: {}, url=f"{running.url}/hooks", policy=DeliveryPolicy(concurrency=4)
    )
    await deliver(sender, 8)

    assert holding.most_at_once == 4
    assert holding.received == 8
    assert {record.outcome for record in sender.records} == {"delivered"}


async def test_the_default_sender_posts_one_event_at_a_time(
    receiver: tuple[HoldingReceiver, RunningSandbox],
) -> None:
    holding, running = receiver
    sender = WebhookSender(sign=lambda body: {}, url=f"{running.url}/hooks")
    await deliver(sender, 4)

    assert holding.most_at_once == 1
    assert [record.outcome for record in sender.records] == ["delivered"] * 4
