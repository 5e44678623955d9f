"""Standard Webhooks signatures for the webhooks Waybill sends.

The signed content is ``{webhook-id}.{webhook-timestamp}.{raw body}``; the key
is the secret after its ``whsec_`` prefix, base64-decoded; the signature is
``v1,`` followed by the base64 HMAC-SHA256. Receivers verify it with any
Standard Webhooks library (the reference one is ``standardwebhooks``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["SECRET_PREFIX", "decode_secret", "sign_standard_webhook", "sign_with_key"]

SECRET_PREFIX = "whsec_"
# The specification asks for 24 to 64 random bytes; fewer is a guessable key.
_MIN_KEY_BYTES = 24
_MAX_KEY_BYTES = 64


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ValueError saying what is wrong."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret must start with whsec_ followed by base64")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret must be whsec_ followed by valid base64") from None
    if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise ValueError(
            f"a webhook secret must hold {_MIN_KEY_BYTES} to {_MAX_KEY_BYTES} random bytes, "
            f"this one holds {len(key)}"
        )
    return key


def sign_standard_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery attempt."""
    return sign_with_key(decode_secret(secret), msg_id, timestamp, body)


def sign_with_key(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """:func:`sign_standard_webhook` with the secret decoded already (:func:`decode_secret`)."""
    if not msg_id or "." in msg_id:
        # The id is the first part of the dotted signed content; a dot would
        # let two different (id, timestamp) pairs sign the same bytes.
        raise ValueError(f"webhook id {msg_id!r} must be non-empty and free of dots")
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
