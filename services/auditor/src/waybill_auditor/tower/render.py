"""Rendering the control tower's pages: one Jinja2 environment, its filters, the page frame."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import jinja2
import msgspec
from aiohttp import web

from waybill_auditor.tower.actions import new_action_id
from waybill_runtime.http.auth import PRINCIPAL
from waybill_runtime.http.browser import credential_of, csrf_token

NOTHING = "\N{EN DASH}"
"""Shown where there is no value."""

_pretty = msgspec.json.Encoder(order="sorted")


def duration(seconds: float | None) -> str:
    """``seconds`` the way people say it: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    if seconds is None:
        return NOTHING
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def latency(seconds: float | None) -> str:
    """A partner's answer time: milliseconds under a second (most are), else as :func:`duration`."""
    if seconds is None:
        return NOTHING
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))} ms"
    return duration(seconds)


def moment(value: datetime | None) -> str:
    """A time in UTC to the second."""
    return NOTHING if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty_json(value: Any) -> str:
    """A (masked) body as indented JSON, or the text it was stored as."""
    if isinstance(value, str):
        return value
    return msgspec.json.format(_pretty.encode(value), indent=2).decode()


def path_part(value: str) -> str:
    """An order ref in a URL path: its slashes kept (the routes take them), the rest quoted."""
    return quote(value, safe="/")


@functools.cache
def environment() -> jinja2.Environment:
    """The templates, HTML-escaped by default."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("waybill_auditor.tower", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        duration=duration, latency=latency, moment=moment, pretty=pretty_json, path=path_part
    )
    # Each action form drawn gets its own id: sending it twice is one action.
    env.globals["new_action_id"] = new_action_id
    return env


def page(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """``template`` rendered for the caller of ``request``: who they are, whether they may act,
    the CSRF token of their forms."""
    principal = request.get(PRINCIPAL)
    credential = credential_of(request)
    html = (
        environment()
        .get_template(template)
        .render(
            principal=principal,
            may_act=principal is not None and principal.may("operator"),
            csrf=csrf_token(credential.token) if credential is not None else "",
            path=request.path,
            **context,
        )
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        headers={
            # The pages hold personal data (masked) and act: never cached, never framed.
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; "
            "form-action 'self'; base-uri 'none'",
            "Referrer-Policy": "same-origin",
        },
    )
