"""One dead-letter stream holding letters of v1 and of today, on a real nats-server: listed by
`waybill dlq list`, watched by a dead-letter consumer, replayed by `waybill dlq replay`."""

from __future__ import annotations

import json
from typing import Any

import nats
from nats.aio.client import Client as NatsClient

from tests.fixtures import v1_dead_letters
from tests.runtime.bus_helpers import release_command, send
from tests.runtime.cloudevents_check import binary_cloudevent
from tests.runtime.test_dlq_cli import waybill
from waybill_contracts import MessageContext, SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.bus.dead_letters import StoredDeadLetter
from waybill_runtime.outcomes import PermanentError
from waybill_runtime.service import Runtime, Service
from waybill_runtime.settings import RuntimeSettings
from waybill_runtime.testing.authenticated import AuthenticatedServer
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.waiting import eventually

# The letters of v1 were recorded with the default prefix; this server is the test's own.
PREFIX = "waybill"
ODD = "SO/2024 Müller"


async def _stored_headers(nc: NatsClient, stream: str, sequence: int) -> dict[str, str]:
    stored = await nc.jetstream().get_msg(stream, sequence)
    return dict(stored.headers or {})


async def test_letters_of_v1_and_of_today_are_listed_watched_and_replayed(
    fresh_nats_server: AuthenticatedServer,
) -> None:
    url = fresh_nats_server.client_url
    subjects = SubjectMap(PREFIX)
    fixed: set[str] = set()
    handled: list[MessageContext] = []

    bridge = Service("wms-bridge")

    @bridge.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        if not command.order.ref.startswith("OK/") and ctx.envelope.id not in fixed:
            raise PermanentError(f"unknown SKU on {command.order.ref}")
        handled.append(ctx.envelope)

    watcher = Service("auditor")
    watched: list[StoredDeadLetter] = []

    @watcher.handles_dead_letters
    async def watch(stored: StoredDeadLetter, runtime: Runtime[RuntimeSettings]) -> None:
        watched.append(stored)

    nc = await nats.connect(url)
    settings: dict[str, Any] = {"nats_url": url, "subject_prefix": PREFIX}
    try:
        async with running_service(bridge, **settings), running_service(watcher, **settings):
            js = nc.jetstream()
            for recorded in v1_dead_letters():
                ack = await js.publish(
                    recorded["subject"], recorded["body"].encode(), headers=recorded["headers"]
                )
                assert ack.seq == recorded["sequence"]
            # Two commands that succeed first, so today's letter has an id of its own.
            for ref in ("OK/1", "OK/2"):
                await send(nc, subjects, release_command(ref))
            await send(nc, subjects, release_command(ODD))
            letters = await eventually(
                lambda: dead_letters(nc, subjects), until=lambda d: len(d) == 3, what="3 letters"
            )

            async def seen() -> list[StoredDeadLetter]:
                return watched

            await eventually(seen, until=lambda w: len(w) == 3, what="the watcher to see 3")

            # Today's letter is a CloudEvent: the original's attributes and the failure.
            event = binary_cloudevent(await _stored_headers(nc, subjects.dlq_stream.name, 3))
            assert event["subject"] == ODD
            assert event["deadletterreason"] == "permanent error"
            assert event["deadletterservice"] == "wms-bridge"
            assert letters[2].original_headers["ce-subject"] == "SO/2024%20M%C3%BCller"

            listed = await waybill("dlq", "list", "--json", nats_url=url, prefix=PREFIX)
            assert listed.returncode == 0, listed.stderr
            rows = [json.loads(line) for line in listed.stdout.splitlines()]
            assert [row["sequence"] for row in rows] == [1, 2, 3]
            assert [row["letter"]["reason"] for row in rows] == [
                "permanent error",
                "invalid message",
                "permanent error",
            ]
            one = await waybill("dlq", "list", "--seq", "1", nats_url=url, prefix=PREFIX)
            assert "1 dead letter(s)" in one.stdout, one.stderr

            # The v1 letter's original is put back exactly and handled once fixed.
            v1_original_id = letters[0].original_headers["ce-id"]
            fixed.add(v1_original_id)
            replayed = await waybill("dlq", "replay", "--seq", "1", nats_url=url, prefix=PREFIX)
            assert replayed.returncode == 0, replayed.stderr

            async def handled_ids() -> list[str]:
                return [context.id for context in handled]

            await eventually(handled_ids, until=lambda ids: v1_original_id in ids, what="replay")
            [context] = [c for c in handled if c.id == v1_original_id]
            assert context.subject == ODD  # v1's raw header value, read as v1 wrote it

            # The v1 garbage goes back, fails again, and comes back as a CloudEvent.
            again = await waybill(
                "dlq", "replay", "--seq", "2", "--operator", "Anna Ops", nats_url=url, prefix=PREFIX
            )
            assert again.returncode == 0, again.stderr
            after = await eventually(
                lambda: dead_letters(nc, subjects),
                until=lambda d: len(d) == 2 and d[-1].original_headers.get("ce-id") == "garbage-1",
                what="the garbage to be dead-lettered again",
            )
            # Replayed letters left the stream; today's first letter is still there.
            assert after[0] == letters[2]
            assert after[-1].original_body == letters[1].original_body
            assert after[-1].original_headers == {
                **letters[1].original_headers,
                "Nats-Msg-Id": "garbage-1:replay:2",
                "Waybill-Replayed-From": "2",
                "Waybill-Replayed-By": "Anna%20Ops",
            }
            event = binary_cloudevent(await _stored_headers(nc, subjects.dlq_stream.name, 4))
            assert (event["id"], event["deadletterreason"]) == ("garbage-1", "invalid message")
    finally:
        await nc.close()
