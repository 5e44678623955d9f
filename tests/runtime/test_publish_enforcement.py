"""The publisher refuses, before sending anything, what breaks the contracts or what its
service may not publish; on a real nats-server, through the real consumer's outcome rules."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import release_command, send
from waybill_contracts import MalformedBody, SubjectMap, fact_id
from waybill_contracts.commands import BookShipment, ReleaseToWarehouse
from waybill_contracts.events import ShipmentBooked, WarehouseOrderAccepted
from waybill_contracts.examples import example_of
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.bus.provisioning import StreamPolicy, ensure_streams
from waybill_runtime.bus.publisher import NotAllowedToPublish, Outgoing, Publisher
from waybill_runtime.outcomes import Outcome, classify
from waybill_runtime.service import Service
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters, stored_messages, stream_count
from waybill_runtime.testing.waiting import eventually


def _bad_currency() -> ShipmentBooked:
    good = example_of(ShipmentBooked)
    cost = msgspec.structs.replace(good.shipment.cost, currency="euro")  # ISO 4217 expected
    return msgspec.structs.replace(good, shipment=msgspec.structs.replace(good.shipment, cost=cost))


@pytest.fixture
async def subjects(nc: NatsClient, nats_prefix: str) -> SubjectMap:
    subjects = SubjectMap(nats_prefix)
    await ensure_streams(nc.jetstream(), subjects, StreamPolicy())
    return subjects


async def test_a_message_breaking_its_contract_is_refused_naming_the_field_and_not_sent(
    nc: NatsClient, subjects: SubjectMap
) -> None:
    publisher = Publisher(nc, subjects, service="carrier-router")
    with pytest.raises(MalformedBody) as refused:
        await publisher.publish(_bad_currency())
    assert refused.value.field == "shipment.cost.currency"
    assert "shipment.cost.currency" in str(refused.value)
    assert await stream_count(nc, subjects.events_stream.name) == 0
    # The consumer's outcome rules treat the refusal as permanent: a dead letter, not a retry.
    verdict = classify(refused.value)
    assert verdict.outcome is Outcome.DEAD_LETTER
    assert "shipment.cost.currency" in verdict.reason
    # A valid message goes out on the same publisher.
    await publisher.publish(example_of(ShipmentBooked))
    assert await stream_count(nc, subjects.events_stream.name) == 1


async def test_a_type_the_service_may_not_publish_is_refused_naming_both(
    nc: NatsClient, subjects: SubjectMap
) -> None:
    publisher = Publisher(
        nc,
        subjects,
        service="wms-bridge",
        may_publish=frozenset({WarehouseOrderAccepted}),
    )
    with pytest.raises(NotAllowedToPublish) as refused:
        await publisher.publish(example_of(ShipmentBooked))
    assert "wms-bridge" in str(refused.value)
    assert "ShipmentBooked" in str(refused.value)
    assert classify(refused.value).outcome is Outcome.DEAD_LETTER
    with pytest.raises(NotAllowedToPublish):
        await publisher.publish_many([Outgoing(message=example_of(ShipmentBooked))])
    assert await stream_count(nc, subjects.events_stream.name) == 0
    await publisher.publish(example_of(WarehouseOrderAccepted))
    [(accepted, context)] = await stored_messages(nc, subjects, WarehouseOrderAccepted)
    assert accepted == example_of(WarehouseOrderAccepted)
    assert context.source == "waybill/wms-bridge"


async def test_without_a_set_of_types_any_valid_message_may_be_published(
    nc: NatsClient, subjects: SubjectMap
) -> None:
    publisher = Publisher(nc, subjects, service="test")
    await publisher.publish(example_of(ShipmentBooked))
    await publisher.publish(release_command("WH/OUT/1"))
    assert await stream_count(nc, subjects.events_stream.name) == 1
    assert await stream_count(nc, subjects.commands_stream.name) == 1


async def test_bulk_publishing_enforces_the_same_and_sends_nothing_of_a_refused_batch(
    nc: NatsClient, subjects: SubjectMap
) -> None:
    publisher = Publisher(
        nc, subjects, service="carrier-router", may_publish=frozenset({ShipmentBooked})
    )
    good = [
        Outgoing(message=example_of(ShipmentBooked), fact_id=fact_id("booked", n)) for n in range(3)
    ]
    with pytest.raises(MalformedBody) as refused:
        await publisher.publish_many([*good, Outgoing(message=_bad_currency())])
    assert refused.value.field == "shipment.cost.currency"
    with pytest.raises(NotAllowedToPublish):
        await publisher.publish_many([*good, Outgoing(message=release_command("WH/OUT/2"))])
    assert await stream_count(nc, subjects.events_stream.name) == 0
    assert await stream_count(nc, subjects.commands_stream.name) == 0
    acks = await publisher.publish_many(good)
    assert len(acks) == 3 and not any(ack.duplicate for ack in acks)
    assert await stream_count(nc, subjects.events_stream.name) == 3


async def test_a_handler_publishing_a_broken_message_is_dead_lettered_with_the_field(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    service = Service("wms-bridge")

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        # A warehouse that answered with an empty order id.
        await ctx.publish(
            WarehouseOrderAccepted(
                order_ref=command.order.ref, warehouse_order_id="", accepted_at=ctx.envelope.time
            )
        )

    subjects = SubjectMap(nats_prefix)
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        await send(nc, subjects, release_command("WH/OUT/3"))
        [letter] = await eventually(
            lambda: dead_letters(nc, subjects), until=lambda d: len(d) == 1, what="a dead letter"
        )
    assert letter.reason == "permanent error"
    assert letter.attempts == 1  # not retried: retrying cannot fix it
    assert "warehouse_order_id" in letter.error_message
    assert letter.error_type == "waybill_contracts.errors.MalformedBody"
    assert await stream_count(nc, subjects.events_stream.name) == 0


async def test_a_running_service_may_publish_only_what_its_declaration_allows(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    service = Service("wms-bridge")
    # The contracts name the orchestrator, not the bridge, as the sender of bookings.
    assert BookShipment not in service.sends
    assert WarehouseOrderAccepted in service.publishes

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        await ctx.publish(example_of(BookShipment))

    subjects = SubjectMap(nats_prefix)
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        await send(nc, subjects, release_command("WH/OUT/4"))
        [letter] = await eventually(
            lambda: dead_letters(nc, subjects), until=lambda d: len(d) == 1, what="a dead letter"
        )
    assert letter.reason == "permanent error"
    assert "wms-bridge" in letter.error_message and "BookShipment" in letter.error_message
    assert await stream_count(nc, subjects.commands_stream.name) == 1  # the release only
