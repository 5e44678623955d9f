"""The stage on the Waybill runtime: a wms-bridge service with one handler.

Everything but the handler is the runtime's: its connection, its own
provisioning of streams and consumer, its consumer loop (typed decoding of
the CloudEvents envelope, outcome handling, trace spans, metrics) and its
publisher (context propagation, dedupe id, publish ack). Concurrency and
fetch size are set to the other stages' 64 through the ordinary settings.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from nats.js.client import JetStreamContext

from tests.bench.harness import FETCH_BATCH, Route
from tests.bench.workload import accept, accepted_id
from waybill_contracts import SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.service import Service
from waybill_runtime.settings import RuntimeSettings, load_settings

SERVICE = "wms-bridge"
# How long the service may take to start (connect, provision, HTTP server).
START_TIMEOUT_S = 30.0


def wms_bridge() -> Service[RuntimeSettings]:
    """The service under test: accept every release with the shared transform."""
    service: Service[RuntimeSettings] = Service(SERVICE)

    @service.handles(ReleaseToWarehouse)
    async def release_to_warehouse(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        await ctx.publish(accept(command), fact_id=accepted_id(ctx.message_id))

    return service


class RuntimeStage:
    """The runtime's ``Service.serve`` with the bench's handler."""

    name = "Waybill runtime"

    def __init__(self, nats_url: str, tag: str) -> None:
        self._settings = load_settings(
            RuntimeSettings,
            environ={},
            service=SERVICE,
            nats_url=nats_url,
            subject_prefix=f"bench{tag}",
            http_host="127.0.0.1",
            http_port=0,
            consumer_concurrency=FETCH_BATCH,
            fetch_batch=FETCH_BATCH,
        )
        self._service = wms_bridge()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def provision(self, js: JetStreamContext) -> Route:
        # The runtime provisions what it declares when it starts: start it on
        # the empty streams, stop it, and let the harness fill the input.
        await self.start()
        await self.stop()
        subjects = SubjectMap(self._settings.subject_prefix)
        return Route(
            input_subject=subjects.subject_for(ReleaseToWarehouse),
            input_stream=subjects.commands_stream.name,
            durable=subjects.durable(SERVICE, "commands"),
            output_stream=subjects.events_stream.name,
        )

    async def start(self) -> None:
        self._stop = asyncio.Event()
        ready = asyncio.Event()
        self._task = asyncio.create_task(
            self._service.serve(self._settings, self._stop, ready=ready)
        )
        ready_wait = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait(
            {self._task, ready_wait}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if ready_wait not in done:
            ready_wait.cancel()
            if self._task in done:
                self._task.result()  # raises what stopped the service
            raise TimeoutError(f"the runtime did not become ready within {START_TIMEOUT_S:.0f} s")

    def failure(self) -> BaseException | None:
        if self._task is None or not self._task.done() or self._task.cancelled():
            return None
        return self._task.exception() or RuntimeError("the service stopped by itself")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
