"""The CloudEvents NATS binding's header rules: percent-encoding, quoted strings, name case."""

from __future__ import annotations

import random
import string
from urllib.parse import unquote

import pytest

from waybill_contracts import InvalidHeader
from waybill_contracts.binding import (
    binding_headers,
    decode_value,
    encode_value,
    find_header,
    is_attribute_name,
    is_structured,
    needs_decoding,
    needs_encoding,
)

# Printable ASCII but space, double quote and percent: what may travel unencoded.
UNENCODED = set(string.printable[:94]) - {'"', "%"}


def test_the_specs_example_is_encoded_as_the_spec_shows() -> None:
    assert encode_value("Euro \u20ac \U0001f600") == "Euro%20%E2%82%AC%20%F0%9F%98%80"


def test_slash_space_and_non_ascii_round_trip_exactly() -> None:
    value = "SO/2024 Müller"
    encoded = encode_value(value)
    assert encoded == "SO/2024%20M%C3%BCller"
    assert decode_value(encoded, header="ce-subject") == value


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ('say "hi"', "say%20%22hi%22"),
        ("100%", "100%25"),
        ("tab\there", "tab%09here"),
        ("line\nbreak", "line%0Abreak"),
        ("del\x7f", "del%7F"),
        ("c1\x85", "c1%C2%85"),
    ],
)
def test_space_quote_percent_and_control_characters_are_encoded(value: str, encoded: str) -> None:
    assert encode_value(value) == encoded
    assert decode_value(encoded, header="ce-subject") == value


def test_values_that_need_nothing_are_returned_as_they_are() -> None:
    value = "waybill/odoo-gateway:WH/OUT/00042?a=b&c=[1]{2}|~^`'!#$*+,;<>@\\"
    assert not needs_encoding(value)
    assert encode_value(value) is value
    assert not needs_decoding(value)
    assert decode_value(value, header="ce-id") is value


def test_random_text_round_trips_and_encodes_to_printable_ascii_only() -> None:
    rng = random.Random(20250314)
    alphabet = [chr(c) for c in range(0x0, 0x250)] + ["€", "😀", "中", "\u2028", "\ufeff"]
    for _ in range(500):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24)))
        encoded = encode_value(value)
        assert set(encoded) - {"%"} <= UNENCODED, (value, encoded)
        # An independent decoder agrees: the result is standard percent-encoding.
        assert unquote(encoded, errors="strict") == value
        assert decode_value(encoded, header="ce-subject") == value


def test_lower_case_hex_and_needless_escapes_are_accepted() -> None:
    assert decode_value("M%c3%bcller", header="ce-subject") == "Müller"
    assert decode_value("%41%42C", header="ce-id") == "ABC"


@pytest.mark.parametrize(
    "value",
    [
        "%C0%A0",  # an overlong encoding of a space: the spec's own example
        "%FF",
        "%E2%82",  # cut short
    ],
)
def test_escapes_that_are_not_utf8_are_refused_naming_the_header(value: str) -> None:
    with pytest.raises(InvalidHeader) as refused:
        decode_value(value, header="ce-subject")
    assert refused.value.field == "ce-subject"
    assert "UTF-8" in str(refused.value)


@pytest.mark.parametrize("value", ["50%", "50%2", "%G1", "a%%20"])
def test_a_percent_that_starts_no_escape_is_refused(value: str) -> None:
    with pytest.raises(InvalidHeader) as refused:
        decode_value(value, header="ce-correlationid")
    assert refused.value.field == "ce-correlationid"


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ('"SO/2024 M%C3%BCller"', "SO/2024 Müller"),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"back\\\\slash"', "back\\slash"),
        ('prefix-"quoted part"', "prefix-quoted part"),
    ],
)
def test_double_quoted_values_of_older_binding_versions_are_read(value: str, decoded: str) -> None:
    assert decode_value(value, header="ce-subject") == decoded


@pytest.mark.parametrize("value", ['"unterminated', '"ends in an escape\\'])
def test_an_unterminated_quoted_value_is_refused(value: str) -> None:
    with pytest.raises(InvalidHeader) as refused:
        decode_value(value, header="ce-source")
    assert refused.value.field == "ce-source"


def test_binding_headers_are_found_whatever_their_case() -> None:
    headers = {"CE-Type": "t", "Ce-Id": "1", "TraceParent": "00-x", "Content-Type": "a/b"}
    found = binding_headers(headers)
    assert found["ce-type"] == "t"
    assert found["ce-id"] == "1"
    assert found["traceparent"] == "00-x"
    assert found["content-type"] == "a/b"


def test_headers_already_in_lower_case_are_used_as_they_are() -> None:
    headers = {"ce-type": "t", "ce-id": "1", "Nats-Msg-Id": "1"}
    assert binding_headers(headers) is headers
    assert binding_headers(dict(headers)) == headers  # remembered per set of names


def test_one_header_spelled_twice_with_different_values_is_ambiguous() -> None:
    with pytest.raises(InvalidHeader) as refused:
        binding_headers({"ce-id": "1", "CE-ID": "2"})
    assert refused.value.field == "ce-id"
    assert binding_headers({"ce-id": "1", "CE-ID": "1"})["ce-id"] == "1"


def test_find_header_reads_one_header_in_any_case_and_never_raises() -> None:
    headers = {"NATS-MSG-ID": "m1", "ce-id": "1", "CE-ID": "2"}
    assert find_header(headers, "nats-msg-id") == "m1"
    assert find_header(headers, "ce-id") == "1"
    assert find_header(headers, "ce-type") is None


@pytest.mark.parametrize(
    ("content_type", "structured"),
    [
        ("application/cloudevents+json", True),
        ("Application/CloudEvents+JSON; charset=utf-8", True),
        ("application/cloudevents-batch+json", True),
        ("application/json", False),
        (None, False),
    ],
)
def test_structured_mode_is_told_by_the_content_type(
    content_type: str | None, structured: bool
) -> None:
    assert is_structured(content_type) is structured


@pytest.mark.parametrize(
    ("name", "valid"),
    [("correlationid", True), ("deadletter2", True), ("Type", False), ("dead_letter", False)],
)
def test_attribute_names_are_lower_case_letters_and_digits(name: str, valid: bool) -> None:
    assert is_attribute_name(name) is valid
