"""The CloudEvents NATS binding end to end, on a real nats-server with a real service:
percent-encoded values, header names in any case, structured mode, and messages of v1."""

from __future__ import annotations

from typing import Any

import msgspec
from nats.aio.client import Client as NatsClient

from tests.contracts.test_envelope_binding import carries_every_field
from tests.fixtures import v1_messages
from tests.runtime.bus_helpers import release_command
from waybill_contracts import MessageContext, SubjectMap, decode, encode, fact_id, new_context
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.events import WarehouseOrderAccepted
from waybill_runtime.bus.client import WaybillNatsClient
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.bus.provisioning import StreamPolicy, ensure_streams
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.service import Service
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters, stored_messages, stream_count
from waybill_runtime.testing.waiting import eventually

ODD = "SO/2024 Müller"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _recording_bridge() -> tuple[Service[Any], list[tuple[ReleaseToWarehouse, MessageContext]]]:
    """A bridge that records what it handled and answers with an acceptance."""
    service = Service("wms-bridge")
    handled: list[tuple[ReleaseToWarehouse, MessageContext]] = []

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        handled.append((command, ctx.envelope))
        await ctx.publish(
            WarehouseOrderAccepted(
                order_ref=command.order.ref,
                warehouse_order_id="WMS-1",
                accepted_at=ctx.envelope.time,
            )
        )

    return service, handled


async def _handled(
    handled: list[tuple[ReleaseToWarehouse, MessageContext]], count: int = 1
) -> list[tuple[ReleaseToWarehouse, MessageContext]]:
    async def seen() -> list[tuple[ReleaseToWarehouse, MessageContext]]:
        return handled

    return await eventually(seen, until=lambda h: len(h) >= count, what="the handled commands")


async def _last_headers(nc: NatsClient, stream: str) -> dict[str, str]:
    js = nc.jetstream()
    info = await js.stream_info(stream)
    stored = await js.get_msg(stream, info.state.last_seq)
    return dict(stored.headers or {})


async def test_a_value_with_slash_space_and_non_ascii_round_trips_over_the_bus(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    service, handled = _recording_bridge()
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        publisher = Publisher(nc, subjects, service="orchestrator")
        sent = await publisher.publish(release_command(ODD), correlation_id=f"{ODD} 100%")
        [(command, received)] = await _handled(handled)
        await eventually(
            lambda: stream_count(nc, subjects.events_stream.name),
            until=lambda n: n == 1,
            what="the acceptance",
        )
    assert command.order.ref == ODD
    assert received == sent
    assert (received.subject, received.correlation_id) == (ODD, f"{ODD} 100%")
    # On the wire, as the binding says: percent-encoded, printable ASCII only.
    [(accepted, context)] = await stored_messages(nc, subjects, WarehouseOrderAccepted)
    assert context.correlation_id == f"{ODD} 100%"
    headers = await _last_headers(nc, subjects.events_stream.name)
    assert headers["ce-subject"] == "SO/2024%20M%C3%BCller"
    assert headers["ce-correlationid"] == "SO/2024%20M%C3%BCller%20100%25"
    assert accepted.order_ref == ODD


async def test_jetstream_drops_a_repeated_fact_whatever_its_id_holds(
    nc: NatsClient, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    await ensure_streams(nc.jetstream(), subjects, StreamPolicy())
    publisher = Publisher(nc, subjects, service="orchestrator")
    for fact in (fact_id("release", 1), f"release {ODD}"):
        first = await publisher.publish(release_command("WH/OUT/1"), fact_id=fact)
        again = await publisher.publish(release_command("WH/OUT/1"), fact_id=fact)
        assert first.id == again.id == fact
    assert await stream_count(nc, subjects.commands_stream.name) == 2
    stored = await stored_messages(nc, subjects, ReleaseToWarehouse)
    assert [context.id for _, context in stored] == [fact_id("release", 1), f"release {ODD}"]


async def test_headers_of_any_case_are_read_by_a_consumer_and_the_trace_goes_on(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    command = release_command("WH/OUT/7")
    context = new_context(
        command, source="orchestrator", traceparent=TRACEPARENT, tracestate="vendor=x"
    )
    encoded = encode(command, context, subjects)
    # Every CloudEvents and trace header shouted; JetStream's own left as it spells it.
    shouting = {
        name if name == "Nats-Msg-Id" else name.upper(): value
        for name, value in encoded.headers.items()
    }
    service, handled = _recording_bridge()
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        await nc.jetstream().publish(encoded.subject, encoded.body, headers=shouting)
        [(received_command, received)] = await _handled(handled)
        await eventually(
            lambda: stream_count(nc, subjects.events_stream.name),
            until=lambda n: n == 1,
            what="the acceptance",
        )
    assert received_command == command
    assert received == context
    headers = await _last_headers(nc, subjects.events_stream.name)
    assert headers["traceparent"].split("-")[1] == TRACE_ID
    assert headers["ce-causationid"] == context.id
    assert await dead_letters(nc, subjects) == []


async def test_a_structured_mode_message_is_handled_like_a_binary_one(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    command = release_command(ODD)
    context = new_context(command, source="urn:partner:oms", correlation_id="order 7")
    # Written from the JSON event format, as another team's CloudEvents SDK would.
    event = {
        "specversion": "1.0",
        "id": context.id,
        "source": context.source,
        "type": context.type,
        "time": context.time.isoformat(),
        "subject": context.subject,
        "correlationid": context.correlation_id,
        "datacontenttype": "application/json",
        "traceparent": TRACEPARENT,
        "data": msgspec.to_builtins(command),
    }
    service, handled = _recording_bridge()
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        await nc.jetstream().publish(
            subjects.subject_for(ReleaseToWarehouse),
            msgspec.json.encode(event),
            headers={"Content-Type": "application/cloudevents+json", "Nats-Msg-Id": context.id},
        )
        [(received_command, received)] = await _handled(handled)
        await eventually(
            lambda: stream_count(nc, subjects.events_stream.name),
            until=lambda n: n == 1,
            what="the acceptance",
        )
    assert received_command == command
    assert received == msgspec.structs.replace(context, traceparent=TRACEPARENT)
    [(_, answer)] = await stored_messages(nc, subjects, WarehouseOrderAccepted)
    assert answer.causation_id == context.id
    assert answer.correlation_id == "order 7"
    assert await dead_letters(nc, subjects) == []


async def test_a_command_stored_by_v1_is_handled_today(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    [recorded] = [m for m in v1_messages() if m["name"] == "release_with_cause_and_trace"]
    subject = recorded["subject"].replace("waybill.", f"{nats_prefix}.", 1)
    service, handled = _recording_bridge()
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        await nc.jetstream().publish(
            subject, recorded["body"].encode(), headers=dict(recorded["headers"])
        )
        [(command, received)] = await _handled(handled)
    assert carries_every_field(recorded["body"].encode(), command)
    assert received.id == recorded["headers"]["ce-id"]
    assert received.causation_id == recorded["headers"]["ce-causationid"]
    assert received.tracestate == recorded["headers"]["tracestate"]
    assert await dead_letters(nc, subjects) == []


def test_a_v1_header_block_read_by_the_runtimes_client_decodes() -> None:
    for recorded in v1_messages():
        block = recorded["header_block"].encode()
        assert block.startswith(b"NATS/1.0\r\n")
        headers = WaybillNatsClient._parse_header_lines(block[len(b"NATS/1.0\r\n") :])
        assert headers == recorded["headers"]
        decoded = decode(recorded["subject"], headers, recorded["body"].encode(), SubjectMap())
        assert decoded.context.id == recorded["headers"]["ce-id"]
