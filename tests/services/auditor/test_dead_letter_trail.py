"""The auditor on a real nats-server keeps dead letters from being lost or replayed unseen:
a replay shows in the order's timeline with its operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import release_command, send
from tests.runtime.test_dlq_cli import waybill
from tests.services.auditor.test_service import auditor, timeline
from waybill_contracts import SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
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
