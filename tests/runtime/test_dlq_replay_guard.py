"""Dead letters that cannot be abused or lost, on a real nats-server: a forged letter is refused
by `waybill dlq replay`, and two services giving up on one event leave two letters."""

from __future__ import annotations

import itertools
import json
from typing import Any

from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import release_command
from tests.runtime.test_dlq_cli import waybill
from waybill_contracts import SubjectMap, encode, new_context
from waybill_contracts.events import OrderReleased
from waybill_contracts.examples import example_of
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.bus.dead_letter_format import DeadLetter, dead_letter_message
from waybill_runtime.bus.dead_letters import now_utc
from waybill_runtime.bus.provisioning import StreamPolicy, ensure_streams
from waybill_runtime.outcomes import PermanentError
from waybill_runtime.service import Service
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters, stored_messages
from waybill_runtime.testing.waiting import eventually

_sequences = itertools.count(1)


async def _forge(
    nc: NatsClient, subjects: SubjectMap, subject: str, headers: dict[str, str], body: bytes
) -> int:
    """A dead letter published straight to the dead-letter stream, as anyone could."""
    letter = DeadLetter(
        service="wms-bridge",
        consumer="wms-bridge-commands",
        reason="permanent error",
        error_type="PermanentError",
        error_message="forged",
        attempts=1,
        failed_at=now_utc(),
        original_subject=subject,
        original_headers=headers,
        original_body=body,
        original_stream="NOWHERE",
        original_sequence=next(_sequences),
    )
    dl_headers, dl_body = dead_letter_message(letter)
    ack = await nc.jetstream().publish(
        subjects.dlq_subject("wms-bridge"), dl_body, headers=dl_headers
    )
    return ack.seq


async def test_a_forged_letter_is_refused_in_one_line_and_the_rest_are_replayed(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    js = nc.jetstream()
    await ensure_streams(js, subjects, StreamPolicy())
    events = subjects.events_stream.name

    # 1. A JetStream API call dressed as a dead letter: replaying it would delete a stream.
    api_seq = await _forge(nc, subjects, f"$JS.API.STREAM.DELETE.{events}", {}, b"")
    # 2. A Waybill command subject carrying an event's type.
    released = example_of(OrderReleased)
    wrong = encode(released, new_context(released, source="odoo-gateway"), subjects)
    command_subject = subjects.subject_for(type(release_command("X")))
    typed_seq = await _forge(nc, subjects, command_subject, dict(wrong.headers), wrong.body)
    # 3. A genuine letter of a command: it is replayed though the others are refused.
    good = release_command("WH/OUT/9")
    encoded = encode(good, new_context(good, source="orchestrator"), subjects)
    good_seq = await _forge(nc, subjects, encoded.subject, dict(encoded.headers), encoded.body)

    result = await waybill("dlq", "replay", "--all", nats_url=nats_url, prefix=nats_prefix)

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    [api_line] = [line for line in lines if line.startswith(f"refused dead letter {api_seq}:")]
    assert "$JS.API.STREAM.DELETE" in api_line
    assert "not an event or command subject" in api_line
    [typed_line] = [line for line in lines if line.startswith(f"refused dead letter {typed_seq}:")]
    assert "does not match subject" in typed_line
    assert subjects.ce_type_for(OrderReleased) in typed_line
    assert sum(line.startswith("replayed ") for line in lines) == 1
    assert lines[-1] == "1 dead letter(s) replayed, 2 refused"

    # The stream survives, the genuine command is back, the refused letters stay.
    info = await js.stream_info(events)
    assert info.config.name == events
    [(command, _context)] = await stored_messages(nc, subjects, type(good))
    assert command == good
    remaining = {stored.original_subject for stored in await dead_letters(nc, subjects)}
    assert remaining == {f"$JS.API.STREAM.DELETE.{events}", command_subject}
    assert good_seq not in (api_seq, typed_seq)


async def test_two_services_giving_up_on_one_event_leave_two_letters(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    declarations = [Service("wms-bridge"), Service("notifier")]
    for declaration in declarations:

        @declaration.handles(OrderReleased)
        async def refuse(event: OrderReleased, ctx: HandlerContext[Any]) -> None:
            raise PermanentError(f"{ctx.runtime.settings.service} cannot take {event.order.ref}")

    settings: dict[str, Any] = {"nats_url": nats_url, "subject_prefix": nats_prefix}
    async with (
        running_service(declarations[0], **settings),
        running_service(declarations[1], **settings),
    ):
        released = example_of(OrderReleased)
        encoded = encode(released, new_context(released, source="odoo-gateway"), subjects)
        await nc.jetstream().publish(encoded.subject, encoded.body, headers=dict(encoded.headers))
        letters = await eventually(
            lambda: dead_letters(nc, subjects), until=lambda d: len(d) == 2, what="2 dead letters"
        )
    assert {(letter.service, letter.consumer) for letter in letters} == {
        ("wms-bridge", "wms-bridge-events"),
        ("notifier", "notifier-events"),
    }
    assert len({letter.original_sequence for letter in letters}) == 1

    listed = await waybill(
        "dlq", "list", "--service", "notifier", "--json", nats_url=nats_url, prefix=nats_prefix
    )
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [row["letter"]["service"] for row in rows] == ["notifier"]
    other = next(row["sequence"] for row in rows)
    mismatched = await waybill(
        "dlq",
        "list",
        "--service",
        "wms-bridge",
        "--seq",
        str(other),
        nats_url=nats_url,
        prefix=nats_prefix,
    )
    assert "0 dead letter(s)" in mismatched.stdout, mismatched.stderr

    bad = await waybill("dlq", "list", "--service", "a.b", nats_url=nats_url, prefix=nats_prefix)
    assert bad.returncode != 0
    assert "--service 'a.b' is not valid" in bad.stderr
    assert "Traceback" not in bad.stderr


async def test_a_letter_of_a_query_subject_is_refused(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    await ensure_streams(nc.jetstream(), subjects, StreamPolicy())
    query = subjects.query_subject("carrier-router", "quote")
    seq = await _forge(nc, subjects, query, {}, b"{}")
    result = await waybill(
        "dlq", "replay", "--seq", str(seq), "--dry-run", nats_url=nats_url, prefix=nats_prefix
    )
    assert result.returncode == 1
    assert f"refused dead letter {seq}: original subject {query!r}" in result.stdout
