"""Dead letters are CloudEvents: the original's attributes and data, the failure as extensions.
Letters of v1 (a JSON document) are read everywhere letters are read."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from tests.fixtures import v1_dead_letters
from tests.runtime.cloudevents_check import binary_cloudevent
from waybill_contracts import SubjectMap, encode, new_context
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.examples import EXAMPLE_TIME, example_of
from waybill_runtime.bus.dead_letter_format import (
    DEAD_LETTER_TYPE,
    EXTENSIONS,
    DeadLetter,
    NotADeadLetter,
    dead_letter_id,
    dead_letter_message,
    fit_within,
    read_dead_letter,
)

SUBJECTS = SubjectMap()
ODD = "SO/2024 Müller"
FAILED_AT = datetime(2026, 11, 27, 8, 0, 5, 250000, tzinfo=UTC)


def _letter(original_headers: dict[str, str], body: bytes, **changes: Any) -> DeadLetter:
    letter = DeadLetter(
        service="wms-bridge",
        consumer="wms-bridge-commands",
        reason="permanent error",
        error_type="waybill_runtime.outcomes.PermanentError",
        error_message=f'warehouse refused {ODD}: "unknown SKU" 100%',
        attempts=3,
        failed_at=FAILED_AT,
        original_subject=SUBJECTS.subject_for(ReleaseToWarehouse),
        original_headers=original_headers,
        original_body=body,
        original_stream="WAYBILL_COMMANDS",
        original_sequence=42,
    )
    return msgspec.structs.replace(letter, **changes)


def _waybill_original() -> tuple[dict[str, str], bytes]:
    command = example_of(ReleaseToWarehouse)
    context = new_context(
        command,
        source="orchestrator",
        time=EXAMPLE_TIME,
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    encoded = encode(command, msgspec.structs.replace(context, subject=ODD), SUBJECTS)
    return encoded.headers, encoded.body


def test_a_dead_letter_is_the_original_cloudevent_with_the_failure_as_extensions() -> None:
    headers, body = _waybill_original()
    letter = _letter(headers, body)
    dl_headers, dl_body = dead_letter_message(letter)
    event = binary_cloudevent(dl_headers)
    original = binary_cloudevent(headers)
    # The original's attributes, unchanged: a CloudEvents consumer sees the same event.
    assert {name: event[name] for name in original} == original
    assert event["subject"] == ODD
    assert dl_body == body
    assert dl_headers["traceparent"] == headers["traceparent"]
    assert dl_headers["Nats-Msg-Id"] == dead_letter_id(letter)
    # ... and the failure, as extension attributes.
    assert event["deadletterreason"] == "permanent error"
    assert event["deadlettererror"] == f'warehouse refused {ODD}: "unknown SKU" 100%'
    assert event["deadlettererrortype"] == "waybill_runtime.outcomes.PermanentError"
    assert event["deadletterattempts"] == "3"
    assert event["deadletterservice"] == "wms-bridge"
    assert event["deadletterconsumer"] == "wms-bridge-commands"
    assert datetime.fromisoformat(event["deadlettertime"]) == FAILED_AT
    assert event["deadlettersubject"] == SUBJECTS.subject_for(ReleaseToWarehouse)
    assert event["deadletterstream"] == "WAYBILL_COMMANDS"
    assert event["deadlettersequence"] == "42"
    assert json.loads(event["deadletterheaders"]) == headers
    assert set(EXTENSIONS.values()) <= set(event)


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param(*_waybill_original(), id="waybill"),
        pytest.param({}, b"\x00not json{", id="no headers"),
        pytest.param({"CE-Type": "io.x", "ce-ID": "1", "Odd Name": "a b"}, b"{}", id="odd case"),
        pytest.param({"ce-specversion": "0.3", "ce-id": ""}, b"", id="invalid attributes"),
        pytest.param(
            {"content-type": "application/cloudevents+json"},
            b'{"specversion": "1.0", "id": "s1", "type": "io.x", "source": "/x", "data": {}}',
            id="structured",
        ),
    ],
)
def test_every_original_round_trips_exactly_and_makes_a_valid_cloudevent(
    headers: dict[str, str], body: bytes
) -> None:
    letter = _letter(headers, body)
    dl_headers, dl_body = dead_letter_message(letter)
    binary_cloudevent(dl_headers)
    assert read_dead_letter(dl_headers, dl_body) == letter
    # Header names of any case are read too (another tool may have copied them).
    assert read_dead_letter({k.upper(): v for k, v in dl_headers.items()}, dl_body) == letter


def test_required_attributes_the_original_lacks_are_supplied() -> None:
    letter = _letter({"Nats-Msg-Id": "n1"}, b"garbage")
    event = binary_cloudevent(dead_letter_message(letter)[0])
    assert event["id"] == dead_letter_id(letter)
    assert event["source"] == "waybill/wms-bridge"
    assert event["type"] == DEAD_LETTER_TYPE
    assert "subject" not in event


def test_a_structured_originals_whole_event_is_the_dead_letters_data() -> None:
    body = (
        b'{"specversion":"1.0","id":"s1","type":"io.waybill.cmd.warehouse.release_order.v1",'
        b'"source":"urn:oms","subject":"SO/1 \\u00fc","data":{}}'
    )
    letter = _letter({"content-type": "application/cloudevents+json"}, body)
    dl_headers, dl_body = dead_letter_message(letter)
    event = binary_cloudevent(dl_headers)
    assert (event["id"], event["source"], event["subject"]) == ("s1", "urn:oms", "SO/1 ü")
    assert event["datacontenttype"] == "application/cloudevents+json"
    assert "content-type" not in {name.lower() for name in dl_headers}
    assert dl_body == body


def test_extension_names_follow_the_spec() -> None:
    for name in EXTENSIONS.values():
        assert name.isascii() and name.isalnum() and name.islower() and len(name) <= 20


@pytest.mark.parametrize("recorded", v1_dead_letters(), ids=lambda r: str(r["sequence"]))
def test_dead_letters_written_by_v1_are_read(recorded: Any) -> None:
    letter = read_dead_letter(recorded["headers"], recorded["body"].encode())
    document = json.loads(recorded["body"])
    assert letter.service == "wms-bridge"
    assert letter.reason == document["reason"]
    assert letter.error_message == document["error_message"]
    assert letter.original_subject == "waybill.cmd.warehouse.release_order.v1"
    assert letter.original_body == base64.b64decode(document["original_body"])
    assert letter.original_headers == document["original_headers"]
    assert letter.original_sequence == recorded["sequence"]
    # Written again today, it becomes a CloudEvent carrying the same letter.
    again = dead_letter_message(letter)
    binary_cloudevent(again[0])
    assert read_dead_letter(*again) == letter


def test_a_message_that_is_no_dead_letter_is_refused_with_the_reason() -> None:
    with pytest.raises(NotADeadLetter, match="ce-deadletterreason"):
        read_dead_letter({"ce-id": "1"}, b"{}")
    with pytest.raises(NotADeadLetter):
        read_dead_letter(None, b"not json")
    headers, body = dead_letter_message(_letter(*_waybill_original()))
    without_consumer = {k: v for k, v in headers.items() if k != "ce-deadletterconsumer"}
    with pytest.raises(NotADeadLetter, match="ce-deadletterconsumer"):
        read_dead_letter(without_consumer, body)
    with pytest.raises(NotADeadLetter, match="ce-deadletterattempts"):
        read_dead_letter({**headers, "ce-deadletterattempts": "three"}, body)
    # Numbers a forged letter could use to break whoever stores it (SQLite holds 64 bits).
    for header in ("ce-deadletterattempts", "ce-deadlettersequence"):
        for number in ("1" + "0" * 30, str(2**63), "-1"):
            with pytest.raises(NotADeadLetter, match=header):
                read_dead_letter({**headers, header: number}, body)
    with pytest.raises(NotADeadLetter):
        read_dead_letter(None, b'{"attempts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(NotADeadLetter, match="ce-deadletterheaders"):
        read_dead_letter({**headers, "ce-deadletterheaders": "%5B1%5D"}, body)
    with pytest.raises(NotADeadLetter, match="ce-deadletterreason"):
        read_dead_letter({**headers, "ce-deadletterreason": "%C0%A0"}, body)


def test_a_failure_text_that_is_not_valid_unicode_does_not_lose_the_letter() -> None:
    letter = _letter(*_waybill_original(), error_message="bad byte \udcff")
    headers, body = dead_letter_message(letter)
    binary_cloudevent(headers)
    assert read_dead_letter(headers, body).error_message == "bad byte ?"


def test_a_letter_that_fits_is_kept_whole_and_one_that_does_not_is_cut_and_says_so() -> None:
    headers, body = _waybill_original()
    letter = _letter(headers, body)
    assert fit_within(letter, 1024 * 1024) is letter
    dl_headers, _ = dead_letter_message(letter)
    assert "ce-deadlettertruncated" not in dl_headers

    body += b" " * 20_000  # JSON may end in spaces
    cut = fit_within(_letter(headers, body), 16_384)
    assert cut.truncated and cut.original_size == len(body)
    assert body.startswith(cut.original_body) and 0 < len(cut.original_body) < len(body)
    cut_headers, cut_body = dead_letter_message(cut)
    size = len(cut_body) + sum(len(k) + len(v) + 4 for k, v in cut_headers.items())
    assert size <= 16_384
    event = binary_cloudevent(cut_headers)
    assert (event["deadlettertruncated"], event["deadlettersize"]) == ("true", str(len(body)))
    assert read_dead_letter(cut_headers, cut_body) == cut
