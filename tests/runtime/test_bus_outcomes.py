"""Handler outcomes on a real nats-server: ack, retry with backoff, dead letter, replay."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import release_command, send
from waybill_contracts import SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.events import WarehouseOrderAccepted
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.bus.dead_letters import iter_dead_letters
from waybill_runtime.bus.replay import replay
from waybill_runtime.outcomes import PermanentError, TransientError
from waybill_runtime.service import Runtime, Service
from waybill_runtime.settings import RuntimeSettings
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters, stream_count, unsettled
from waybill_runtime.testing.waiting import eventually

FAST_RETRIES: dict[str, Any] = {"retry_backoff_s": (0.05,), "max_deliver": 4}


async def test_transient_failures_are_retried_and_the_message_processed_once(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    service = Service("wms-bridge")
    attempts: list[int] = []
    processed: list[str] = []

    @service.handles(ReleaseToWarehouse)
    async def flaky(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise TransientError("warehouse answered 503")
        processed.append(command.order.ref)

    subjects = SubjectMap(nats_prefix)
    async with running_service(
        service, nats_url=nats_url, subject_prefix=nats_prefix, **FAST_RETRIES
    ):
        await send(nc, subjects, release_command("WH/OUT/1"))

        async def done() -> list[str]:
            return processed

        await eventually(done, what="the third attempt to succeed")
        # Nothing is left to redeliver: the work-queue stream is empty once acked.
        await eventually(
            lambda: unsettled(nc, subjects, "wms-bridge"),
            until=lambda n: n == 0,
            what="the acked command to leave the work queue",
        )
    assert attempts == [1, 2, 3]
    assert processed == ["WH/OUT/1"]
    assert await dead_letters(nc, subjects) == []


async def test_bad_messages_are_dead_lettered_and_the_consumer_keeps_going(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    service = Service("wms-bridge")
    processed: list[str] = []

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        processed.append(command.order.ref)

    subjects = SubjectMap(nats_prefix)
    subject = subjects.subject_for(ReleaseToWarehouse)
    js = nc.jetstream()
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        valid_id = await send(nc, subjects, release_command("WH/OUT/2"))
        headers = {
            "ce-specversion": "1.0",
            "ce-id": "garbage-1",
            "ce-source": "waybill/orchestrator",
            "ce-type": ReleaseToWarehouse.ce_type(),
            "ce-time": "2026-11-27T08:00:00Z",
            "content-type": "application/json",
        }
        await js.publish(subject, b"\x00not json{", headers=headers)
        unknown = {**headers, "ce-id": "unknown-type-1", "ce-type": "io.waybill.cmd.nope.v1"}
        await js.publish(subject, b"{}", headers=unknown)
        await send(nc, subjects, release_command("WH/OUT/3"))

        letters = await eventually(
            lambda: dead_letters(nc, subjects),
            until=lambda found: len(found) == 2,
            what="two dead letters",
        )

        async def both_valid() -> list[str]:
            return processed

        await eventually(both_valid, until=lambda p: len(p) == 2, what="the valid messages")
    assert sorted(processed) == ["WH/OUT/2", "WH/OUT/3"]
    assert valid_id
    by_id = {letter.original_headers["ce-id"]: letter for letter in letters}
    garbage, unknown_type = by_id["garbage-1"], by_id["unknown-type-1"]
    for letter in (garbage, unknown_type):
        assert letter.service == "wms-bridge"
        assert letter.reason == "invalid message"
        assert letter.original_subject == subject
        assert letter.attempts == 1
    assert garbage.original_body == b"\x00not json{"
    assert "nope" in unknown_type.error_message
    assert garbage.error_message and garbage.error_message != unknown_type.error_message


async def test_replay_puts_a_dead_letter_back_and_it_is_processed(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    service = Service("wms-bridge")
    warehouse_knows_sku = False
    processed: list[str] = []

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        if not warehouse_knows_sku:
            raise PermanentError("warehouse rejected the order: unknown SKU MUG-BLUE")
        processed.append(command.order.ref)
        await ctx.publish(
            WarehouseOrderAccepted(
                order_ref=command.order.ref,
                warehouse_order_id="WMS-1",
                accepted_at=ctx.envelope.time,
            )
        )

    subjects = SubjectMap(nats_prefix)
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        await send(nc, subjects, release_command("WH/OUT/4"))
        letters = await eventually(
            lambda: dead_letters(nc, subjects), until=lambda f: len(f) == 1, what="a dead letter"
        )
        assert letters[0].reason == "permanent error"
        assert "unknown SKU" in letters[0].error_message

        warehouse_knows_sku = True  # the operator fixed the product master
        stored = [s async for s in iter_dead_letters(nc.jetstream(), subjects)]
        assert len(stored) == 1
        await replay(nc.jetstream(), subjects, stored[0], operator="test")

        async def done() -> list[str]:
            return processed

        await eventually(done, what="the replayed order to be processed")
        await eventually(
            lambda: stream_count(nc, subjects.events_stream.name),
            until=lambda n: n == 1,
            what="the accepted event",
        )
    assert processed == ["WH/OUT/4"]
    assert await dead_letters(nc, subjects) == []  # replay removed it


async def test_exhausted_retries_end_as_a_dead_letter(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    service = Service("wms-bridge")
    attempts: list[int] = []

    @service.handles(ReleaseToWarehouse)
    async def always_down(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        attempts.append(ctx.attempt)
        raise TransientError("warehouse timed out")

    subjects = SubjectMap(nats_prefix)
    async with running_service(
        service, nats_url=nats_url, subject_prefix=nats_prefix, **FAST_RETRIES
    ):
        await send(nc, subjects, release_command("WH/OUT/5"))
        letters = await eventually(
            lambda: dead_letters(nc, subjects), until=lambda f: len(f) == 1, what="a dead letter"
        )
    assert attempts == [1, 2, 3, 4]
    assert letters[0].reason == "retries exhausted"
    assert letters[0].attempts == 4
    assert "warehouse timed out" in letters[0].error_message


async def test_a_service_can_watch_every_dead_letter(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    from waybill_runtime.bus.dead_letters import StoredDeadLetter

    failing = Service("wms-bridge")

    @failing.handles(ReleaseToWarehouse)
    async def reject(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        raise PermanentError(f"order {command.order.ref} rejected")

    watcher = Service("auditor")
    seen: list[StoredDeadLetter] = []
    attempts: list[int] = []

    @watcher.handles_dead_letters
    async def record(stored: StoredDeadLetter, runtime: Runtime[RuntimeSettings]) -> None:
        assert runtime.settings.service == "auditor"
        attempts.append(stored.sequence)
        if len(attempts) == 1:
            raise OSError("audit database locked")  # retried, not lost
        seen.append(stored)

    subjects = SubjectMap(nats_prefix)
    settings: dict[str, Any] = {"nats_url": nats_url, "subject_prefix": nats_prefix}
    async with (
        running_service(failing, **settings, **FAST_RETRIES),
        running_service(watcher, **settings, **FAST_RETRIES),
    ):
        await send(nc, subjects, release_command("WH/OUT/9"))

        async def recorded() -> list[StoredDeadLetter]:
            return seen

        await eventually(recorded, what="the watcher to record the dead letter")
    assert len(attempts) == 2
    assert seen[0].letter.service == "wms-bridge"
    assert "WH/OUT/9 rejected" in seen[0].letter.error_message


async def test_handlers_reach_resources_their_service_provides(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    import contextlib
    from collections.abc import AsyncIterator

    from waybill_runtime.service import ResourceKey

    warehouse_key: ResourceKey[list[str]] = ResourceKey("warehouse")
    service = Service("wms-bridge")
    opened: list[str] = []

    @service.resource(warehouse_key)
    @contextlib.asynccontextmanager
    async def warehouse(runtime: Runtime[Any]) -> AsyncIterator[list[str]]:
        opened.append("open")
        yield opened
        opened.append("closed")

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        ctx.resource(warehouse_key).append(command.order.ref)

    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        await send(nc, SubjectMap(nats_prefix), release_command("WH/OUT/12"))

        async def calls() -> list[str]:
            return opened

        await eventually(calls, until=lambda c: "WH/OUT/12" in c, what="the handler's call")
    assert opened == ["open", "WH/OUT/12", "closed"]


async def test_a_new_events_only_service_skips_the_history_it_was_deployed_onto(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    from waybill_contracts.events import WarehouseOrderAccepted
    from waybill_contracts.examples import example_of

    subjects = SubjectMap(nats_prefix)
    historian = Service("orchestrator")  # provisions the streams, keeps history
    mailer = Service("notifier", new_events_only=True)
    seen: list[str] = []

    @historian.handles(WarehouseOrderAccepted)
    async def ignore(event: WarehouseOrderAccepted, ctx: HandlerContext[Any]) -> None:
        return None

    @mailer.handles(WarehouseOrderAccepted)
    async def mail(event: WarehouseOrderAccepted, ctx: HandlerContext[Any]) -> None:
        seen.append(event.order_ref)

    old = msgspec.structs.replace(example_of(WarehouseOrderAccepted), order_ref="OLD/1")
    new = msgspec.structs.replace(old, order_ref="NEW/1")
    settings: dict[str, Any] = {"nats_url": nats_url, "subject_prefix": nats_prefix}
    async with running_service(historian, **settings):
        await send(nc, subjects, old)  # last week's event
        await eventually(
            lambda: stream_count(nc, subjects.events_stream.name), until=lambda n: n == 1
        )
    async with running_service(mailer, **settings):
        await send(nc, subjects, new)

        async def mailed() -> list[str]:
            return seen

        await eventually(mailed, what="the new event")
    async with running_service(mailer, **settings):  # a restart keeps its place
        await asyncio.sleep(0.3)
    assert seen == ["NEW/1"]


async def test_stopping_honours_the_deadline_when_every_handler_hangs(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    service = Service("wms-bridge")
    started: list[str] = []
    release_them = asyncio.Event()

    @service.handles(ReleaseToWarehouse)
    async def hang(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        started.append(command.order.ref)
        await release_them.wait()  # a partner that never answers

    subjects = SubjectMap(nats_prefix)
    settings: dict[str, Any] = {
        "nats_url": nats_url,
        "subject_prefix": nats_prefix,
        "consumer_concurrency": 2,
        "shutdown_deadline_s": 0.5,
    }
    async with running_service(service, **settings):
        for n in range(3):
            await send(nc, subjects, release_command(f"WH/OUT/H{n}"))

        async def hanging() -> list[str]:
            return started

        await eventually(hanging, until=lambda s: len(s) == 2, what="both slots taken")
    # Leaving the block stopped the service although no handler ever returned;
    # the cut-off messages go back to the server for redelivery.
    assert await unsettled(nc, subjects, "wms-bridge") == 3
