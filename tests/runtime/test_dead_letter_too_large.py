"""A message too large to dead-letter whole, on a nats-server of the test's own whose max_payload
leaves no room for a letter's extension attributes: the letter keeps the body's start, says it is
cut and how large the original is, points to it, and a replay puts the whole original back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from tests.runtime.bus_helpers import release_command
from tests.runtime.cloudevents_check import binary_cloudevent
from tests.runtime.test_dlq_cli import waybill
from waybill_contracts import SubjectMap, encode, new_context
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.local import embedded_nats
from waybill_runtime.outcomes import PermanentError
from waybill_runtime.service import Service
from waybill_runtime.testing.authenticated import AuthenticatedServer
from waybill_runtime.testing.pytest_plugin import start_test_server
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.waiting import eventually

PREFIX = "big"
SEVEN_MB = 7 * 1024 * 1024
# Room for the message and its own headers, not for a dead letter's on top.
MAX_PAYLOAD = SEVEN_MB + 512


@pytest.fixture
def small_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AuthenticatedServer]:
    render = embedded_nats.render_config

    def with_max_payload(*args: Any, **kwargs: Any) -> str:
        config = render(*args, **kwargs)
        assert "max_payload: 8MB" in config
        return config.replace("max_payload: 8MB", f"max_payload: {MAX_PAYLOAD}")

    monkeypatch.setattr(embedded_nats, "render_config", with_max_payload)
    server = start_test_server(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def _large_command() -> ReleaseToWarehouse:
    command = release_command("WH/OUT/BIG")
    note = "x" * (SEVEN_MB - 1024)
    return msgspec.structs.replace(
        command, order=msgspec.structs.replace(command.order, customer_reference=note)
    )


async def test_a_message_too_large_to_dead_letter_whole_is_dead_lettered_cut_and_replayed_whole(
    small_server: AuthenticatedServer,
) -> None:
    url = small_server.client_url
    subjects = SubjectMap(PREFIX)
    service = Service("wms-bridge")
    sizes: list[int] = []
    fixed = False

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        if not fixed:
            raise PermanentError("the WMS refuses orders this large")
        sizes.append(len(command.order.customer_reference or ""))

    command = _large_command()
    encoded = encode(command, new_context(command, source="orchestrator"), subjects)
    nc = await nats.connect(url)
    try:
        assert nc.max_payload == MAX_PAYLOAD
        async with running_service(
            service, nats_url=url, subject_prefix=PREFIX, max_deliver=3, retry_backoff_s=[0.1]
        ):
            ack = await nc.jetstream().publish(
                encoded.subject, encoded.body, headers=dict(encoded.headers)
            )
            [letter] = await eventually(
                lambda: dead_letters(nc, subjects), until=lambda d: len(d) == 1, what="a letter"
            )
            assert letter.reason == "permanent error"
            assert letter.attempts == 1
            assert letter.truncated
            assert letter.original_size == len(encoded.body)
            assert 0 < len(letter.original_body) < len(encoded.body)
            assert encoded.body.startswith(letter.original_body)
            assert (letter.original_stream, letter.original_sequence) == (
                subjects.commands_stream.name,
                ack.seq,
            )
            stored = await nc.jetstream().get_msg(subjects.dlq_stream.name, 1)
            event = binary_cloudevent(dict(stored.headers or {}))
            assert event["deadlettertruncated"] == "true"
            assert event["deadlettersize"] == str(len(encoded.body))

            fixed = True
            replayed = await waybill("dlq", "replay", "--seq", "1", nats_url=url, prefix=PREFIX)
            assert replayed.returncode == 0, replayed.stdout + replayed.stderr

            async def handled() -> list[int]:
                return sizes

            await eventually(
                handled, until=lambda s: s == [len(command.order.customer_reference or "")]
            )
    finally:
        await nc.close()
