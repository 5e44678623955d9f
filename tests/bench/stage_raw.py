"""The baseline: the stage as a competent engineer writes it with nats-py alone.

A durable pull consumer; each fetched batch is handled concurrently, each
message decoded into the contract struct, transformed, published with a
dedupe id (waiting for JetStream's ack) and then acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from tests.bench.harness import FETCH_BATCH, Route, provision_route
from tests.bench.workload import CE_ID, accept, accepted_id, command_decoder, event_encoder


class RawStage:
    """Raw nats-py: fetch a batch, gather its handlers, fetch again."""

    name = "raw nats-py"

    def __init__(self, nats_url: str, tag: str) -> None:
        self._url = nats_url
        self._route = Route(
            input_subject=f"bench.{tag}.cmd.release",
            input_stream=f"BENCH_{tag.upper()}_COMMANDS",
            durable="wms-bridge-commands",
            output_stream=f"BENCH_{tag.upper()}_EVENTS",
        )
        self._output_subject = f"bench.{tag}.evt.accepted"
        self._nc: NatsClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def provision(self, js: JetStreamContext) -> Route:
        await provision_route(js, self._route, self._output_subject)
        return self._route

    async def start(self) -> None:
        self._nc = await nats.connect(self._url, name="bench-raw")
        js = self._nc.jetstream()
        sub = await js.pull_subscribe_bind(self._route.durable, self._route.input_stream)
        self._task = asyncio.create_task(self._consume(js, sub))

    async def _consume(self, js: JetStreamContext, sub: JetStreamContext.PullSubscription) -> None:
        while True:
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            await asyncio.gather(*(self._handle(js, msg) for msg in msgs))

    async def _handle(self, js: JetStreamContext, msg: Msg) -> None:
        command = command_decoder.decode(msg.data)
        accepted = accept(command)
        await js.publish(
            self._output_subject,
            event_encoder.encode(accepted),
            headers={"Nats-Msg-Id": accepted_id((msg.headers or {})[CE_ID])},
        )
        await msg.ack()

    def failure(self) -> BaseException | None:
        if self._task is None or not self._task.done() or self._task.cancelled():
            return None
        return self._task.exception()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._nc is not None:
            await self._nc.close()
