"""Provisioning from the settings: retention and replicas as configured, conflicts reported."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from waybill_contracts import KV_TTL_S, SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.bus.provisioning import DAY_S, ProvisioningConflict, ProvisioningRefused
from waybill_runtime.declaration import Bucket
from waybill_runtime.service import Service
from waybill_runtime.testing.services import running_service


def bridge() -> Service[Any]:
    service: Service[Any] = Service("wms-bridge", buckets=(Bucket("watermarks"),))

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        pass

    return service


async def test_streams_and_buckets_are_made_as_the_settings_say(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    settings: dict[str, Any] = {
        "nats_url": nats_url,
        "subject_prefix": nats_prefix,
        "events_retention_days": 2,
        "commands_retention_days": 1.5,
        "dead_letters_retention_days": 90,
        "duplicate_window_s": 300,
    }
    async with running_service(bridge(), **settings):
        pass
    async with running_service(bridge(), **settings):  # a second start accepts what it made
        pass
    subjects = SubjectMap(nats_prefix)
    js = nc.jetstream()
    ages = {
        stream.name: (await js.stream_info(stream.name)).config
        for stream in (subjects.events_stream, subjects.commands_stream, subjects.dlq_stream)
    }
    assert ages[subjects.events_stream.name].max_age == pytest.approx(2 * DAY_S)
    assert ages[subjects.commands_stream.name].max_age == pytest.approx(1.5 * DAY_S)
    assert ages[subjects.dlq_stream.name].max_age == pytest.approx(90 * DAY_S)
    assert {config.duplicate_window for config in ages.values()} == {300}
    assert {config.num_replicas for config in ages.values()} == {1}
    watermarks = await js.key_value(subjects.kv_bucket("watermarks"))
    assert (await watermarks.status()).bucket == subjects.kv_bucket("watermarks")


async def test_each_bucket_is_made_with_the_ttl_of_its_purpose_from_the_contracts(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    service: Service[Any] = Service(
        "notifier", buckets=(Bucket("workflow"), Bucket("contacts"), Bucket("tracking"))
    )
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        pass
    subjects = SubjectMap(nats_prefix)
    js = nc.jetstream()
    ttl = {
        purpose: (await (await js.key_value(subjects.kv_bucket(purpose))).status()).ttl
        for purpose in ("idempotency", "workflow", "contacts", "tracking")
    }
    assert ttl["idempotency"] == pytest.approx(KV_TTL_S["idempotency"]) == pytest.approx(7 * DAY_S)
    assert ttl["contacts"] == pytest.approx(KV_TTL_S["contacts"]) == pytest.approx(30 * DAY_S)
    assert ttl["tracking"] == pytest.approx(KV_TTL_S["tracking"])
    assert not ttl["workflow"]  # process state never expires


async def test_a_stream_made_with_other_settings_is_reported_not_changed(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    settings: dict[str, Any] = {"nats_url": nats_url, "subject_prefix": nats_prefix}
    async with running_service(bridge(), **settings, events_retention_days=14):
        pass
    with pytest.raises(ProvisioningConflict) as conflict:
        async with running_service(bridge(), **settings, events_retention_days=30):
            pass
    message = str(conflict.value)
    assert f"stream {SubjectMap(nats_prefix).events_stream.name} exists" in message
    assert f"max_age: has {14 * DAY_S}, Waybill expects {30 * DAY_S}" in message
    assert "edit or recreate it deliberately" in message
    events = await nc.jetstream().stream_info(SubjectMap(nats_prefix).events_stream.name)
    assert events.config.max_age == pytest.approx(14 * DAY_S)  # left alone


async def test_more_replicas_than_servers_is_refused_with_what_to_check(
    nats_url: str, nats_prefix: str
) -> None:
    with pytest.raises(ProvisioningRefused) as refused:
        async with running_service(
            bridge(), nats_url=nats_url, subject_prefix=nats_prefix, stream_replicas=3
        ):
            pass
    message = str(refused.value)
    assert "JetStream refused to create stream" in message
    assert "WAYBILL_STREAM_REPLICAS=3" in message
