"""The envelope follows the CloudEvents NATS binding: any header case, percent-encoded values,
structured mode on input, and what v1 wrote still decodes."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import msgspec
import pytest

from tests.fixtures import v1_messages
from waybill_contracts import (
    InvalidHeader,
    MalformedBody,
    MissingHeader,
    SubjectMap,
    UnknownType,
    decode,
    encode,
    new_context,
)
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.envelope import MessageContext, attributes_of
from waybill_contracts.events import OrderReleased, ShipmentBooked
from waybill_contracts.examples import EXAMPLE_TIME, example_of

SUBJECTS = SubjectMap()
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ODD = "SO/2024 Müller"


def _booked(**changes: Any) -> tuple[ShipmentBooked, MessageContext]:
    message = example_of(ShipmentBooked)
    context = new_context(message, source="carrier-router", time=EXAMPLE_TIME)
    return message, msgspec.structs.replace(context, **changes)


# --- header names in any case ---------------------------------------------------------


@pytest.mark.parametrize("spell", [str.upper, str.title, lambda name: name.replace("ce-", "Ce-")])
def test_a_message_decodes_whatever_the_case_of_its_headers(spell: Any) -> None:
    message, context = _booked(causation_id="cause-1", traceparent=TRACEPARENT, tracestate="a=b")
    encoded = encode(message, context, SUBJECTS)
    respelled = {spell(name): value for name, value in encoded.headers.items()}
    assert "ce-type" not in respelled
    decoded = decode(encoded.subject, respelled, encoded.body, SUBJECTS)
    assert decoded.message == message
    assert decoded.context == context


def test_case_is_ignored_for_missing_header_errors_too() -> None:
    message, context = _booked()
    encoded = encode(message, context, SUBJECTS)
    headers = {name.upper(): value for name, value in encoded.headers.items()}
    del headers["CE-SOURCE"]
    with pytest.raises(MissingHeader) as refused:
        decode(encoded.subject, headers, encoded.body, SUBJECTS)
    assert refused.value.field == "ce-source"


def test_two_spellings_of_one_header_with_different_values_are_refused() -> None:
    message, context = _booked()
    encoded = encode(message, context, SUBJECTS)
    with pytest.raises(InvalidHeader) as refused:
        decode(encoded.subject, {**encoded.headers, "CE-ID": "other"}, encoded.body, SUBJECTS)
    assert refused.value.field == "ce-id"


# --- percent-encoded values -----------------------------------------------------------


def test_slash_space_and_non_ascii_travel_percent_encoded_and_round_trip() -> None:
    message, context = _booked(
        subject=ODD, correlation_id='Müller & Söhne 100% "quoted"', causation_id="cause 1"
    )
    encoded = encode(message, context, SUBJECTS)
    assert encoded.headers["ce-subject"] == "SO/2024%20M%C3%BCller"
    assert (
        encoded.headers["ce-correlationid"]
        == "M%C3%BCller%20&%20S%C3%B6hne%20100%25%20%22quoted%22"
    )
    assert encoded.headers["ce-causationid"] == "cause%201"
    assert all(value.isascii() and " " not in value for value in encoded.headers.values())
    decoded = decode(encoded.subject, encoded.headers, encoded.body, SUBJECTS)
    assert decoded.context == context
    assert decoded.context.subject == ODD


def test_nats_msg_id_is_the_ce_id_header_exactly() -> None:
    message, context = _booked()
    headers = encode(message, context, SUBJECTS).headers
    assert headers["Nats-Msg-Id"] == headers["ce-id"] == context.id
    _, odd = _booked(id="fact 42/ü")
    odd_headers = encode(message, odd, SUBJECTS).headers
    # Still one id per fact: the encoding is one-to-one and header-safe.
    assert odd_headers["Nats-Msg-Id"] == odd_headers["ce-id"] == "fact%2042/%C3%BC"


def test_the_data_content_type_travels_as_ce_datacontenttype() -> None:
    message, context = _booked()
    headers = encode(message, context, SUBJECTS).headers
    assert headers["ce-datacontenttype"] == "application/json"
    assert "content-type" not in {name.lower() for name in headers}


def test_a_context_with_text_that_is_not_unicode_is_refused_naming_the_header() -> None:
    message, context = _booked(subject="broken \udcff")
    with pytest.raises(InvalidHeader) as refused:
        encode(message, context, SUBJECTS)
    assert refused.value.field == "ce-subject"


def test_a_value_that_does_not_percent_decode_is_refused_naming_the_header() -> None:
    message, context = _booked()
    encoded = encode(message, context, SUBJECTS)
    for header, value in [("ce-subject", "%C0%A0"), ("ce-source", '"open'), ("ce-id", "5%")]:
        with pytest.raises(InvalidHeader) as refused:
            decode(encoded.subject, {**encoded.headers, header: value}, encoded.body, SUBJECTS)
        assert refused.value.field == header


# --- structured mode ------------------------------------------------------------------


def _structured(message: Any, context: MessageContext, **members: Any) -> bytes:
    """The event in the JSON event format, built from the spec, not from Waybill's code."""
    event = {
        "specversion": "1.0",
        "id": context.id,
        "source": context.source,
        "type": context.type,
        "time": context.time.isoformat(),
        "subject": context.subject,
        "correlationid": context.correlation_id,
        "datacontenttype": "application/json",
        "data": msgspec.to_builtins(message),
    }
    if context.causation_id is not None:
        event["causationid"] = context.causation_id
    event.update(members)
    return msgspec.json.encode({k: v for k, v in event.items() if v is not ...})


STRUCTURED = {"content-type": "application/cloudevents+json; charset=utf-8"}


def test_a_structured_mode_message_decodes_into_the_same_message_and_context() -> None:
    message, context = _booked(subject=ODD, causation_id="cause-1")
    subject = SUBJECTS.subject_for(ShipmentBooked)
    decoded = decode(subject, STRUCTURED, _structured(message, context), SUBJECTS)
    binary = encode(message, context, SUBJECTS)
    assert decoded == decode(subject, binary.headers, binary.body, SUBJECTS)
    assert decoded.message == message
    assert decoded.context == context


def test_structured_mode_is_told_by_a_content_type_header_of_any_case() -> None:
    message, context = _booked()
    subject = SUBJECTS.subject_for(ShipmentBooked)
    headers = {"Content-Type": "Application/CloudEvents+JSON", "Nats-Msg-Id": context.id}
    assert decode(subject, headers, _structured(message, context), SUBJECTS).message == message


def test_structured_data_may_come_base64_encoded() -> None:
    message, context = _booked()
    data = base64.b64encode(msgspec.json.encode(message)).decode()
    body = _structured(message, context, data=..., data_base64=data)
    decoded = decode(SUBJECTS.subject_for(ShipmentBooked), STRUCTURED, body, SUBJECTS)
    assert decoded.message == message


def test_structured_trace_context_comes_from_the_headers_or_the_event() -> None:
    message, context = _booked()
    subject = SUBJECTS.subject_for(ShipmentBooked)
    in_body = _structured(message, context, traceparent=TRACEPARENT, tracestate="a=b")
    assert decode(subject, STRUCTURED, in_body, SUBJECTS).context.traceparent == TRACEPARENT
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    headers = {**STRUCTURED, "TraceParent": other}
    assert decode(subject, headers, in_body, SUBJECTS).context.traceparent == other


@pytest.mark.parametrize(
    ("members", "error", "field"),
    [
        ({"type": ...}, MalformedBody, "type"),
        ({"id": ""}, MalformedBody, "id"),
        ({"time": None}, MalformedBody, "time"),
        ({"specversion": "0.3"}, MalformedBody, "specversion"),
        ({"time": "yesterday"}, MalformedBody, "time"),
        ({"type": "io.waybill.order.teleported.v1"}, UnknownType, "type"),
        ({"type": OrderReleased.ce_type()}, MalformedBody, "type"),  # not this subject's type
        ({"id": 42}, MalformedBody, "id"),
        ({"datacontenttype": "application/xml"}, MalformedBody, "datacontenttype"),
        ({"data": ...}, MalformedBody, "data"),
        ({"data": "a JSON string is data, not a document"}, MalformedBody, "data"),
        ({"data_base64": "%%%"}, MalformedBody, "data_base64"),
        ({"data_base64": "e30="}, MalformedBody, "data_base64"),  # beside data
    ],
)
def test_a_broken_structured_event_is_refused_naming_the_member(
    members: dict[str, Any], error: type[Exception], field: str
) -> None:
    message, context = _booked()
    body = _structured(message, context, **members)
    with pytest.raises(error) as refused:
        decode(SUBJECTS.subject_for(ShipmentBooked), STRUCTURED, body, SUBJECTS)
    assert getattr(refused.value, "field", None) == field


def test_a_structured_events_bad_data_is_named_by_its_path_under_data() -> None:
    message, context = _booked()
    data = msgspec.to_builtins(message)
    data["shipment"]["cost"]["currency"] = "euro"  # an ISO 4217 code is expected
    body = _structured(message, context, data=data)
    with pytest.raises(MalformedBody) as refused:
        decode(SUBJECTS.subject_for(ShipmentBooked), STRUCTURED, body, SUBJECTS)
    assert refused.value.field == "data.shipment.cost.currency"


@pytest.mark.parametrize(
    "content_type", ["application/cloudevents+avro", "application/cloudevents-batch+json"]
)
def test_structured_formats_other_than_json_are_refused(content_type: str) -> None:
    message, context = _booked()
    with pytest.raises(InvalidHeader) as refused:
        decode(
            SUBJECTS.subject_for(ShipmentBooked),
            {"content-type": content_type},
            _structured(message, context),
            SUBJECTS,
        )
    assert refused.value.field == "content-type"


@pytest.mark.parametrize("body", [b"", b"{not json", b"[]", b"\xff\xfe", b'"event"'])
def test_a_structured_body_that_is_no_json_object_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        decode(SUBJECTS.subject_for(ShipmentBooked), STRUCTURED, body, SUBJECTS)


# --- what v1 wrote --------------------------------------------------------------------


@pytest.mark.parametrize("recorded", v1_messages(), ids=lambda m: m["name"])
def test_messages_written_by_v1_still_decode(recorded: Any) -> None:
    decoded = decode(recorded["subject"], recorded["headers"], recorded["body"].encode(), SUBJECTS)
    headers = recorded["headers"]
    context = decoded.context
    # v1 sent values raw: they read back exactly as written, % and " included.
    assert context.id == headers["ce-id"]
    assert context.subject == headers["ce-subject"]
    assert context.correlation_id == headers["ce-correlationid"]
    assert context.causation_id == headers.get("ce-causationid")
    assert context.traceparent == headers.get("traceparent")
    assert context.tracestate == headers.get("tracestate")
    assert context.time == datetime.fromisoformat(headers["ce-time"])
    assert carries_every_field(recorded["body"].encode(), decoded.message)


def carries_every_field(written: bytes, message: Any) -> bool:
    """Whether ``message`` holds every field of the ``written`` body, value for value.

    Fields added since (with their defaults) may come on top: that is how the
    contracts evolve, so a byte-for-byte comparison would fail on every release.
    """

    def within(old: Any, new: Any) -> bool:
        if isinstance(old, dict):
            return isinstance(new, dict) and all(
                key in new and within(value, new[key]) for key, value in old.items()
            )
        if isinstance(old, list):
            return (
                isinstance(new, list)
                and len(old) == len(new)
                and all(within(a, b) for a, b in zip(old, new, strict=True))
            )
        return bool(old == new)

    return within(msgspec.json.decode(written), msgspec.json.decode(msgspec.json.encode(message)))


def test_carrying_every_field_allows_new_fields_and_nothing_else() -> None:
    assert carries_every_field(b'{"a": {"b": 1}}', {"a": {"b": 1, "c": None}})
    assert not carries_every_field(b'{"a": {"b": 1}}', {"a": {"b": 2}})
    assert not carries_every_field(b'{"a": [1, 2]}', {"a": [1]})


def test_v1_values_that_look_encoded_are_not_decoded_again() -> None:
    [odd] = [m for m in v1_messages() if m["name"] == "booked_special_subject"]
    decoded = decode(odd["subject"], odd["headers"], odd["body"].encode(), SUBJECTS)
    assert decoded.context.subject == ODD
    assert decoded.context.correlation_id == 'Müller & Söhne 100% "quoted"'


def test_a_v1_message_reencoded_today_carries_the_same_context() -> None:
    for recorded in v1_messages():
        old = decode(recorded["subject"], recorded["headers"], recorded["body"].encode(), SUBJECTS)
        now = encode(old.message, old.context, SUBJECTS)
        assert decode(now.subject, now.headers, now.body, SUBJECTS) == old


# --- attributes as far as they can be read --------------------------------------------


def test_attributes_of_reads_binary_structured_and_v1_messages_alike() -> None:
    message, context = _booked(subject=ODD)
    binary = encode(message, context, SUBJECTS)
    from_binary = attributes_of(
        {name.upper(): value for name, value in binary.headers.items()}, binary.body
    )
    from_structured = attributes_of(STRUCTURED, _structured(message, context))
    for attributes in (from_binary, from_structured):
        assert attributes["subject"] == ODD
        assert attributes["id"] == context.id
        assert attributes["type"] == ShipmentBooked.ce_type()
        assert attributes["datacontenttype"] == "application/json"
    [odd] = [m for m in v1_messages() if m["name"] == "booked_special_subject"]
    from_v1 = attributes_of(odd["headers"], odd["body"].encode())
    assert from_v1["correlationid"] == 'Müller & Söhne 100% "quoted"'
    assert from_v1["datacontenttype"] == "application/json"


def test_attributes_of_never_raises_on_broken_input() -> None:
    message, context = _booked()
    encoded = encode(message, context, SUBJECTS)
    broken = {**encoded.headers, "ce-subject": "%C0%A0", "CE-ID": "other", "ce-Bad_Name": "x"}
    attributes = attributes_of(broken, b"\xff")
    assert attributes["subject"] == "%C0%A0"  # kept as it came
    assert "bad_name" not in attributes
    assert attributes_of(None, b"") == {}
    assert attributes_of(STRUCTURED, b"[1, 2]") == {}
    assert attributes_of({"ce-type": 7}, b"") == {}  # type: ignore[dict-item]


def test_a_release_command_with_a_cause_round_trips_through_every_form() -> None:
    command = example_of(ReleaseToWarehouse)
    cause = new_context(example_of(OrderReleased), source="odoo-gateway")
    context = new_context(command, source="orchestrator", cause=cause, traceparent=TRACEPARENT)
    subject = SUBJECTS.subject_for(ReleaseToWarehouse)
    binary = encode(command, context, SUBJECTS)
    structured = _structured(command, context, traceparent=TRACEPARENT)
    for headers, body in [(binary.headers, binary.body), (STRUCTURED, structured)]:
        assert decode(subject, headers, body, SUBJECTS).context == context
