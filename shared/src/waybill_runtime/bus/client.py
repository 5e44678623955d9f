"""The NATS client the runtime connects with: nats-py's, with faster header handling.

Every Waybill message carries about ten CloudEvents headers. nats-py checks
each header name with a regular expression and rewrites each value with
``str.translate`` when it publishes, and tests each character of each name
in a Python generator when it receives: per message, that was one of the
largest single costs of the runtime (see docs/benchmarks.md).

The overrides produce exactly what nats-py produces (tests compare both,
byte for byte and dict for dict); they only do the work in fewer, C-level
steps: names are checked once and remembered, values are scanned for line
breaks in one pass over the whole block.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from nats.aio.client import Client
from nats.errors import BadHeaderError, BadSubjectError

_CRLF = b"\r\n"
_WHITESPACE = re.compile(r"\s")
# RFC 7230 token characters: what nats-py (and the server) accept as a name.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LINE_BREAKS = str.maketrans({"\r": " ", "\n": " "})
_STATUS_LINE = "NATS/1.0\r\n"
# Names already checked, mapped to their stripped form ("" = skipped, as
# nats-py skips blank names). Bounded: dead-letter replays carry arbitrary
# names, and this is a cache, not a registry.
_CHECKED_NAMES: dict[str, str] = {}
_MAX_CHECKED_NAMES = 1024


def _checked_name(name: str) -> str:
    known = _CHECKED_NAMES.get(name)
    if known is not None:
        return known
    stripped = name.strip()
    if stripped and not _HEADER_NAME.fullmatch(stripped):
        raise BadHeaderError(stripped)
    if len(_CHECKED_NAMES) < _MAX_CHECKED_NAMES:
        _CHECKED_NAMES[name] = stripped
    return stripped


def _header_lines(headers: Mapping[str, str], *, replace_line_breaks: bool) -> list[str]:
    lines = [_STATUS_LINE]
    for name, value in headers.items():
        checked = _checked_name(name)
        if checked:
            value = value.strip()
            if replace_line_breaks:
                value = value.translate(_LINE_BREAKS)
            lines.append(f"{checked}: {value}\r\n")
    return lines


def header_block(headers: Mapping[str, str]) -> bytes:
    """The NATS header block for ``headers``, exactly as nats-py writes it.

    Names are stripped and must be tokens (:class:`BadHeaderError` if not),
    blank names are left out, values are stripped and their line breaks
    become spaces, so a value can never start a header of its own.
    """
    lines = _header_lines(headers, replace_line_breaks=False)
    block = "".join(lines)
    # Every line ends in exactly one CR LF, unless a value holds a line break
    # (rare: then the values are cleaned one by one).
    if block.count("\n") != len(lines) or block.count("\r") != len(lines):
        block = "".join(_header_lines(headers, replace_line_breaks=True))
    return (block + "\r\n").encode()


class WaybillNatsClient(Client):
    """nats-py's client with faster header writing and parsing."""

    async def _send_publish(
        self,
        subject: str,
        reply: str,
        payload: bytes,
        payload_size: int,
        headers: dict[str, str] | None,
    ) -> None:
        if headers is None:
            await super()._send_publish(subject, reply, payload, payload_size, headers)
            return
        if subject == "":
            raise BadSubjectError
        block = header_block(headers)
        header_size = len(block)
        command = b"".join(
            (
                f"HPUB {subject} {reply} {header_size} {header_size + payload_size}\r\n".encode(),
                block,
                payload,
                _CRLF,
            )
        )
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += payload_size
        await self._send_command(command)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in raw.split(_CRLF):
            if not line:
                continue
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            try:
                key = name.strip().decode("ascii")
            except UnicodeDecodeError:
                continue
            if _WHITESPACE.search(key):
                continue
            out[key] = value.strip().decode("utf-8", "replace")
        return out
