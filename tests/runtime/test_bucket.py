"""A service's KV buckets write and read without nats-py's generic request path, and
answer as nats-py's ``KeyValue`` does (revisions, conflicts, deletes, TTLs)."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoStreamResponseError
from nats.js.kv import KeyValue

from tests.runtime.bus_helpers import release_command, send
from waybill_contracts import SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.bucket import KvBucket
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.bus.expiring import write_expiring
from waybill_runtime.bus.publish_acks import PublishAcks
from waybill_runtime.service import Service
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.waiting import eventually


async def _kv_work(kv: KeyValue) -> dict[str, Any]:
    """What a service does with a bucket, and what each step answered."""
    seen: dict[str, Any] = {}
    first = await kv.create("order.1", b"released")
    second = await kv.update("order.1", b"picked", last=first)
    seen["revisions"] = (first, second)
    try:
        await kv.update("order.1", b"stale", last=first)
    except KeyWrongLastSequenceError:
        seen["stale update"] = "refused"
    try:
        await kv.create("order.1", b"again")
    except KeyWrongLastSequenceError:
        seen["second create"] = "refused"
    entry = await kv.get("order.1")
    seen["read"] = (entry.key, entry.value, entry.revision)
    seen["put"] = await kv.put("order.2", b"x") > second
    try:
        await kv.get("order.missing")
    except KeyNotFoundError:
        seen["missing"] = "not found"
    await kv.delete("order.2")
    try:
        await kv.get("order.2")
    except KeyNotFoundError as deleted:
        marker = getattr(deleted, "entry", None)
        assert marker is not None
        seen["deleted"] = (marker.revision or 0) > 0
        # A deleted key is written again over its marker, as the runtime's OnceOnly does.
        seen["rewritten"] = await kv.update("order.2", b"y", last=marker.revision) > 0
    expiring = await write_expiring(kv, "order.3", b"done", last=None, ttl_s=60)
    seen["expiring"] = (await kv.get("order.3")).revision == expiring
    await kv.purge("order.3")
    try:
        await kv.get("order.3")
    except KeyNotFoundError:
        seen["purged"] = "not found"
    return seen


async def test_a_services_buckets_use_no_nats_py_request_and_answer_as_nats_py_does(
    nc: NatsClient, nats_url: str, nats_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # nats-py's Client.request: a NUID, a future, an asyncio.wait_for and a JSON
    # ack per call; counted for KV writes and reads only.
    kv_requests: list[str] = []
    request = NatsClient.request

    async def counted(self: NatsClient, subject: str, *args: Any, **kwargs: Any) -> Any:
        if subject.startswith("$KV.") or ".STREAM.MSG.GET." in subject:
            kv_requests.append(subject)
        return await request(self, subject, *args, **kwargs)

    monkeypatch.setattr(NatsClient, "request", counted)
    service = Service("wms-bridge")
    results: list[dict[str, Any]] = []

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        results.append(await _kv_work(ctx.runtime.buckets["idempotency"]))

    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        await send(nc, SubjectMap(nats_prefix), release_command("WH/OUT/71"))

        async def handled() -> list[dict[str, Any]]:
            return results

        await eventually(handled, what="the handler's work with its bucket")
    seen = results[0]
    first, second = seen.pop("revisions")
    assert second > first > 0
    assert seen == {
        "stale update": "refused",
        "second create": "refused",
        "read": ("order.1", b"picked", second),
        "put": True,
        "missing": "not found",
        "deleted": True,
        "rewritten": True,
        "expiring": True,
        "purged": "not found",
    }
    # Twelve writes and reads went through nats-py's request path before (one each).
    assert kv_requests == []


async def test_nats_py_buckets_answer_the_same(nc: NatsClient, nats_prefix: str) -> None:
    """The same steps on nats-py's own KeyValue: the answers the runtime's must match."""
    js = nc.jetstream()
    kv = await js.create_key_value(bucket=f"{nats_prefix}_plain")
    seen = await _kv_work(kv)
    first, second = seen.pop("revisions")
    assert second > first > 0
    assert seen["read"] == ("order.1", b"picked", second)
    assert {k: v for k, v in seen.items() if k != "read"} == {
        "stale update": "refused",
        "second create": "refused",
        "put": True,
        "missing": "not found",
        "deleted": True,
        "rewritten": True,
        "expiring": True,
        "purged": "not found",
    }


async def test_a_bucket_nobody_answers_for_raises_what_nats_py_raises(nc: NatsClient) -> None:
    # No JetStream behind the API prefix (one starting, a leader being elected): nats-py
    # raises its no-responders errors, which callers retry; never an unreadable answer.
    unanswered = KeyValue(
        name="gone",
        stream="KV_gone",
        pre="$KV.gone.",
        js=nc.jetstream(prefix="$JS.NOBODY.API"),
        direct=False,
    )
    bucket = KvBucket(unanswered, PublishAcks(nc), timeout_s=5)
    with pytest.raises(NoRespondersError):
        await bucket.get("order.1")
    with pytest.raises(NoStreamResponseError):
        await bucket.put("order.1", b"released")
