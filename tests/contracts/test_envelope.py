"""encode/decode: every message round-trips, and bad input only ever raises ContractError."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from waybill_contracts import (
    MESSAGE_TYPES,
    ContractError,
    Event,
    InvalidHeader,
    MalformedBody,
    Message,
    MessageContext,
    MissingHeader,
    SubjectMap,
    UnknownType,
    decode,
    encode,
    fact_id,
    new_context,
)
from waybill_contracts.commands import BookShipment
from waybill_contracts.events import OrderReleased, ShipmentBooked
from waybill_contracts.examples import EXAMPLE_TIME, example_of
from waybill_contracts.queries import OrderStatusRequest, OrderStatusResponse

SUBJECTS = SubjectMap()
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _encoded(message: Message, **context: object) -> tuple[str, dict[str, str], bytes]:
    encoded = encode(message, new_context(message, source="test", **context), SUBJECTS)  # type: ignore[arg-type]
    return encoded.subject, encoded.headers, encoded.body


def _released() -> tuple[str, dict[str, str], bytes]:
    return _encoded(example_of(OrderReleased))


def _with_body(body: dict[str, object]) -> bytes:
    return msgspec.json.encode(body)


@pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_every_message_type_round_trips(message_type: type[Message]) -> None:
    message = example_of(message_type)
    context = new_context(message, source="orchestrator", traceparent=TRACEPARENT)
    encoded = encode(message, context, SUBJECTS)
    assert encoded.subject == SUBJECTS.subject_for(message_type)
    decoded = decode(encoded.subject, encoded.headers, encoded.body, SUBJECTS)
    assert type(decoded.message) is message_type
    assert decoded.message == message
    assert decoded.context == context


@pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_a_reader_accepts_a_newer_writers_unknown_field(message_type: type[Message]) -> None:
    message = example_of(message_type)
    subject, headers, body = _encoded(message)
    newer = msgspec.json.decode(body)
    newer["added_in_a_later_version"] = {"anything": [1, "two", None]}
    decoded = decode(subject, headers, _with_body(newer), SUBJECTS)
    assert decoded.message == message


def test_a_reader_accepts_unknown_fields_inside_nested_structs() -> None:
    subject, headers, body = _released()
    newer = msgspec.json.decode(body)
    newer["order"]["lines"][0]["gift_wrap"] = True
    newer["order"]["ship_to"]["what3words"] = "index.home.raft"
    assert decode(subject, headers, _with_body(newer), SUBJECTS).message == example_of(
        OrderReleased
    )


def test_a_reader_fills_defaults_for_optional_fields_an_older_writer_omitted() -> None:
    subject, headers, body = _released()
    older = msgspec.json.decode(body)
    del older["order"]["channel"], older["order"]["priority"]
    message = decode(subject, headers, _with_body(older), SUBJECTS).message
    assert isinstance(message, OrderReleased)
    assert message.order.channel is None
    assert message.order.priority == "normal"


def test_headers_are_exactly_the_cloudevents_binary_set() -> None:
    message = example_of(ShipmentBooked)
    cause = new_context(example_of(BookShipment), source="orchestrator")
    context = new_context(
        message, source="carrier-router", cause=cause, traceparent=TRACEPARENT, tracestate="a=b"
    )
    headers = encode(message, context, SUBJECTS).headers
    assert headers == {
        "ce-specversion": "1.0",
        "ce-id": context.id,
        "ce-source": "waybill/carrier-router",
        "ce-type": "io.waybill.shipment.booked.v1",
        "ce-time": headers["ce-time"],
        "ce-subject": message.shipment.shipment_id,
        "ce-correlationid": message.shipment.order_ref,
        "ce-causationid": cause.id,
        "ce-datacontenttype": "application/json",
        "traceparent": TRACEPARENT,
        "tracestate": "a=b",
        "Nats-Msg-Id": context.id,
    }
    assert headers["ce-time"].endswith("Z")
    assert datetime.fromisoformat(headers["ce-time"]) == context.time


def test_optional_headers_are_left_out_when_absent() -> None:
    _, headers, _ = _released()
    assert not {"ce-causationid", "traceparent", "tracestate"} & headers.keys()


def test_ce_time_is_sent_in_utc_whatever_zone_the_context_used() -> None:
    amsterdam = timezone(timedelta(hours=1))
    _, headers, _ = _encoded(
        example_of(OrderReleased), time=datetime(2025, 3, 14, 10, 30, tzinfo=amsterdam)
    )
    assert headers["ce-time"] == "2025-03-14T09:30:00Z"


def test_new_context_derives_identity_from_the_message() -> None:
    message = example_of(OrderReleased)
    context = new_context(message, source="odoo-gateway")
    assert context.source == "waybill/odoo-gateway"
    assert context.type == "io.waybill.order.released.v1"
    assert context.subject == context.correlation_id == message.order.ref
    assert context.causation_id is None
    assert context.time.tzinfo is not None
    assert len(context.id) == 32
    assert new_context(message, source="odoo-gateway").id != context.id


def test_new_context_inherits_correlation_and_records_the_cause() -> None:
    cause = new_context(example_of(OrderReleased), source="odoo-gateway", correlation_id="SO42")
    follow_up = new_context(example_of(BookShipment), source="orchestrator", cause=cause)
    assert follow_up.correlation_id == "SO42"
    assert follow_up.causation_id == cause.id
    explicit = new_context(
        example_of(BookShipment), source="orchestrator", cause=cause, correlation_id="X"
    )
    assert explicit.correlation_id == "X"


def test_new_context_keeps_a_full_source_and_a_given_id() -> None:
    message = example_of(OrderReleased)
    context = new_context(
        message,
        source="urn:partner/wms",
        message_id=fact_id("stock.picking", 42),
        time=EXAMPLE_TIME,
    )
    assert context.source == "urn:partner/wms"
    assert context.id == fact_id("stock.picking", 42)
    assert context.time == EXAMPLE_TIME


def test_fact_ids_are_stable_and_distinguish_facts() -> None:
    first = fact_id("stock.picking", 42, "2025-03-14 09:30:00")
    assert first == fact_id("stock.picking", 42, "2025-03-14 09:30:00")
    assert first != fact_id("stock.picking", 42, "2025-03-14 09:30:01")
    assert fact_id("a", "b c") != fact_id("a b", "c")
    assert len(first) == 32
    assert int(first, 16) >= 0


def test_fact_id_needs_a_part() -> None:
    with pytest.raises(ValueError, match="at least one part"):
        fact_id()


def test_encode_refuses_a_context_made_for_another_type() -> None:
    context = new_context(example_of(OrderReleased), source="test")
    with pytest.raises(InvalidHeader) as caught:
        encode(example_of(BookShipment), context, SUBJECTS)
    assert caught.value.field == "ce-type"


def test_encode_refuses_a_message_type_outside_the_catalog() -> None:
    class Stray(Event, frozen=True, kw_only=True):
        aggregate = "stray"
        name = "wandered"

        def business_key(self) -> str:
            return "stray"

    with pytest.raises(UnknownType):
        new_context(Stray(), source="test")
    context = new_context(example_of(OrderReleased), source="test")
    with pytest.raises(UnknownType):
        encode(Stray(), context, SUBJECTS)


# --- malformed input ------------------------------------------------------------------


def _error(subject: str, headers: Mapping[str, str] | None, body: bytes) -> ContractError:
    with pytest.raises(ContractError) as caught:
        decode(subject, headers, body, SUBJECTS)
    return caught.value


def test_a_body_that_is_not_json_is_malformed() -> None:
    subject, headers, _ = _released()
    error = _error(subject, headers, b"{not json")
    assert isinstance(error, MalformedBody)
    assert error.field == "body"


@pytest.mark.parametrize(
    "body", [b"", b"\xff\xfe\x00", b'{"order": "\xff"}', b"[]", b"42", b"null"]
)
def test_empty_non_utf8_and_non_object_bodies_are_malformed(body: bytes) -> None:
    subject, headers, _ = _released()
    assert isinstance(_error(subject, headers, body), MalformedBody)


def test_a_field_of_the_wrong_type_is_named() -> None:
    subject, headers, body = _released()
    wrong = msgspec.json.decode(body)
    wrong["order"]["lines"][1]["quantity"]["value"] = {"units": 1}
    error = _error(subject, headers, _with_body(wrong))
    assert isinstance(error, MalformedBody)
    assert error.field == "order.lines[1].quantity.value"
    assert "order.lines[1].quantity.value" in str(error)


def test_a_missing_required_field_is_named_with_its_path() -> None:
    subject, headers, body = _released()
    missing = msgspec.json.decode(body)
    del missing["order"]["ship_to"]["city"]
    error = _error(subject, headers, _with_body(missing))
    assert isinstance(error, MalformedBody)
    assert error.field == "order.ship_to.city"


def test_a_missing_top_level_field_is_named() -> None:
    subject, headers, body = _released()
    missing = msgspec.json.decode(body)
    del missing["released_at"]
    assert _error(subject, headers, _with_body(missing)).field == "released_at"


def test_a_naive_datetime_in_the_body_is_named() -> None:
    subject, headers, body = _released()
    naive = msgspec.json.decode(body)
    naive["released_at"] = "2025-03-14T09:30:00"
    assert _error(subject, headers, _with_body(naive)).field == "released_at"


def test_an_unknown_ce_type_is_refused() -> None:
    subject, headers, body = _released()
    error = _error(subject, {**headers, "ce-type": "io.waybill.order.teleported.v1"}, body)
    assert isinstance(error, UnknownType)
    assert error.field == "ce-type"


@pytest.mark.parametrize("header", ["ce-id", "ce-type", "ce-specversion", "ce-source", "ce-time"])
def test_a_missing_required_header_is_named(header: str) -> None:
    subject, headers, body = _released()
    del headers[header]
    error = _error(subject, headers, body)
    assert isinstance(error, MissingHeader)
    assert error.field == header
    assert header in str(error)


def test_an_empty_ce_id_counts_as_missing() -> None:
    subject, headers, body = _released()
    error = _error(subject, {**headers, "ce-id": ""}, body)
    assert isinstance(error, MissingHeader)
    assert error.field == "ce-id"


def test_a_message_without_headers_is_refused() -> None:
    subject, _, body = _released()
    error = _error(subject, None, body)
    assert isinstance(error, MissingHeader)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("ce-specversion", "0.3"),
        ("ce-time", "yesterday"),
        ("ce-time", "2025-03-14T09:30:00"),
        ("ce-datacontenttype", "application/xml"),
        ("content-type", "application/xml"),
    ],
)
def test_an_unacceptable_header_value_is_named(header: str, value: str) -> None:
    subject, headers, body = _released()
    error = _error(subject, {**headers, header: value}, body)
    assert isinstance(error, InvalidHeader)
    assert error.field == header


def test_a_non_string_header_value_is_named() -> None:
    subject, headers, body = _released()
    error = _error(subject, {**headers, "ce-source": 7}, body)  # type: ignore[dict-item]
    assert isinstance(error, InvalidHeader)
    assert error.field == "ce-source"


def test_content_type_with_parameters_is_accepted() -> None:
    subject, headers, body = _released()
    headers["ce-datacontenttype"] = "application/json; charset=utf-8"
    assert decode(subject, headers, body, SUBJECTS).message == example_of(OrderReleased)


def test_ce_time_with_an_offset_is_read_as_utc() -> None:
    subject, headers, body = _released()
    headers["ce-time"] = "2025-03-14T10:30:00+01:00"
    context = decode(subject, headers, body, SUBJECTS).context
    assert context.time == datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    assert context.time.utcoffset() == timedelta(0)


def test_a_type_on_another_types_subject_is_refused() -> None:
    _, headers, body = _released()
    error = _error(SUBJECTS.subject_for(BookShipment), headers, body)
    assert isinstance(error, InvalidHeader)
    assert error.field == "ce-type"


def test_a_query_response_decodes_on_a_reply_inbox_and_on_its_query_subject() -> None:
    message = example_of(OrderStatusResponse)
    subject, headers, body = _encoded(message)
    assert decode("_INBOX.x1y2", headers, body, SUBJECTS).message == message
    assert decode(subject, headers, body, SUBJECTS).message == message
    request_subject = SUBJECTS.subject_for(OrderStatusRequest)
    assert request_subject == subject


def test_missing_subject_and_correlation_headers_fall_back_to_the_message() -> None:
    subject, headers, body = _encoded(example_of(ShipmentBooked))
    del headers["ce-subject"], headers["ce-correlationid"]
    context = decode(subject, headers, body, SUBJECTS).context
    booked = example_of(ShipmentBooked)
    assert context.subject == booked.shipment.shipment_id
    assert context.correlation_id == booked.shipment.order_ref


def test_garbage_of_any_shape_raises_only_contract_errors() -> None:
    rng = random.Random(20250314)
    subject, headers, body = _released()
    candidates: list[tuple[str, Mapping[str, str] | None, bytes]] = []
    for _ in range(300):
        length = rng.randrange(0, 64)
        noise = bytes(rng.randrange(256) for _ in range(length))
        cut = body[: rng.randrange(len(body))]
        flipped = bytearray(body)
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        candidates += [(subject, headers, noise), (subject, headers, cut)]
        candidates.append((subject, headers, bytes(flipped)))
        mangled = dict(headers)
        key = rng.choice(sorted(mangled))
        mangled[key] = noise.decode("latin-1")
        candidates.append((subject, mangled, body))
    candidates.append((subject, headers, "not bytes at all"))  # type: ignore[arg-type]
    candidates.append((subject, headers, None))  # type: ignore[arg-type]
    candidates.append((subject, {"ce-type": ["io.waybill.order.released.v1"]}, body))  # type: ignore[dict-item]
    decoded, refused = 0, []
    for candidate in candidates:
        # Anything but ContractError propagates and fails the test.
        try:
            decode(*candidate, SUBJECTS)
            decoded += 1
        except ContractError as error:
            refused.append(error)
    assert decoded + len(refused) == len(candidates)
    assert len(refused) > len(candidates) // 2
    # Every refusal came from a specific check, not from decode's last-resort net.
    assert {type(error) for error in refused} <= {
        MalformedBody,
        MissingHeader,
        InvalidHeader,
        UnknownType,
    }


def test_decoded_context_is_a_message_context() -> None:
    subject, headers, body = _released()
    assert isinstance(decode(subject, headers, body, SUBJECTS).context, MessageContext)


def test_input_outside_every_check_still_raises_only_a_contract_error() -> None:
    subject, _, body = _released()
    not_a_mapping = [("ce-type", "io.waybill.order.released.v1")]
    error = _error(subject, not_a_mapping, body)  # type: ignore[arg-type]
    assert type(error) is ContractError
    assert "could not be read" in str(error)
    assert isinstance(error.__cause__, AttributeError)


def test_validate_refuses_a_struct_built_in_python_that_breaks_a_constraint() -> None:
    import msgspec
    import pytest

    from waybill_contracts import MalformedBody, validate
    from waybill_contracts.events import ShipmentBooked
    from waybill_contracts.examples import example_of

    good = example_of(ShipmentBooked)
    assert validate(good) == good
    bad_money = msgspec.structs.replace(good.shipment.cost, currency="euro")  # ISO code expected
    bad = msgspec.structs.replace(
        good, shipment=msgspec.structs.replace(good.shipment, cost=bad_money)
    )
    with pytest.raises(MalformedBody) as refused:
        validate(bad)
    assert refused.value.field is not None and "currency" in refused.value.field


def test_message_ids_are_uuid7_and_sort_in_the_order_they_were_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 18: time-ordered ids, so a store indexed by message id appends instead of
    writing a random page of its index for every row."""
    import time
    import uuid

    from waybill_contracts import envelope

    now = [1_796_000_000_000_000_000]  # nanoseconds
    monkeypatch.setattr(time, "time_ns", lambda: now[0])
    made = []
    for _ in range(50):
        made.append(envelope.new_id())
        now[0] += 1_000_000  # a millisecond later
    assert made == sorted(made)  # random ids (version 4) would not sort
    assert len(set(made)) == 50
    for made_id in made:
        parsed = uuid.UUID(made_id)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert len(made_id) == 32
    assert int(made[0][:12], 16) == 1_796_000_000_000  # the first 48 bits: Unix ms
    same_millisecond = {envelope.new_id() for _ in range(1000)}
    assert len(same_millisecond) == 1000  # the 74 random bits tell them apart
