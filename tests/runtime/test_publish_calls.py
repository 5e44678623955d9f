"""What one publish and one KV write or read cost in Waybill's own Python calls.

Counted, never timed: every call of a function in the runtime or the contracts
made while one publish (or KV operation) runs, its ack's hand-over included,
and of the ``__init__`` that dataclasses generate (nats-py's own calls are
not Waybill's to cut). The counts are exact: nothing
else runs on the loop meanwhile. Each bound was the count before a cut minus
what the cut removed; a change that adds calls per message fails here.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from tests.runtime.bus_helpers import release_command
from waybill_contracts import SubjectMap, new_context
from waybill_runtime.bus.bucket import KvBucket
from waybill_runtime.bus.client import WaybillNatsClient, connect_client, header_block
from waybill_runtime.bus.provisioning import StreamPolicy, ensure_bucket, ensure_streams
from waybill_runtime.bus.publisher import Publisher

_OURS = ("waybill_runtime", "waybill_contracts")


async def _waybill_calls(
    operation: Callable[[], Awaitable[Any]], *, coroutines: bool = False
) -> dict[str, int]:
    """Waybill's Python calls (by function) while ``operation`` runs, each counted once;
    ``coroutines``: coroutines only (each a frame and a coroutine object, dearer than a
    plain call)."""
    calls: dict[str, int] = {}
    # A coroutine resumed after an await is another 'call' of the same frame: counted once.
    frames: set[FrameType] = set()

    def count(frame: FrameType, event: str, arg: object) -> None:
        code = frame.f_code
        if event != "call" or frame in frames:
            return
        # "<string>": the __init__ dataclasses generate (nats-py's KV entry is one, too).
        ours = code.co_filename == "<string>" or any(p in code.co_filename for p in _OURS)
        if coroutines and not code.co_flags & inspect.CO_COROUTINE:
            return
        if ours:
            frames.add(frame)
            calls[code.co_qualname] = calls.get(code.co_qualname, 0) + 1

    sys.setprofile(count)
    try:
        await operation()
    finally:
        sys.setprofile(None)
    return calls


def test_a_header_block_of_names_seen_before_calls_no_function_per_header() -> None:
    headers = {f"ce-header{n}": f"value {n}" for n in range(10)}
    header_block(headers)  # the names are checked once, then remembered
    calls: list[str] = []

    def count(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            calls.append(frame.f_code.co_qualname)

    sys.setprofile(count)
    try:
        header_block(headers)
    finally:
        sys.setprofile(None)
    # Before: header_block, _header_lines and a _checked_name per header (12).
    assert calls == ["header_block", "header_block.<locals>.<listcomp>"]


async def test_a_publish_and_a_kv_write_and_read_cost_few_waybill_calls(
    nats_url: str, nats_prefix: str
) -> None:
    nc: WaybillNatsClient = await connect_client(nats_url)
    try:
        subjects = SubjectMap(nats_prefix)
        js = nc.jetstream()
        await ensure_streams(js, subjects, StreamPolicy())
        publisher = Publisher(nc, subjects, service="orchestrator")
        bucket = KvBucket(
            await ensure_bucket(js, f"{nats_prefix}_calls"), publisher.acks, timeout_s=5
        )
        command = release_command("WH/OUT/1")
        cause = new_context(command, source="orchestrator")
        await publisher.publish(command, cause=cause)  # the reply subscription, names checked
        revision = await bucket.create("order.1", b"released")

        published = await _waybill_calls(lambda: publisher.publish(command, cause=cause))
        written = await _waybill_calls(lambda: bucket.update("order.1", b"picked", last=revision))
        read = await _waybill_calls(lambda: bucket.get("order.1"))
        awaited = await _waybill_calls(
            lambda: publisher.publish(command, cause=cause), coroutines=True
        )
    finally:
        await nc.close()

    # Before: 50, with a frozen dataclass per publish (Outgoing: its __init__) and a
    # call per header (_header_lines, then _checked_name for each of the ten).
    assert "_checked_name" not in published
    assert sum(published.values()) <= 39, published
    # Before: 13 (_header_lines and a _checked_name for the one header).
    assert sum(written.values()) <= 12, written
    # A KV read (no headers sent): as before, 10.
    assert sum(read.values()) <= 10, read
    # The reply token and its future are a plain call (before: PublishAcks._send, a
    # coroutine, for every publish and KV operation).
    assert set(awaited) == {
        "Publisher.publish",
        "PublishAcks.publish",
        "PublishAcks.request",
        "WaybillNatsClient._send_publish",
        "WaybillNatsClient._process_msg",
    }
