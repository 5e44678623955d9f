"""Who may call a service's HTTP API: bearer JWTs, roles, and a log line per decision.

A route declared with a ``role`` (:class:`waybill_runtime.declaration.Route`)
answers only a caller whose token (:mod:`waybill_runtime.security.api_tokens`)
grants that role; the probes, the metrics and a partner's webhooks (which
check their own signatures) are not touched. One middleware does it for every
service, from the declaration, so no handler checks anything itself:

- no token, or one that is not accepted: 401, ``WWW-Authenticate: Bearer``;
- a token whose roles do not reach the route's: 403;
- the keys cannot be read at all (a JWKS URL that is down): 503.

A browser's token may also come from an OAuth2/OIDC proxy's header or the
session cookie of a sign-in page (:mod:`waybill_runtime.http.browser`); a
state-changing request authenticated by the cookie must carry its CSRF token
too (else 403). A GET page declared with ``sign_in`` sends a browser without
a valid token there (303) instead of answering 401.

All these are problem+json bodies that never say which check failed; the log
does. Every decision is logged (logger ``waybill.api.access``) with the
subject, role, action (method and declared route), outcome and trace id. A
handler reads its caller with :func:`principal_of`, to carry the operator's
identity into the messages an action causes.

A service with protected routes and no key source refuses to start: an API
that answers anyone by mistake is worse than one that does not start.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from opentelemetry import trace

from waybill_runtime.declaration import Route
from waybill_runtime.http.browser import CSRF_FIELD, CSRF_HEADER, credential_of, csrf_matches
from waybill_runtime.http.problem import ProblemError
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.security.api_keys import (
    ApiKeyError,
    Hs256Secret,
    JwksFile,
    JwksUrl,
    KeySource,
    KeysUnavailable,
)
from waybill_runtime.security.api_tokens import (
    Principal,
    RevokedTokens,
    Role,
    TokenRefused,
    TokenRules,
    TokenVerifier,
)
from waybill_runtime.settings import RuntimeSettings, SettingsError, env_var_name
from waybill_runtime.telemetry import extract_trace

__all__ = ["PRINCIPAL", "ApiAccess", "api_access", "principal_of"]

log = logging.getLogger("waybill.api.access")

PRINCIPAL = web.RequestKey("waybill_principal", Principal)
"""The verified caller of a protected route, on its request."""

_REALM = 'Bearer realm="waybill"'
_UNAUTHORIZED = "send a valid bearer token (Authorization: Bearer <token>) to use this API"
_FORBIDDEN = "your token does not grant this action"
_UNAVAILABLE = "the service cannot check tokens right now; try again shortly"


def principal_of(request: web.Request) -> Principal:
    """The verified caller of ``request`` (only on routes that declare a role)."""
    try:
        return request[PRINCIPAL]
    except KeyError:
        raise LookupError(
            f"{request.method} {request.path} has no caller: its route declares no role"
        ) from None


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSRF = (
    "this form was not sent from the service's own page (its CSRF token is missing or wrong): "
    "reload the page and try again"
)


async def _offered_csrf(request: web.Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        # aiohttp keeps the parsed form: the handler reads it again for free.
        field = (await request.post()).get(CSRF_FIELD)
        return field if isinstance(field, str) else None
    return None


def _wants_page(request: web.Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


def _trace_id(request: web.Request) -> tuple[str, bool]:
    """The request's trace id, and whether the log formatter already writes it."""
    current = trace.get_current_span().get_span_context()
    if current.is_valid:
        return trace.format_trace_id(current.trace_id), True
    incoming = trace.get_current_span(extract_trace(request.headers)).get_span_context()
    if incoming.is_valid:
        return trace.format_trace_id(incoming.trace_id), False
    # No trace came with the request: a fresh id still ties the answer to the log line.
    return uuid.uuid4().hex, False


class ApiAccess:
    """The roles a service's routes need and the verifier of its callers' tokens."""

    def __init__(
        self, *, service: str, routes: Sequence[Route], verifier: TokenVerifier | None
    ) -> None:
        self.service = service
        self.verifier = verifier
        # Set by create_http_app: the service's registry (token expiry by subject).
        self.metrics: MetricsRegistry | None = None
        self._needed = {(r.method.upper(), r.path): r.role for r in routes if r.role is not None}
        self._sign_in = {(r.method.upper(), r.path): r.sign_in for r in routes if r.sign_in}
        self.guarded: dict[web.AbstractRoute, tuple[str, Role, str | None]] = {}
        """The registered routes that need a role: their action, role and sign-in page."""
        if self._needed and verifier is None:
            protected = ", ".join(" ".join(route) for route in self._needed)
            raise SettingsError(
                f"{service} serves protected routes ({protected}) "
                f"but no API key source is set: set {env_var_name('api_jwks_file')} or "
                f"{env_var_name('api_jwks_url')} with {env_var_name('api_issuer')} and "
                f"{env_var_name('api_audience')} (`waybill up` sets them)"
            )

    @property
    def protects_anything(self) -> bool:
        return bool(self._needed)

    def add_routes(self, router: web.UrlDispatcher, definitions: Sequence[web.RouteDef]) -> None:
        """Register ``definitions`` on ``router``, each guarded by its declared role."""
        for definition in definitions:
            added = definition.register(router)
            method = definition.method.upper()
            role = self._needed.get((method, definition.path))
            if role is None:
                continue
            sign_in = self._sign_in.get((method, definition.path))
            for route in added:
                self.guarded[route] = (f"{method} {definition.path}", role, sign_in)
                # aiohttp answers HEAD for a GET by a route of its own on the same resource.
                if method == "GET" and route.resource is not None:
                    for sibling in route.resource:
                        if sibling.method == "HEAD":
                            self.guarded[sibling] = (f"HEAD {definition.path}", role, None)

    async def admit(self, request: web.Request) -> None:
        """Let ``request`` through to its handler, or raise the answer that refuses it.

        A route that declares a role needs a caller whose token grants it; the
        caller is then on the request (:func:`principal_of`). Called by the
        app's middleware before anything reads the body.
        """
        guarded = self.guarded.get(request.match_info.route)
        if guarded is not None:
            request[PRINCIPAL] = await self._decide(request, *guarded)

    async def _decide(
        self, request: web.Request, action: str, needed: Role, sign_in: str | None
    ) -> Principal:
        assert self.verifier is not None  # __init__ refuses protected routes without one
        trace_id, traced = _trace_id(request)
        credential = credential_of(request)
        try:
            if credential is None:
                raise TokenRefused("no bearer token")
            principal = await self.verifier.verify(credential.token)
        except TokenRefused as refused:
            self._log(logging.WARNING, action, needed, "refused", refused.reason, trace_id, traced)
            if sign_in is not None and _wants_page(request):
                # A person at a browser: the sign-in page says how to get in.
                asked = {"next": request.path_qs}
                if credential is not None:
                    asked["refused"] = "1"  # the page says the token was not accepted
                raise web.HTTPSeeOther(f"{sign_in}?{urlencode(asked)}") from None
            raise ProblemError(
                401,
                "Unauthorized",
                _UNAUTHORIZED,
                headers={"WWW-Authenticate": _REALM},
                trace_id=trace_id,
            ) from None
        except KeysUnavailable as unavailable:
            self._log(
                logging.ERROR, action, needed, "unavailable", str(unavailable), trace_id, traced
            )
            raise ProblemError(
                503,
                "Service Unavailable",
                _UNAVAILABLE,
                headers={"Retry-After": "5"},
                trace_id=trace_id,
            ) from None
        if not principal.may(needed):
            self._log(
                logging.WARNING, action, needed, "forbidden", "role too weak", trace_id, traced,
                principal,
            )  # fmt: skip
            raise ProblemError(403, "Forbidden", _FORBIDDEN, trace_id=trace_id)
        if (
            credential.ambient
            and request.method not in _SAFE_METHODS
            and not csrf_matches(credential.token, await _offered_csrf(request))
        ):
            self._log(
                logging.WARNING, action, needed, "forbidden", "no CSRF token", trace_id, traced,
                principal,
            )  # fmt: skip
            raise ProblemError(403, "Forbidden", _CSRF, trace_id=trace_id)
        self._log(logging.INFO, action, needed, "allowed", None, trace_id, traced, principal)
        if self.metrics is not None:
            self.metrics.api_token_seen(principal.subject, principal.expires_at.timestamp())
        return principal

    def _log(
        self,
        level: int,
        action: str,
        needed: Role,
        outcome: str,
        reason: str | None,
        trace_id: str,
        traced: bool,
        principal: Principal | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "subject": principal.subject if principal else None,
            "role": principal.role if principal else None,
            "action": action,
            "needs": needed,
            "outcome": outcome,
            "token_id": principal.token_id if principal else None,
        }
        if reason is not None:
            fields["reason"] = reason
        if not traced:
            fields["trace_id"] = trace_id
        who = f" for {principal.subject} ({principal.role})" if principal else ""
        log.log(level, "%s %s%s", action, outcome, who, extra=fields)

    async def aclose(self) -> None:
        if self.verifier is not None:
            await self.verifier.keys.aclose()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _key_source(settings: RuntimeSettings) -> KeySource | None:
    configured = {
        name: value
        for name in ("api_jwks_file", "api_jwks_url", "api_hs256_secret_file")
        if (value := getattr(settings, name)) is not None
    }
    if len(configured) > 1:
        raise SettingsError(
            f"{' and '.join(env_var_name(n) for n in configured)} are both set: "
            "API tokens are checked with one key source; keep one"
        )
    if not configured:
        return None
    if settings.api_jwks_file is not None:
        return JwksFile(Path(settings.api_jwks_file))
    if settings.api_jwks_url is not None:
        url = settings.api_jwks_url
        host = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        if url.startswith("http://") and not _is_loopback(host):
            raise SettingsError(
                f"{env_var_name('api_jwks_url')}={url!r} is not valid: keys are read over "
                "https (http only from this machine, 127.0.0.1 or localhost)"
            )
        return JwksUrl(
            url,
            refresh_s=settings.api_jwks_refresh_s,
            min_refresh_s=settings.api_jwks_min_refresh_s,
        )
    assert settings.api_hs256_secret_file is not None
    if not _is_loopback(settings.http_host):
        raise SettingsError(
            f"{env_var_name('api_hs256_secret_file')} is for local use only, and "
            f"{env_var_name('http_host')}={settings.http_host!r} listens beyond this machine: "
            f"use {env_var_name('api_jwks_file')} or {env_var_name('api_jwks_url')} (or listen "
            "on 127.0.0.1)"
        )
    return Hs256Secret(Path(settings.api_hs256_secret_file))


def api_access(settings: RuntimeSettings, routes: Sequence[Route]) -> ApiAccess:
    """The access rules of a service with ``routes``, from its settings; one clear error line
    (:class:`~waybill_runtime.settings.SettingsError`) when they do not fit together."""
    try:
        keys = _key_source(settings)
        revoked = (
            RevokedTokens(Path(settings.api_revoked_jti_file))
            if settings.api_revoked_jti_file is not None
            else None
        )
    except ApiKeyError as error:
        raise SettingsError(str(error)) from None
    verifier = None
    if keys is not None:
        missing = [name for name in ("api_issuer", "api_audience") if not getattr(settings, name)]
        if missing:
            raise SettingsError(
                f"{' and '.join(env_var_name(n) for n in missing)} "
                f"{'is' if len(missing) == 1 else 'are'} required with an API key source: "
                "set the iss and aud every token must carry"
            )
        assert settings.api_issuer is not None and settings.api_audience is not None
        rules = TokenRules(
            issuer=settings.api_issuer,
            audience=settings.api_audience,
            leeway_s=settings.api_leeway_s,
            roles_claim=settings.api_roles_claim,
        )
        verifier = TokenVerifier(keys, rules, revoked=revoked)
    return ApiAccess(service=settings.service, routes=routes, verifier=verifier)
