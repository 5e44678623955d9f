"""The CloudEvents NATS protocol binding: header names, header values, content modes.

Only the binding's own rules live here, independent of Waybill's messages:

* every attribute ``x`` travels as the header ``ce-x``; header names are
  case-insensitive (:func:`binding_headers` finds them whatever their case);
* header values are percent-encoded: space, ``"``, ``%`` and every character
  outside printable ASCII become ``%XY`` per UTF-8 byte, upper-case hex
  (:func:`encode_value`); a reader first undoes double-quoted strings, then
  percent-decodes once, accepting lower-case hex and needless escapes and
  refusing bytes that are not UTF-8 (:func:`decode_value`);
* a ``content-type`` of ``application/cloudevents...`` means structured mode
  (the whole event in the body), anything else binary mode.

Encoding and decoding run for every header of every message, so both look
at a value once, in C, and return it untouched when it needs no work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, unquote_to_bytes

from waybill_contracts.errors import InvalidHeader

ATTRIBUTE_PREFIX = "ce-"
CONTENT_TYPE_HEADER = "content-type"
STRUCTURED_PREFIX = "application/cloudevents"
STRUCTURED_JSON = "application/cloudevents+json"
"""The JSON event format's media type, the one structured format Waybill reads."""

# W3C trace context travels beside the ce- headers under its own names.
_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})

# Printable ASCII except the three characters the binding always encodes.
_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) not in '"%')
_BROKEN_ESCAPE = re.compile("%(?![0-9A-Fa-f]{2})").search
_ATTRIBUTE_NAME = re.compile("[a-z0-9]+").fullmatch

# Header-name tuples already checked by binding_headers, mapped to whether the
# binding's headers among them are spelled in lower case, each once. Messages
# written by one producer repeat a handful of tuples; bounded all the same,
# because input can carry any names.
_LOWER_CASE_NAMES: dict[tuple[str, ...], bool] = {}
_MAX_REMEMBERED = 1024


def needs_encoding(value: str) -> bool:
    """Whether :func:`encode_value` would change ``value``.

    Also true for any text joining several values, so one look can clear
    them all. All C-level steps: ``isascii`` is free, the rest one pass each.
    """
    return not (
        value.isascii()
        and value.isprintable()  # with isascii: U+0020 to U+007E only
        and " " not in value
        and '"' not in value
        and "%" not in value
    )


def encode_value(value: str) -> str:
    """``value`` as a header value: percent-encoded where the binding requires it.

    :class:`UnicodeEncodeError` for a string that is not valid Unicode (a lone
    surrogate), which no attribute can hold.
    """
    if not needs_encoding(value):
        return value
    return quote(value, safe=_SAFE)


def needs_decoding(value: str) -> bool:
    """Whether a header value holds anything :func:`decode_value` would change.

    Also true for any text joining several values, so one look can clear them all.
    """
    return "%" in value or '"' in value


def decode_value(value: str, *, header: str) -> str:
    """The attribute value a header carries; :class:`InvalidHeader` naming ``header`` if bad."""
    if "%" not in value and '"' not in value:
        return value
    if '"' in value:
        value = _unquote(value, header)
    if _BROKEN_ESCAPE(value) is not None:
        raise InvalidHeader(
            f"header {header} has a % that does not start a %XY escape: {value!r}", field=header
        )
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeError:
        raise InvalidHeader(
            f"header {header} percent-encodes bytes that are not UTF-8: {value!r}", field=header
        ) from None


def _unquote(value: str, header: str) -> str:
    # RFC 7230 quoted strings: a pair of double quotes around text in which a
    # backslash escapes the next character. Older binding versions produced them.
    out: list[str] = []
    quoted = False
    chars = iter(value)
    for char in chars:
        if char == '"':
            quoted = not quoted
        elif char == "\\" and quoted:
            escaped = next(chars, None)
            if escaped is None:
                break
            out.append(escaped)
        else:
            out.append(char)
    if quoted:
        raise InvalidHeader(
            f"header {header} has a quoted string without its closing quote: {value!r}",
            field=header,
        )
    return "".join(out)


def is_binding_header(name: str) -> bool:
    """Whether a lower-case header name belongs to the binding (``ce-*``, content type, trace)."""
    return (
        name.startswith(ATTRIBUTE_PREFIX) or name == CONTENT_TYPE_HEADER or name in _TRACE_HEADERS
    )


def is_attribute_name(name: str) -> bool:
    """Whether ``name`` is a CloudEvents attribute name: lower-case ASCII letters and digits."""
    return _ATTRIBUTE_NAME(name) is not None


def binding_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    """``headers`` in which every binding header is found by its lower-case name.

    That is ``headers`` itself when the binding's headers are already spelled
    in lower case (what Waybill writes; the answer is remembered per set of
    names), else a copy with every name in lower case. Other names keep their
    case in the first form, so look only binding headers up in the result.
    Two spellings of one header with different values are ambiguous:
    :class:`InvalidHeader`.
    """
    names = tuple(headers)
    lower_case = _LOWER_CASE_NAMES.get(names)
    if lower_case is None:
        lower_case = all(
            name == name.lower() or not is_binding_header(name.lower()) for name in names
        )
        if len(_LOWER_CASE_NAMES) < _MAX_REMEMBERED:
            _LOWER_CASE_NAMES[names] = lower_case
    if lower_case:
        return headers
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lowered.get(lower, value) != value and is_binding_header(lower):
            raise InvalidHeader(
                f"header {lower} is sent twice, in different case, with different values",
                field=lower,
            )
        lowered[lower] = value
    return lowered


def find_header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (lower case) in any case; the first one if spelled twice.

    For tools that read one header of a message that may be broken; never raises.
    """
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if isinstance(key, str) and key.lower() == name:
            return candidate
    return None


def media_type(content_type: str) -> str:
    """The media type of a content type, without parameters, in lower case."""
    return content_type.split(";", 1)[0].strip().lower()


def is_structured(content_type: str | None) -> bool:
    """Whether a message with this ``content-type`` header is in structured mode."""
    return content_type is not None and media_type(content_type).startswith(STRUCTURED_PREFIX)
