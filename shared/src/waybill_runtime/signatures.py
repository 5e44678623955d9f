"""Checking the signatures partners put on their webhooks.

Partners sign differently (hex or base64, with or without a timestamp, in
different headers), so each adapter says how its partner builds the signed
content; the checks that must be right every time live here once: constant
time comparison, and rejecting stale or future timestamps (replays).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Literal

Encoding = Literal["hex", "base64"]


class SignatureError(Exception):
    """A webhook's signature or timestamp does not check out; the message says which."""


def hmac_sha256(secret: bytes, content: bytes) -> bytes:
    return hmac.new(secret, content, hashlib.sha256).digest()


def _decode_signature(signature: str, encoding: Encoding) -> bytes:
    try:
        if encoding == "hex":
            return bytes.fromhex(signature.strip())
        return base64.b64decode(signature.strip(), validate=True)
    except (ValueError, binascii.Error):
        raise SignatureError(f"signature is not valid {encoding}") from None


def verify_hmac_sha256(
    secret: bytes, content: bytes, signature: str | None, *, encoding: Encoding = "hex"
) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is the HMAC-SHA256 of ``content``."""
    if not signature:
        raise SignatureError("signature missing")
    given = _decode_signature(signature, encoding)
    if not hmac.compare_digest(given, hmac_sha256(secret, content)):
        raise SignatureError("signature does not match the body")


def check_timestamp(
    timestamp: str | None,
    *,
    tolerance_s: float = 300.0,
    clock: Callable[[], float] = time.time,
) -> int:
    """Parse a Unix-seconds timestamp header; reject it when more than ``tolerance_s`` off."""
    if not timestamp:
        raise SignatureError("timestamp missing")
    try:
        seconds = int(timestamp.strip())
    except ValueError:
        raise SignatureError(f"timestamp {timestamp!r} is not Unix seconds") from None
    skew = clock() - seconds
    if abs(skew) > tolerance_s:
        direction = "old" if skew > 0 else "in the future"
        raise SignatureError(
            f"timestamp is {abs(skew):.0f} s {direction} (allowed {tolerance_s:.0f} s)"
        )
    return seconds
