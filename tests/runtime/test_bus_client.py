"""The runtime's NATS client and publish path behave exactly like nats-py's, only cheaper."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import BadHeaderError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError, BadRequestError, NoStreamResponseError

from waybill_runtime.bus.client import WaybillNatsClient, connect_client, header_block
from waybill_runtime.bus.publish_acks import Outbound, PublishAcks, StoredAck
from waybill_runtime.outcomes import Outcome, classify
from waybill_runtime.testing.counting import CallCount

HEADER_SAMPLES: list[dict[str, str]] = [
    {},
    {"ce-id": "abc", "ce-type": "io.waybill.order.released.v1", "Nats-Msg-Id": "abc"},
    {"  padded-name  ": "  padded value  ", "empty": ""},
    {"line-break": "first\r\nsecond", "lone-cr": "a\rb", "lone-lf": "a\nb", "ok": "fine"},
    {"trailing": "value\r\n", "": "blank names are left out", "   ": "so are these"},
    {"unicode": "Zoë's café ✓", "tabs": "\tinside\tvalue\t"},
]


async def _written_by(client_type: type[Client], headers: dict[str, str]) -> bytes:
    """The protocol bytes ``client_type`` writes to publish with ``headers``."""
    client = client_type()
    written: list[bytes] = []

    async def capture(command: bytes, priority: bool = False) -> None:
        written.append(command)

    client._send_command = capture  # type: ignore[method-assign, assignment]
    client._flush_queue = None
    await client._send_publish("orders.released", "_INBOX.reply", b'{"a":1}', 7, headers)
    return b"".join(written)


@pytest.mark.parametrize("headers", HEADER_SAMPLES)
async def test_headers_are_written_byte_for_byte_as_nats_py_writes_them(
    headers: dict[str, str],
) -> None:
    assert await _written_by(WaybillNatsClient, headers) == await _written_by(Client, headers)


async def test_a_header_name_that_is_not_a_token_is_refused_like_nats_py_does() -> None:
    for bad in ({"bad name": "x"}, {"colon:name": "x"}, {"naïve": "x"}):
        with pytest.raises(BadHeaderError):
            header_block(bad)
        with pytest.raises(BadHeaderError):
            await _written_by(Client, bad)


def test_the_fast_header_parser_reads_headers_exactly_as_nats_py_does() -> None:
    samples = [
        b"ce-id: abc\r\nce-type: io.waybill.order.released.v1\r\n\r\n",
        b"Name:Value\r\nName2:\tTabbed \r\nbad name: x\r\nno-colon\r\n\r\n",
        b"caf\xc3\xa9: v\r\nk: caf\xc3\xa9\r\nk2: \xff\xfe\r\n",
        b"",
        b"dup: 1\r\ndup: 2\r\n",
        b": empty name\r\n \x1c x\x1c: \x1cv\x1c\r\nk\x1cy: v\r\n a : b:c \r\nx\ny: 1\r\n",
        b"\rz: 2\r\n\x0bq\x0c: \x0b1\x0c\r\na: b\rc\r\n\r\n",
    ]
    for raw in samples * 2:  # the second time with the names already read
        assert WaybillNatsClient._parse_header_lines(raw) == Client._parse_header_lines(raw)


def test_reading_a_waybill_header_block_takes_three_calls_a_header() -> None:
    # A delivered Waybill message: ten ASCII headers whose names repeat on
    # every message. nats-py's way took six calls a line (split, two strips,
    # two decodes, a regular expression); one decode of the
    # block and remembered names take a partition, a lookup and a strip.
    raw = (
        b"".join(
            f"ce-{name}: value-{n}\r\n".encode()
            for n, name in enumerate(
                (
                    "specversion",
                    "id",
                    "source",
                    "type",
                    "time",
                    "subject",
                    "correlationid",
                    "causationid",
                    "datacontenttype",
                    "other",
                )
            )
        )
        + b"\r\n"
    )
    WaybillNatsClient._parse_header_lines(raw)  # names seen once
    parse = WaybillNatsClient._parse_header_lines
    # 38 here: the lambda, the parser, isascii, decode, split, 11 partitions,
    # 10 lookups, 10 strips and setprofile; nats-py's way took 64.
    with CallCount() as counted:
        parse(raw)
    assert counted.calls <= 40


async def test_a_message_published_with_headers_arrives_with_them(nats_url: str) -> None:
    client = WaybillNatsClient()
    await client.connect(nats_url)
    try:
        sub = await client.subscribe("headers.roundtrip")
        sent = {"ce-id": "1", "ce-subject": "WH/OUT/00042", "odd": " spaced\nvalue "}
        await client.publish("headers.roundtrip", b"body", headers=sent)
        msg = await sub.next_msg(timeout=5)
    finally:
        await client.close()
    assert msg.data == b"body"
    assert msg.headers == {"ce-id": "1", "ce-subject": "WH/OUT/00042", "odd": "spaced value"}


# -- publish acks ----------------------------------------------------------------


@pytest.fixture
async def stream(nc: NatsClient, nats_prefix: str) -> str:
    await nc.jetstream().add_stream(name=f"{nats_prefix}_ACKS", subjects=[f"{nats_prefix}.acks.>"])
    return f"{nats_prefix}.acks"


async def test_a_publish_returns_where_the_stream_stored_it_and_spots_repeats(
    nc: NatsClient, stream: str, nats_prefix: str
) -> None:
    acks = PublishAcks(nc)
    first = await acks.publish(f"{stream}.a", b"1", {"Nats-Msg-Id": "m1"}, timeout_s=5)
    again = await acks.publish(f"{stream}.a", b"1", {"Nats-Msg-Id": "m1"}, timeout_s=5)
    other = await acks.publish(f"{stream}.a", b"2", {"Nats-Msg-Id": "m2"}, timeout_s=5)
    assert (first.stream, first.seq, first.duplicate) == (f"{nats_prefix}_ACKS", 1, False)
    assert again.duplicate and again.seq == 1
    assert other.seq == 2 and not other.duplicate


async def test_a_publish_nobody_stores_fails_as_nats_py_fails_it(
    nc: NatsClient, nats_prefix: str
) -> None:
    with pytest.raises(NoStreamResponseError):
        await PublishAcks(nc).publish(f"{nats_prefix}.nowhere", b"x", {}, timeout_s=5)


async def test_a_publish_whose_ack_never_comes_times_out_and_is_retried(
    nc: NatsClient, nats_prefix: str
) -> None:
    silent = await nc.subscribe(f"{nats_prefix}.silent")  # takes it, never answers
    try:
        with pytest.raises(NatsTimeoutError) as caught:
            await PublishAcks(nc).publish(f"{nats_prefix}.silent", b"x", {}, timeout_s=0.2)
    finally:
        await silent.unsubscribe()
    assert classify(caught.value).outcome is Outcome.RETRY


async def test_a_publish_the_stream_refuses_raises_its_error(nc: NatsClient, stream: str) -> None:
    acks = PublishAcks(nc)
    await acks.publish(f"{stream}.a", b"1", {}, timeout_s=5)
    with pytest.raises(BadRequestError) as caught:
        await acks.publish(f"{stream}.a", b"2", {"Nats-Expected-Last-Sequence": "7"}, timeout_s=5)
    assert caught.value.err_code == 10071  # wrong last sequence


async def test_an_unreadable_ack_is_an_error_not_a_crash(nc: NatsClient, nats_prefix: str) -> None:
    async def answer_garbage(msg: Msg) -> None:
        await msg.respond(b"<html>not JetStream</html>")

    responder = await nc.subscribe(f"{nats_prefix}.garbage", cb=answer_garbage)
    try:
        with pytest.raises(APIError, match="unreadable publish ack"):
            await PublishAcks(nc).publish(f"{nats_prefix}.garbage", b"x", {}, timeout_s=5)
    finally:
        await responder.unsubscribe()


async def test_bulk_publishing_reports_each_message_on_its_own(
    nc: NatsClient, stream: str, nats_prefix: str
) -> None:
    batch = [
        Outbound(f"{stream}.bulk", str(n).encode(), {"Nats-Msg-Id": f"b{n}"}) for n in range(20)
    ]
    batch.insert(5, Outbound(f"{nats_prefix}.nowhere", b"lost", {}))
    results = await PublishAcks(nc).publish_many(batch, timeout_s=5)
    assert isinstance(results[5], NoStreamResponseError)
    stored = [r for r in results if isinstance(r, StoredAck)]
    assert sorted(r.seq for r in stored) == list(range(1, 21))


async def test_many_concurrent_publishers_each_get_their_own_ack(
    nc: NatsClient, stream: str
) -> None:
    acks = PublishAcks(nc)
    results = await asyncio.gather(
        *(
            acks.publish(f"{stream}.c", b"x", {"Nats-Msg-Id": f"c{n}"}, timeout_s=5)
            for n in range(200)
        )
    )
    assert sorted(r.seq for r in results) == list(range(1, 201))


async def test_publish_acks_on_waybills_client_skip_the_subscriptions_queue(
    nats_url: str, stream: str
) -> None:
    client = await connect_client(nats_url, connect_timeout=5)
    try:
        acks = PublishAcks(client)
        await acks.publish(f"{stream}.a", b"0", {}, timeout_s=5)
        [replies] = [sub for sub in client._subs.values() if sub._subject.endswith(".*")]
        queued: list[Msg] = []
        put = replies._pending_queue.put_nowait

        def counted(msg: Msg) -> None:
            queued.append(msg)
            put(msg)

        replies._pending_queue.put_nowait = counted  # type: ignore[method-assign,assignment]
        stored = [await acks.publish(f"{stream}.a", b"%d" % i, {}, timeout_s=5) for i in range(9)]
        many = await acks.publish_many(
            [Outbound(f"{stream}.a", b"x", {}) for _ in range(3)], timeout_s=5
        )
    finally:
        await client.close()
    assert [ack.seq for ack in stored] == list(range(2, 11))
    assert [ack.seq for ack in many if isinstance(ack, StoredAck)] == [11, 12, 13]
    # Each reply went through the subscription's queue and task before (12 here).
    assert queued == []
