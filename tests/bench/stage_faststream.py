"""The stage on FastStream: a NATS pull subscriber on a JetStream durable.

FastStream is configured for its best throughput on this stage among the
variants measured (see docs/benchmarks.md), all documented options:

* ``PullSub(batch_size=64)`` without ``max_workers``: FastStream handles each
  fetched batch concurrently in a task group, the same fetch-then-gather shape
  as the raw stage. Its concurrent pull subscriber (``max_workers=64``: a
  fetch loop feeding 64 workers through a queue) was slower here.
* ``apply_types=False`` and an async custom ``decoder`` that decodes the body
  into the same msgspec struct the other stages use. With FastStream's
  default dependency injection, asking for the message (``msg: NatsMessage``,
  to read the ``ce-id`` header) resolves that context parameter in a worker
  thread for every message, which was much slower.
* FastStream's default acknowledgement (ack after the handler returns).
* ``logger=None``: FastStream otherwise logs two lines per message at INFO,
  which no other stage does.
* The publish names the output ``stream``, which makes FastStream wait for
  JetStream's publish ack (without it, it publishes without waiting).

Streams and the durable are created by the harness (the same configuration
as the other stages); FastStream only binds to them (``declare=False``).
"""

from __future__ import annotations

from typing import NamedTuple

from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.js.client import JetStreamContext

from tests.bench.harness import FETCH_BATCH, Route, provision_route
from tests.bench.workload import CE_ID, accept, accepted_id, command_decoder, event_encoder
from waybill_contracts.commands import ReleaseToWarehouse


class Release(NamedTuple):
    """What the decoder hands the handler: the command and the id it came with."""

    command: ReleaseToWarehouse
    command_id: str


class FastStreamStage:
    """FastStream's NatsBroker with a pull subscriber handling each batch concurrently."""

    name = "FastStream"

    def __init__(self, nats_url: str, tag: str) -> None:
        self._route = Route(
            input_subject=f"bench.{tag}.cmd.release",
            input_stream=f"BENCH_{tag.upper()}_COMMANDS",
            durable="wms-bridge-commands",
            output_stream=f"BENCH_{tag.upper()}_EVENTS",
        )
        self._output_subject = f"bench.{tag}.evt.accepted"
        self._failure: BaseException | None = None
        self._broker = self._build(nats_url)

    def _build(self, nats_url: str) -> NatsBroker:
        route, output_subject = self._route, self._output_subject
        broker = NatsBroker(nats_url, logger=None, apply_types=False, name="bench-faststream")

        async def decode_release(msg: NatsMessage) -> Release:
            try:
                return Release(command_decoder.decode(msg.body), msg.headers[CE_ID])
            except Exception as error:
                self._failure = self._failure or error
                raise

        @broker.subscriber(
            route.input_subject,
            stream=JStream(name=route.input_stream, declare=False),
            durable=route.durable,
            pull_sub=PullSub(batch_size=FETCH_BATCH, timeout=1.0),
            decoder=decode_release,
        )
        async def release_to_warehouse(release: Release) -> None:
            try:
                accepted = accept(release.command)
                await broker.publish(
                    event_encoder.encode(accepted),
                    output_subject,
                    headers={"Nats-Msg-Id": accepted_id(release.command_id)},
                    stream=route.output_stream,
                )
            except Exception as error:
                # With logging off FastStream would only reject the message;
                # keep the error so the harness can report it.
                self._failure = self._failure or error
                raise

        return broker

    async def provision(self, js: JetStreamContext) -> Route:
        await provision_route(js, self._route, self._output_subject)
        return self._route

    async def start(self) -> None:
        await self._broker.start()

    async def stop(self) -> None:
        await self._broker.stop()

    def failure(self) -> BaseException | None:
        return self._failure
