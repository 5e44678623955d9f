"""What every stage of the benchmark shares: its streams, the preload, the drain watch.

A round gives one stage input and output streams of its own, fills the input
with N commands while nothing consumes it, starts the stage and waits until
the output stream holds N messages and the input consumer has nothing pending
or unacknowledged. The rate is taken from the server's own clock: N over the
time between the first and the last message stored in the output stream.
That leaves out each stage's start-up (connecting, provisioning, HTTP server),
which is paid once per process, not per message, and it does not depend on
how often the harness polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.client import JetStreamContext

from waybill_contracts import SubjectMap
from waybill_contracts.subjects import StreamSpec
from waybill_runtime.bus.provisioning import ConsumerPolicy, StreamPolicy, stream_configs

# The raw and FastStream stages get the streams and consumer settings the
# runtime declares for its own (read from the runtime, so they stay the same).
RUNTIME_STREAMS = SubjectMap("bench")
CONSUMER_POLICY = ConsumerPolicy()
# How many messages every stage fetches at once and handles concurrently.
FETCH_BATCH = 64


class StageFailed(Exception):
    """A stage did not drain its input in time, or wrote the wrong number of messages."""


@dataclass(frozen=True, kw_only=True)
class Route:
    """Where a stage reads and writes in one round."""

    input_subject: str
    input_stream: str
    durable: str
    output_stream: str


@dataclass(frozen=True)
class Command:
    """One preloaded input message: headers and body as they travel."""

    headers: dict[str, str]
    body: bytes


class Stage(Protocol):
    """One way of building the release-to-warehouse stage, for one round."""

    async def provision(self, js: JetStreamContext) -> Route:
        """Create the streams and the durable consumer; consume nothing yet."""
        ...

    async def start(self) -> None:
        """Start consuming (returns once the stage is running)."""
        ...

    async def stop(self) -> None:
        """Stop consuming and release connections."""
        ...

    def failure(self) -> BaseException | None:
        """The error that broke the stage while it ran, if one did."""
        ...


@dataclass(frozen=True, kw_only=True)
class RoundResult:
    """One timed round of one stage."""

    messages: int
    span_s: float  # first to last output message, by the server's clock
    wall_s: float  # from start() until the harness saw the stage drained
    cpu_s: float  # CPU this process used meanwhile (the stage, plus the harness's polling)

    @property
    def rate(self) -> float:
        """Messages per second: N - 1 intervals between the first and the last output."""
        return (self.messages - 1) / self.span_s if self.span_s > 0 else float("inf")

    @property
    def cpu_us_per_message(self) -> float:
        """Python CPU time per message, in microseconds: steadier than the rate on a busy host."""
        return self.cpu_s / self.messages * 1e6


def _like_runtime(stream: StreamSpec, name: str, subject: str) -> StreamConfig:
    declared = {c.name: c for c in stream_configs(RUNTIME_STREAMS, StreamPolicy())}
    return dataclasses.replace(declared[stream.name], name=name, subjects=[subject])


async def provision_route(js: JetStreamContext, route: Route, output_subject: str) -> None:
    """Streams and durable consumer for a stage that has no provisioning of its own.

    They are configured as the runtime configures its commands and events
    streams and its consumers, so no stage gets a more generous server.
    """
    await js.add_stream(
        _like_runtime(RUNTIME_STREAMS.commands_stream, route.input_stream, route.input_subject)
    )
    await js.add_stream(
        _like_runtime(RUNTIME_STREAMS.events_stream, route.output_stream, output_subject)
    )
    await js.add_consumer(
        route.input_stream,
        ConsumerConfig(
            durable_name=route.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=CONSUMER_POLICY.max_ack_pending,
            max_deliver=CONSUMER_POLICY.max_deliver,
            ack_wait=CONSUMER_POLICY.ack_wait_s,
            filter_subject=route.input_subject,
        ),
    )


async def preload(js: JetStreamContext, subject: str, commands: Sequence[Command]) -> None:
    """Publish ``commands`` to ``subject``, pipelined, and wait for every publish ack."""
    window = 1000
    for start in range(0, len(commands), window):
        futures = [
            await js.publish_async(subject, command.body, headers=dict(command.headers))
            for command in commands[start : start + window]
        ]
        await asyncio.gather(*futures)


@dataclass(frozen=True)
class _OutputState:
    messages: int
    first_ns: int
    last_ns: int


def _rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch of a server timestamp (Python parses microseconds only)."""
    # The server always writes UTC with a "Z" and up to nine fraction digits.
    main, _, fraction = text.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(main + "+00:00").timestamp())
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


async def _output_state(nc: NatsClient, stream: str) -> _OutputState:
    # nats-py's StreamState drops first_ts/last_ts, so ask the JetStream API directly.
    reply = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=5.0)
    state = json.loads(reply.data)["state"]
    if not state.get("messages"):
        return _OutputState(0, 0, 0)
    return _OutputState(
        state["messages"], _rfc3339_ns(state["first_ts"]), _rfc3339_ns(state["last_ts"])
    )


async def wait_drained(
    nc: NatsClient,
    js: JetStreamContext,
    stage: Stage,
    route: Route,
    expected: int,
    *,
    timeout_s: float,
    stall_s: float = 30.0,
    poll_s: float = 0.05,
) -> _OutputState:
    """Poll until the output holds ``expected`` messages and the input is fully acked."""
    started = time.monotonic()
    last_progress, last_seen = started, (-1, -1, -1)
    while True:
        failure = stage.failure()
        if failure is not None:
            raise StageFailed(f"the stage failed: {type(failure).__name__}: {failure}") from failure
        output = await _output_state(nc, route.output_stream)
        info = await js.consumer_info(route.input_stream, route.durable)
        pending, unacked = info.num_pending or 0, info.num_ack_pending or 0
        if output.messages >= expected and not pending and not unacked:
            if output.messages > expected:
                raise StageFailed(
                    f"{route.output_stream} holds {output.messages} messages for "
                    f"{expected} inputs: the dedupe id did not stop a repeat"
                )
            return output
        now = time.monotonic()
        seen = (output.messages, pending, unacked)
        if seen != last_seen:
            last_progress, last_seen = now, seen
        if now - started > timeout_s or now - last_progress > stall_s:
            stalled = now - started <= timeout_s
            raise StageFailed(
                (
                    f"no progress for {stall_s:.0f} s"
                    if stalled
                    else f"not done in {timeout_s:.0f} s"
                )
                + f": {route.output_stream} holds {output.messages} of {expected} messages; "
                f"input consumer {route.durable}: {pending} not yet delivered, "
                f"{unacked} delivered but not acknowledged"
            )
        await asyncio.sleep(poll_s)


async def run_round(
    nc: NatsClient,
    stage: Stage,
    commands: Sequence[Command],
    *,
    timeout_s: float,
    meter: contextlib.AbstractContextManager[Any] | None = None,
) -> RoundResult:
    """Provision, preload, then time ``stage`` from start until drained; always stop it.

    A ``meter`` (a profiler, a heap tracer) is on for the consumption only, not
    the preload.
    """
    js = nc.jetstream()
    route = await stage.provision(js)
    await preload(js, route.input_subject, commands)
    metering = contextlib.ExitStack()
    if meter is not None:
        metering.enter_context(meter)
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        await stage.start()
        try:
            output = await wait_drained(nc, js, stage, route, len(commands), timeout_s=timeout_s)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
        finally:
            metering.close()
            await stage.stop()
    finally:
        metering.close()  # also when start() failed; closing twice does nothing
    return RoundResult(
        messages=len(commands),
        span_s=(output.last_ns - output.first_ns) / 1e9,
        wall_s=wall,
        cpu_s=cpu,
    )


async def delete_all_streams(js: JetStreamContext) -> None:
    """The bench owns its server: drop every stream between rounds to keep the store small."""
    for info in await js.streams_info():
        if info.config.name is not None:
            await js.delete_stream(info.config.name)
