"""A customer email as the bytes handed to the relay: headers, a text part and an HTML part.

Written directly rather than through :class:`email.message.EmailMessage`: the
standard library's email policy parses every header it is given back into a
structure and folds it again on the way out, which made composing and
flattening an email about a third of the notifier's CPU under a burst. Here
each header is written once: plain ASCII as is, anything else as an RFC 2047
encoded word (the standard library's own encoder), never more than one line
(values are made single-line before they get here). Both bodies go out as
UTF-8 in base64, which needs no line-length care and cannot contain the MIME
boundary (``_`` and ``.`` are not base64 characters).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from email.header import Header
from email.utils import formataddr

__all__ = ["address_header", "mime_email", "text_header"]

_LINE = b"\r\n"
_BASE64_LINE = 76  # characters per body line (RFC 2045), a multiple of 4
_BOUNDARY = "=_waybill.alternative_="


_PLAIN_UP_TO = 900
"""Longest ASCII value written as is (a header line may not pass 998 characters)."""


def text_header(value: str) -> str:
    """A header value: itself when short plain ASCII, else folded (RFC 2047 words if need be)."""
    if value.isascii():
        if len(value) <= _PLAIN_UP_TO:
            return value
        return Header(value, "us-ascii").encode(linesep="\r\n")
    return Header(value, "utf-8").encode(linesep="\r\n")


def address_header(name: str, address: str) -> str:
    """``Name <address>``, the name quoted or RFC 2047 encoded as it needs."""
    return formataddr((name, address), charset="utf-8")


def _base64_body(text: str) -> bytes:
    encoded = base64.b64encode(text.encode("utf-8"))
    return _LINE.join(
        encoded[start : start + _BASE64_LINE] for start in range(0, len(encoded), _BASE64_LINE)
    )


def _part(content_type: str, text: str) -> bytes:
    return _LINE.join(
        (
            f'Content-Type: {content_type}; charset="utf-8"'.encode(),
            b"Content-Transfer-Encoding: base64",
            b"",
            _base64_body(text),
        )
    )


def mime_email(headers: Sequence[tuple[str, str]], text: str, html: str) -> bytes:
    """The message: ``headers`` (values ready, see :func:`text_header`), text and HTML bodies."""
    boundary = _BOUNDARY.encode()
    head = [f"{name}: {value}".encode() for name, value in headers]
    head += [
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/alternative; boundary="' + boundary + b'"',
    ]
    return _LINE.join(
        (
            *head,
            b"",
            b"--" + boundary,
            _part("text/plain", text),
            b"--" + boundary,
            _part("text/html", html),
            b"--" + boundary + b"--",
            b"",
        )
    )
