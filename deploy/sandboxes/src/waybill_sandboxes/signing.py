"""Signatures the sandboxes put on their own outgoing webhooks.

Each partner signs differently; these helpers reproduce each scheme so the
receiving side (Waybill) can be tested against realistic headers. They sign
only: verification belongs to the receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import unicodedata

__all__ = [
    "EASYPOST_SIGNATURE_HEADER",
    "SHIPPO_SIGNATURE_HEADER",
    "WMS_SIGNATURE_HEADER",
    "WMS_TIMESTAMP_HEADER",
    "easypost_signature_headers",
    "hmac_sha256_hex",
    "shippo_signature_headers",
    "wms_signature_headers",
]

WMS_TIMESTAMP_HEADER = "X-WMS-Timestamp"
WMS_SIGNATURE_HEADER = "X-WMS-Signature"
EASYPOST_SIGNATURE_HEADER = "X-Hmac-Signature"
SHIPPO_SIGNATURE_HEADER = "X-Shippo-Signature"


def hmac_sha256_hex(secret: str | bytes, message: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of ``message`` keyed by ``secret`` (UTF-8 if text)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _now(timestamp: int | None) -> int:
    return int(time.time()) if timestamp is None else timestamp


def wms_signature_headers(
    secret: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """WMS scheme: hex HMAC of ``"{timestamp}.{body}"``, timestamp in its own header.

    Binding the timestamp into the signed bytes lets the receiver reject replays.
    """
    stamp = _now(timestamp)
    signature = hmac_sha256_hex(secret, f"{stamp}.".encode() + body)
    return {WMS_TIMESTAMP_HEADER: str(stamp), WMS_SIGNATURE_HEADER: signature}


def easypost_signature_headers(secret: str, body: bytes) -> dict[str, str]:
    """EasyPost-style scheme: ``X-Hmac-Signature: hmac-sha256-hex=<hex HMAC of the body>``.

    The secret is NFKD-normalised first, as that partner does, so secrets with
    accented characters sign the same on both sides.
    """
    key = unicodedata.normalize("NFKD", secret)
    return {EASYPOST_SIGNATURE_HEADER: f"hmac-sha256-hex={hmac_sha256_hex(key, body)}"}


def shippo_signature_headers(
    secret: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """Shippo-style scheme: ``X-Shippo-Signature: t=<ts>,v1=<hex HMAC of "{t}.{body}">``."""
    stamp = _now(timestamp)
    signature = hmac_sha256_hex(secret, f"{stamp}.".encode() + body)
    return {SHIPPO_SIGNATURE_HEADER: f"t={stamp},v1={signature}"}
