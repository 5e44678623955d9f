"""Where Odoo's webhooks reach this gateway: the route, its secret token, and the URL
as it may be shown (the token never is).

The route and the token comparison serve both the webhook endpoint and the
Odoo doctor, which reads Odoo's automation rules and must tell whether a
rule's ``webhook_url`` is this gateway's without ever printing the token.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from waybill_runtime.http.redaction import REDACTED, redacted_path

__all__ = ["WEBHOOK_PATH", "masked_url", "token_matches", "webhook_token_of"]

WEBHOOK_PATH = "/webhooks/odoo/{token}"
_PREFIX = WEBHOOK_PATH.split("{", 1)[0]


def token_matches(given: str, expected: str | None) -> bool:
    """Whether ``given`` is the configured token (compared in constant time)."""
    if not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def webhook_token_of(url: str) -> str | None:
    """The token of a URL ending in this gateway's webhook route, else None.

    The host is not judged: the gateway does not know the address Odoo reaches
    it by (an ingress, a proxy).
    """
    path = urlsplit(url).path
    position = path.rfind(_PREFIX)
    if position < 0:
        return None
    token = path[position + len(_PREFIX) :]
    return token if token and "/" not in token else None


def masked_url(url: str) -> str:
    """``url`` fit to print: the webhook token (or else the last path segment, which
    may be another secret) as ``***``, no query, no user or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    path = parts.path
    position = path.rfind(_PREFIX)
    shown = redacted_path(path[position:], WEBHOOK_PATH) if position >= 0 else None
    if shown is not None:
        path = path[:position] + shown
    elif path.strip("/"):
        head, _slash, _last = path.rstrip("/").rpartition("/")
        path = f"{head}/{REDACTED}"
    return f"{parts.scheme}://{host}{path}" if parts.scheme else path
