"""JSON from outside (a webhook, a stored body, a message): bounded nesting before decoding.

A document nested 100,000 levels deep is a few hundred kilobytes, well under
any size limit, and exhausts the decoder's recursion (a ``RecursionError``
that would become a 500 or a crashed consumer). Waybill's documents nest a
handful of levels, so anything deeper than :data:`MAX_DEPTH` is refused before
it is decoded, as :class:`JsonTooDeep` (a ``msgspec.DecodeError``, so the
callers' existing handling of undecodable bodies applies to it as well).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

__all__ = ["MAX_DEPTH", "JsonTooDeep", "check_depth", "decode_bounded"]

T = TypeVar("T")

MAX_DEPTH = 64
"""How deep arrays and objects may nest in JSON Waybill reads from outside."""

# A JSON string, possessive so an unterminated one cannot make the engine backtrack.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_OPENING = bytes.maketrans(b"{}", b"[]")
_NOT_A_BRACKET = bytes(byte for byte in range(256) if byte not in b"[]{}")


class JsonTooDeep(msgspec.DecodeError):
    """A JSON document whose arrays and objects nest deeper than allowed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"JSON nested more than {limit} levels deep")


def _exceeds(body: bytes, limit: int) -> bool:
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    # Only the brackets outside strings matter, and only as opening or closing.
    brackets = _STRING.sub(b"", body).translate(_OPENING, _NOT_A_BRACKET)
    # Each pass removes the innermost pairs: a document nested d deep is gone
    # after d passes. A run of limit + 1 openings settles it at once (the usual
    # attack), and the passes stop at the limit, so the cost is bounded too.
    too_deep = b"[" * (limit + 1)
    for _ in range(limit):
        if not brackets:
            return False
        if too_deep in brackets:
            return True
        reduced = brackets.replace(b"[]", b"")
        if len(reduced) == len(brackets):
            return False  # unbalanced: the decoder will say what is wrong
        brackets = reduced
    return b"[]" in brackets


def check_depth(body: bytes | bytearray | memoryview | str, *, limit: int = MAX_DEPTH) -> None:
    """Raise :class:`JsonTooDeep` when ``body`` nests arrays or objects deeper than ``limit``."""
    data = body.encode() if isinstance(body, str) else bytes(body)
    if _exceeds(data, limit):
        raise JsonTooDeep(limit)


def decode_bounded(
    body: bytes | bytearray | memoryview | str,
    decode: Callable[[Any], T],
    *,
    limit: int = MAX_DEPTH,
) -> T:
    """``decode(body)`` once ``body`` is known to nest at most ``limit`` levels.

    ``decode`` is a msgspec decoder's ``decode`` (or ``msgspec.json.decode``);
    its own errors pass through. :class:`JsonTooDeep` when the document is too
    deep, also when the decoder runs out of stack on a malformed one.
    """
    check_depth(body, limit=limit)
    try:
        return decode(body)
    except RecursionError:
        raise JsonTooDeep(limit) from None
