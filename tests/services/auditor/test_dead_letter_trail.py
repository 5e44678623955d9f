"""The auditor on a real nats-server keeps dead letters from being lost or replayed unseen:
a replay shows in the order's timeline with its operator; a message no handler settled
becomes a dead letter from JetStream's advisory."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import release_command, send
from tests.runtime.test_dlq_cli import waybill
from tests.services.auditor.test_service import auditor, get, timeline
from waybill_contracts import SubjectMap, encode, new_context
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.bus.provisioning import ConsumerPolicy, ensure_consumer
from waybill_runtime.outcomes import PermanentError
from waybill_runtime.service import Service
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.waiting import eventually


async def test_a_replay_shows_in_the_orders_timeline_with_its_operator(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    subjects = SubjectMap(nats_prefix)
    bridge = Service("wms-bridge")
    fixed: list[bool] = []
    handled: list[str] = []

    @bridge.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        if not fixed:
            raise PermanentError(f"unknown SKU on {command.order.ref}")
        handled.append(command.order.ref)

    ref = "WH/OUT/77"
    settings: dict[str, Any] = {"nats_url": nats_url, "subject_prefix": nats_prefix}
    audit_db = str(tmp_path / "audit.sqlite")
    async with (
        auditor(nats_url, nats_prefix, audit_db=audit_db) as http,
        running_service(bridge, **settings),
    ):
        command_id = await send(nc, subjects, release_command(ref))
        [letter] = await eventually(
            lambda: dead_letters(nc, subjects), until=lambda d: len(d) == 1, what="a letter"
        )
        assert letter.service == "wms-bridge"

        async def trail() -> dict[str, Any]:
            return await timeline(http, ref)

        await eventually(trail, until=lambda t: len(t.get("dead_letters", [])) == 1)
        fixed.append(True)
        replayed = await waybill(
            "dlq",
            "replay",
            "--seq",
            "1",
            "--operator",
            "Anna Ops",
            nats_url=nats_url,
            prefix=nats_prefix,
        )
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "replayed (by Anna Ops)" in replayed.stdout

        body = await eventually(
            trail,
            until=lambda t: any(e.get("replayed_by") for e in t["entries"]),
            what="the replay in the timeline",
        )
        command_type = subjects.ce_type_for(ReleaseToWarehouse)
        [original, replay] = [e for e in body["entries"] if e["type"] == command_type]
        assert original["id"] == command_id and original["replayed_by"] is None
        assert replay["id"] == f"{command_id}:replay:1"
        assert (replay["replayed_by"], replay["replayed_from"]) == ("Anna Ops", 1)
        assert replay["time"] > original["time"]
        await eventually(lambda: _value(handled), until=lambda h: h == [ref], what="the replay")


async def _value(handled: list[str]) -> list[str]:
    return handled


async def test_messages_no_handler_settled_become_dead_letters_once(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    subjects = SubjectMap(nats_prefix)
    js = nc.jetstream()
    commands = subjects.commands_stream.name
    bridge = Service("wms-bridge")

    @bridge.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        if command.order.ref == "WH/OUT/BAD":
            raise PermanentError("unknown SKU")

    audit_db = str(tmp_path / "audit.sqlite")
    settings: dict[str, Any] = {"nats_url": nats_url, "subject_prefix": nats_prefix}
    async with (
        auditor(nats_url, nats_prefix, audit_db=audit_db) as http,
        running_service(bridge, **settings),
    ):
        # A worker whose process dies on every delivery: it takes messages and never settles
        # them. Short ack wait, two deliveries.
        durable = subjects.durable("warehouse-worker", "commands")
        await ensure_consumer(
            js,
            stream=commands,
            durable=durable,
            filter_subjects=[subjects.subject_for(ReleaseToWarehouse)],
            policy=ConsumerPolicy(max_deliver=2, ack_wait_s=1.0),
        )
        worker = await js.pull_subscribe_bind(durable=durable, stream=commands)
        ids = {ref: await send(nc, subjects, release_command(ref)) for ref in REFS}

        first = await worker.fetch(3, timeout=5)
        assert len(first) == 3
        for msg in first:
            ref = _ref_of(msg.data)
            if ref == "WH/OUT/TERM":
                await msg.term()  # terminated, and no dead letter written
            elif ref == "WH/OUT/BAD":
                await msg.ack()
        # WH/OUT/HUNG comes back once after its ack wait, then its deliveries are spent.
        again = await worker.fetch(1, timeout=5)
        assert [_ref_of(msg.data) for msg in again] == ["WH/OUT/HUNG"]
        with contextlib.suppress(TimeoutError):
            await worker.fetch(1, timeout=2.5)  # the server notices when asked again

        letters = await eventually(
            lambda: dead_letters(nc, subjects), until=lambda d: len(d) >= 3, what="3 letters"
        )
        await asyncio.sleep(1.0)  # a duplicate letter, were there one, would be here by now
        letters = await dead_letters(nc, subjects)
        by_ref = {_ref_of(letter.original_body): letter for letter in letters}
        assert len(letters) == 3, [(x.service, x.reason) for x in letters]

        hung = by_ref["WH/OUT/HUNG"]
        assert (hung.service, hung.consumer) == ("warehouse-worker", durable)
        assert (hung.reason, hung.attempts) == ("max deliveries exhausted", 2)
        assert hung.original_headers["ce-id"] == ids["WH/OUT/HUNG"]
        assert hung.original_stream == commands and hung.original_sequence > 0
        term = by_ref["WH/OUT/TERM"]
        assert (term.reason, term.attempts) == ("terminated without a dead letter", 1)
        # The runtime's own letter for a verdict is not written twice.
        bad = by_ref["WH/OUT/BAD"]
        assert (bad.service, bad.reason) == ("wms-bridge", "permanent error")

        async def trail() -> dict[str, Any]:
            return await timeline(http, "WH/OUT/HUNG")

        body = await eventually(trail, until=lambda t: len(t.get("dead_letters", [])) == 1)
        assert body["dead_letters"][0]["reason"] == "max deliveries exhausted"


REFS = ("WH/OUT/HUNG", "WH/OUT/TERM", "WH/OUT/BAD")


def _ref_of(body: bytes) -> str:
    ref: str = json.loads(body)["order"]["ref"]
    return ref


async def test_poisoned_messages_become_dead_letters_the_api_shows_escaped_never_a_500(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    """Anyone who may publish a command can send a body built to break the readers: nested
    100,000 levels deep, cut short, with a number no float holds. Each becomes a dead letter
    of every consumer that reads it (the bridge and the auditor itself), tagged with the
    order; the order's timeline and /dead-letters still answer, masked."""
    subjects = SubjectMap(nats_prefix)
    bridge = Service("wms-bridge")

    @bridge.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        return None

    ref = "WH/OUT/66"
    poisons = [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"extra": ' + b"[" * 100_000 + b"]" * 100_000 + b', "order": {}}',
        b'{"order": {"ref": "WH/OUT/66", "customer": {"name": "Jane Doe", "email": "jane.doe@',
        b'{"order": {"ref": "WH/OUT/66", "lines": [{"qty": 1e999}]}}',
    ]
    settings: dict[str, Any] = {"nats_url": nats_url, "subject_prefix": nats_prefix}
    async with (
        auditor(nats_url, nats_prefix, audit_db=str(tmp_path / "audit.sqlite")) as http,
        running_service(bridge, **settings),
    ):
        command = release_command(ref)
        for body in poisons:
            # Real envelope headers (each its own message id), a body built to break readers.
            encoded = encode(command, new_context(command, source="orchestrator"), subjects)
            await nc.jetstream().publish(encoded.subject, body, headers=dict(encoded.headers))
        letters = await eventually(
            lambda: dead_letters(nc, subjects), until=lambda d: len(d) == 8, what="8 letters"
        )
        assert {letter.reason for letter in letters} == {"invalid message"}

        async def trail() -> dict[str, Any]:
            return await timeline(http, ref)

        shown_trail = await eventually(trail, until=lambda t: len(t.get("dead_letters", [])) == 8)
        listed_status, listed = await get(http, "/dead-letters")
        about_status, about = await get(http, "/dead-letters", order_ref=ref)
    assert (listed_status, about_status) == (200, 200)
    assert len(listed["dead_letters"]) == len(about["dead_letters"]) == 8
    assert {letter["service"] for letter in listed["dead_letters"]} == {"wms-bridge", "auditor"}
    shown = sorted(letter["data"] for letter in shown_trail["dead_letters"])
    assert all(isinstance(data, str) for data in shown)
    assert [data[:2] for data in shown] == ["[[", "[["] + ['{"'] * 6
    everything = json.dumps([shown_trail, listed])
    assert "Jane Doe" not in everything and "jane.doe" not in everything
