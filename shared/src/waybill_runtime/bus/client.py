"""The NATS client the runtime connects with: nats-py's, with a faster header parser.

Every Waybill message carries about ten CloudEvents headers, and nats-py's
header parser tests each character of each name for whitespace in a Python
generator: on the consume path that was one of the largest single costs per
message (see docs/benchmarks.md). The override keeps nats-py's behaviour
exactly (a test compares both) and only does the whitespace check in C.
"""

from __future__ import annotations

import re

from nats.aio.client import Client

_CRLF = b"\r\n"
_WHITESPACE = re.compile(r"\s")


class WaybillNatsClient(Client):
    """nats-py's client with a faster parser for message headers."""

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
