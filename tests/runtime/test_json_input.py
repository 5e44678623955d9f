"""JSON from outside nests at most 64 levels: deeper is refused before the decoder recurses."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from waybill_runtime.json_input import MAX_DEPTH, JsonTooDeep, check_depth, decode_bounded


def nested(depth: int, opening: str = "[", closing: str = "]") -> bytes:
    return (opening * depth + closing * depth).encode()


def objects(depth: int) -> bytes:
    return ('{"a": ' * depth + "1" + "}" * depth).encode()


@pytest.mark.parametrize("depth", [0, 1, MAX_DEPTH - 1, MAX_DEPTH])
def test_documents_up_to_the_limit_pass(depth: int) -> None:
    check_depth(nested(depth))
    check_depth(objects(depth))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_deeper_documents_are_refused(depth: int) -> None:
    with pytest.raises(JsonTooDeep, match=f"more than {MAX_DEPTH} levels deep"):
        check_depth(nested(depth))
    with pytest.raises(JsonTooDeep):
        check_depth(objects(depth))


def test_arrays_and_objects_count_alike() -> None:
    mixed = ('[{"a": ' * 33 + "1" + "}]" * 33).encode()  # 66 levels
    with pytest.raises(JsonTooDeep):
        check_depth(mixed)


def test_nesting_is_measured_not_counted() -> None:
    # A thousand siblings, each two deep: wide is fine.
    check_depth(b"[" + b",".join([b"[[1]]"] * 1000) + b"]")
    # Closed pairs between the openings do not hide the depth.
    with pytest.raises(JsonTooDeep):
        check_depth(b"[[]" * 100 + b"]" * 100)


def test_brackets_inside_strings_do_not_count() -> None:
    text = '{"note": "' + "[" * 500 + '\\"[[[", "more": "{{{{"}'
    check_depth(text)
    check_depth(text.encode())
    assert msgspec.json.decode(text)["more"] == "{{{{"


def test_the_limit_can_be_chosen() -> None:
    check_depth(nested(3), limit=3)
    with pytest.raises(JsonTooDeep) as refused:
        check_depth(nested(4), limit=3)
    assert refused.value.limit == 3


def test_too_deep_is_an_undecodable_body_to_existing_error_handling() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_bounded(nested(100_000), msgspec.json.decode)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # never closed: the decoder would recurse before noticing
        b'{"a": ' * 100_000,
        b'["\\"", ' + b"[" * 100_000,
    ],
)
def test_a_document_never_closed_is_refused_before_the_decoder_recurses(body: bytes) -> None:
    with pytest.raises(JsonTooDeep):
        decode_bounded(body, msgspec.json.decode)


def test_a_decoder_that_runs_out_of_stack_anyway_reports_too_deep() -> None:
    def recursing(body: bytes) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    with pytest.raises(JsonTooDeep):
        decode_bounded(b"[1]", recursing)


def test_a_document_within_the_limit_is_decoded_as_usual() -> None:
    decode: Any = msgspec.json.Decoder(dict[str, list[int]]).decode
    assert decode_bounded(b'{"a": [1, 2]}', decode) == {"a": [1, 2]}
    with pytest.raises(msgspec.ValidationError):
        decode_bounded(b'{"a": ["x"]}', decode)
    with pytest.raises(msgspec.DecodeError):
        decode_bounded(b'{"a": [1, ', decode)
