"""The poll stops when the service stops, even when a library swallowed the cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from nats.js.errors import KeyNotFoundError

from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.delivery_poll import DeliveryPoll
from waybill_runtime.periodic import every
from waybill_runtime.settings import load_settings


class AnsweringTooLateToCancel:
    """A KV bucket whose reads behave like nats-py's on Python 3.11: a cancellation that
    arrives with the answer is lost (``asyncio.wait_for`` returns the answer instead)."""

    def __init__(self) -> None:
        self.reads = 0
        self.reading = asyncio.Event()

    async def get(self, key: str) -> Any:
        self.reads += 1
        self.reading.set()
        with contextlib.suppress(asyncio.CancelledError):  # the answer was already in
            await asyncio.sleep(0.05)
        raise KeyNotFoundError


class EmptyOdoo:
    async def connect(self) -> None:
        return None

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        return []


async def test_poll_stops_although_its_cancellation_was_swallowed() -> None:
    settings = load_settings(OdooGatewaySettings, environ={}, service="odoo-gateway")
    bucket = AnsweringTooLateToCancel()
    poll = DeliveryPoll(EmptyOdoo(), facts=None, watermarks=bucket, settings=settings)  # type: ignore[arg-type]

    async def run_and_stop() -> None:
        async with every(0.01, poll.poll_once, name="odoo poll", first_after_s=0.0):
            await bucket.reading.wait()  # stop while the poll waits for its answer

    # Generous: it bounds a hang (the failure this test is about), it times nothing.
    await asyncio.wait_for(run_and_stop(), timeout=30)
    assert bucket.reads == 1
