"""Signing in at the browser: a local page that keeps a pasted API token in a session cookie.

Behind an OAuth2/OIDC proxy nobody sees this page: the proxy forwards the
user's token with every request (:mod:`waybill_runtime.http.browser`). For
``waybill up`` there is no proxy, so a person pastes one of the tokens it
prints. The token is checked on every request like any other, so this page
needs no key of its own: a bad token brings the person back here, told so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec
from aiohttp import web

from waybill_auditor.tower.render import page
from waybill_runtime.http import ProblemError
from waybill_runtime.http.browser import SESSION_COOKIE


class SignInForm(msgspec.Struct, frozen=True, kw_only=True):
    """The sign-in form."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=8192, description="An API token.")]
    next: Annotated[str, msgspec.Meta(description="Where to go after signing in.")] = "/tower"


class SignOutForm(msgspec.Struct, frozen=True, kw_only=True):
    """Signing out takes no fields."""


SIGN_IN = "/tower/sign-in"
SIGN_OUT = "/tower/sign-out"
HOME = "/tower"
MAX_TOKEN = 8192


def _safe_next(target: str | None) -> str:
    # Only a path of this site: never an open redirect to someone else's.
    if not target or not target.startswith("/tower") or target.startswith("//"):
        return HOME
    return target


async def _form(request: web.Request) -> dict[str, str]:
    if request.content_type != "application/x-www-form-urlencoded":
        raise ProblemError(
            415,
            "Unsupported Media Type",
            "send the form as application/x-www-form-urlencoded",
        )
    form = await request.post()
    return {name: value for name, value in form.items() if isinstance(value, str)}


async def sign_in_page(request: web.Request) -> web.Response:
    """The sign-in form, saying how to get a token."""
    unknown = sorted(set(request.query) - {"next", "refused"})
    if unknown:
        raise ProblemError(
            400,
            "Bad Request",
            f"unknown query parameter {unknown[0]!r}",
            invalid_params=[{"name": unknown[0], "reason": "unknown query parameter"}],
        )
    return page(
        request,
        "sign_in.html",
        {
            "title": "Sign in",
            "now": datetime.now(UTC),
            "next": _safe_next(request.query.get("next")),
            "refused": request.query.get("refused") == "1",
        },
    )


async def sign_in(request: web.Request) -> web.Response:
    """Keep the pasted token in an HttpOnly, same-site cookie; go where the person was going."""
    form = await _form(request)
    token = "".join(form.get("token", "").split())
    if not token or len(token) > MAX_TOKEN or not token.isascii():
        raise ProblemError(
            400,
            "Bad Request",
            "paste an API token (a JWT, up to 8192 characters)",
            invalid_params=[{"name": "token", "reason": "missing or not a token"}],
        )
    response = web.HTTPSeeOther(_safe_next(form.get("next")))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )
    raise response


async def sign_out(request: web.Request) -> web.Response:
    """Forget the cookie."""
    response = web.HTTPSeeOther(SIGN_IN)
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def sign_in_routes() -> list[web.RouteDef]:
    return [
        web.get(SIGN_IN, sign_in_page),
        web.post(SIGN_IN, sign_in),
        web.post(SIGN_OUT, sign_out),
    ]
