"""How a browser carries its API token, and the CSRF token that guards its form posts.

People's tools send ``Authorization: Bearer <token>``. A browser cannot, so a
token is also taken from two other places:

- ``X-Forwarded-Access-Token``: an OAuth2/OIDC proxy in front of the service
  (oauth2-proxy's ``--pass-access-token``) forwards the signed-in user's
  access token there; it is verified like any bearer token (the provider's
  JWKS, issuer and audience in the service's settings), so a forged header
  gains nothing.
- the ``waybill_session`` cookie: a local sign-in page (for ``waybill up``)
  stores a pasted token in it, HttpOnly and SameSite=Strict.

A cookie rides along with requests other sites make, so a state-changing
request that authenticated by the cookie must also carry the CSRF token of
that cookie's token (form field ``csrf_token`` or header ``X-CSRF-Token``).
The CSRF token is an HMAC keyed by the API token itself: only a page that
was served to the token's holder knows it, it needs no server-side state, and
every replica of a service computes the same one.
"""

from __future__ import annotations

import enum
import hashlib
import hmac

from aiohttp import web

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "FORWARDED_TOKEN_HEADER",
    "SESSION_COOKIE",
    "Credential",
    "CredentialSource",
    "credential_of",
    "csrf_matches",
    "csrf_token",
]

SESSION_COOKIE = "waybill_session"
FORWARDED_TOKEN_HEADER = "X-Forwarded-Access-Token"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

_CSRF_CONTEXT = b"waybill csrf v1"


class CredentialSource(enum.Enum):
    """Where a request's token came from."""

    BEARER = "bearer"
    FORWARDED = "forwarded"
    COOKIE = "cookie"


class Credential:
    """A token as a request carried it."""

    __slots__ = ("source", "token")

    def __init__(self, token: str, source: CredentialSource) -> None:
        self.token, self.source = token, source

    @property
    def ambient(self) -> bool:
        """Sent by the browser on its own (a cookie): state changes need the CSRF token."""
        return self.source is CredentialSource.COOKIE


def credential_of(request: web.Request) -> Credential | None:
    """The token ``request`` carries: the Authorization header first, then the proxy's, then
    the session cookie."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return Credential(token.strip(), CredentialSource.BEARER)
    forwarded = request.headers.get(FORWARDED_TOKEN_HEADER, "").strip()
    if forwarded:
        return Credential(forwarded, CredentialSource.FORWARDED)
    cookie = request.cookies.get(SESSION_COOKIE, "").strip()
    if cookie:
        return Credential(cookie, CredentialSource.COOKIE)
    return None


def csrf_token(token: str) -> str:
    """The CSRF token of the pages served to the holder of API token ``token``."""
    return hmac.new(token.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def csrf_matches(token: str, offered: str | None) -> bool:
    """Whether ``offered`` is ``token``'s CSRF token (compared in constant time)."""
    return offered is not None and hmac.compare_digest(csrf_token(token), offered.strip())
