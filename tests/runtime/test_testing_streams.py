"""The test helpers' view of a consumer: nothing sent is ever reported settled before it is."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import release_command, send
from waybill_contracts import SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.service import Service
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import unsettled
from waybill_runtime.testing.waiting import eventually

# The server acknowledged a publish before counting it as pending about once in
# 300 sends on a loaded machine (nats-server 2.15): rounds enough to meet that window at times.
ROUNDS = 200


async def provisioned_durable(nats_url: str, nats_prefix: str) -> None:
    """Start and stop a wms-bridge once, leaving its command durable with no one reading it."""
    service = Service("wms-bridge")

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        raise AssertionError("nothing is consumed by the service in this test")

    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        pass


async def test_a_command_sent_just_now_is_unsettled_until_acknowledged(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    await provisioned_durable(nats_url, nats_prefix)
    subjects = SubjectMap(nats_prefix)
    assert await unsettled(nc, subjects, "wms-bridge") == 0
    reader = await nc.jetstream().pull_subscribe_bind(
        subjects.durable("wms-bridge", "commands"), stream=subjects.commands_stream.name
    )
    counts = []
    for n in range(ROUNDS):
        await send(nc, subjects, release_command(f"WH/OUT/{n}"))
        counts.append(await unsettled(nc, subjects, "wms-bridge"))
        [message] = await reader.fetch(1, timeout=5)
        await message.ack_sync()
        await eventually(
            lambda: unsettled(nc, subjects, "wms-bridge"),
            until=lambda left: left == 0,
            what=f"command {n} to count as settled once acknowledged",
        )
    assert counts == [1] * ROUNDS


async def test_an_unknown_consumer_is_not_settled(nc: NatsClient, nats_prefix: str) -> None:
    assert await unsettled(nc, SubjectMap(nats_prefix), "wms-bridge") == -1
