"""Independent verifiers of the sandboxes' webhook signatures, as a receiver would write them.

Written from the schemes' descriptions, not from waybill_sandboxes.signing, so a
bug in the signing code cannot hide itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json


def _hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def wms_signature_valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """X-WMS-Signature = hex HMAC-SHA256 of "{X-WMS-Timestamp}.{raw body}"."""
    timestamp = headers.get("X-WMS-Timestamp", "")
    given = headers.get("X-WMS-Signature", "")
    if not timestamp.isdigit():
        return False
    return hmac.compare_digest(given, _hex(secret, timestamp.encode() + b"." + body))


def easypost_signature_valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """X-Hmac-Signature = "hmac-sha256-hex=" + hex HMAC-SHA256 of the raw body."""
    given = headers.get("X-Hmac-Signature", "")
    return hmac.compare_digest(given, "hmac-sha256-hex=" + _hex(secret, body))


def shippo_signature_valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """X-Shippo-Signature = "t=<ts>,v1=<hex HMAC-SHA256 of "{ts}.{raw body}">"."""
    parts = dict(
        part.split("=", 1)
        for part in headers.get("X-Shippo-Signature", "").split(",")
        if "=" in part
    )
    timestamp, given = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit():
        return False
    return hmac.compare_digest(given, _hex(secret, timestamp.encode() + b"." + body))


def tampered(body: bytes) -> bytes:
    """The same JSON document with one field added, as an attacker would forge it."""
    document = json.loads(body)
    document["forged"] = True
    return json.dumps(document).encode()
