"""`waybill dlq list|replay` against a real nats-server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import release_command, send
from waybill_contracts import SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.outcomes import PermanentError
from waybill_runtime.service import Service
from waybill_runtime.testing.authenticated import cli_environment
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.waiting import eventually


async def waybill(*args: str, nats_url: str, prefix: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cli_environment(nats_url, prefix)}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "waybill_runtime", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def test_operators_list_and_replay_dead_letters_from_the_command_line(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    service = Service("wms-bridge")
    fixed: set[str] = set()
    processed: list[str] = []

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        if command.order.ref not in fixed:
            raise PermanentError(f"unknown SKU on {command.order.ref}")
        processed.append(command.order.ref)

    subjects = SubjectMap(nats_prefix)
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        for ref in ("WH/OUT/1", "WH/OUT/2", "WH/OUT/3"):
            await send(nc, subjects, release_command(ref))
        await eventually(
            lambda: dead_letters(nc, subjects), until=lambda d: len(d) == 3, what="3 dead letters"
        )
        listed = await waybill("dlq", "list", "--json", nats_url=nats_url, prefix=nats_prefix)
        assert listed.returncode == 0, listed.stderr
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        assert len(rows) == 3
        assert {r["letter"]["reason"] for r in rows} == {"permanent error"}
        seq_of = {r["letter"]["error_message"].rsplit(" ", 1)[-1]: r["sequence"] for r in rows}

        none_yet = await waybill(
            "dlq", "list", "--until", "2000-01-01T00:00:00Z", nats_url=nats_url, prefix=nats_prefix
        )
        assert none_yet.returncode == 0, none_yet.stderr
        assert "0 dead letter(s)" in none_yet.stdout

        nothing = await waybill("dlq", "replay", nats_url=nats_url, prefix=nats_prefix)
        assert nothing.returncode != 0
        assert "nothing selected" in nothing.stderr

        fixed.add("WH/OUT/2")
        one = await waybill(
            "dlq", "replay", "--seq", str(seq_of["WH/OUT/2"]), nats_url=nats_url, prefix=nats_prefix
        )
        assert one.returncode == 0, one.stderr

        async def done() -> list[str]:
            return processed

        await eventually(done, until=lambda p: p == ["WH/OUT/2"], what="the replayed order")

        fixed.update({"WH/OUT/1", "WH/OUT/3"})
        rest = await waybill(
            "dlq",
            "replay",
            "--subject",
            f"{nats_prefix}.cmd.warehouse.>",
            "--since",
            "2000-01-01T00:00:00Z",
            nats_url=nats_url,
            prefix=nats_prefix,
        )
        assert rest.returncode == 0, rest.stderr
        assert "2 dead letter(s) replayed" in rest.stdout
        await eventually(done, until=lambda p: len(p) == 3, what="every replayed order")
    assert sorted(processed) == ["WH/OUT/1", "WH/OUT/2", "WH/OUT/3"]
    assert await dead_letters(nc, subjects) == []


async def test_selections_that_make_no_sense_are_refused_in_one_line(
    nats_url: str, nats_prefix: str
) -> None:
    for args, message in [
        (("dlq", "list", "--seq", "-3"), "'-3' is not a sequence number"),
        (("dlq", "replay", "--seq", "abc"), "'abc' is not a sequence number"),
        (("dlq", "list", "--since", "yesterday"), "'yesterday' is not a time: use ISO 8601"),
        (("dlq", "replay"), "nothing selected"),
    ]:
        result = await waybill(*args, nats_url=nats_url, prefix=nats_prefix)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


async def test_a_prefix_with_nothing_provisioned_is_named_not_a_traceback(
    nats_url: str, nats_prefix: str
) -> None:
    for args in (("dlq", "list"), ("dlq", "replay", "--all")):
        result = await waybill(*args, nats_url=nats_url, prefix=nats_prefix)
        assert result.returncode != 0, args
        assert "Traceback" not in result.stderr, result.stderr
        assert f"no dead-letter stream under prefix {nats_prefix}" in result.stderr, result.stderr
        assert "waybill provision" in result.stderr
