"""Request paths as they may be written to a log: secrets in the path replaced by ``***``.

A partner that cannot sign (Odoo) authenticates with a secret in the URL path
(``/webhooks/odoo/{token}``). Such a path must never reach a log line or a
span: every route parameter whose name says it is a secret (``token``,
``secret``, ``key`` or ``*_token``...) is redacted, also when the request
did not match the route exactly (a trailing slash, an extra segment).
"""

from __future__ import annotations

import re

from aiohttp import web

__all__ = ["REDACTED", "is_secret_parameter", "loggable_path", "redacted_path"]

REDACTED = "***"

_SECRET_NAME = re.compile(r"(?:^|_)(?:token|secret|key|password)$", re.IGNORECASE)
# {name} or {name:regex} in an aiohttp route template.
_PARAMETER = re.compile(r"\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::[^{}]*)?\}")


def is_secret_parameter(name: str) -> bool:
    """Whether a route parameter of this name holds a secret."""
    return bool(_SECRET_NAME.search(name))


def _secret_prefix(template: str) -> re.Pattern[str] | None:
    """A pattern matching ``template``'s path up to its last secret parameter, or None."""
    pattern, secret = "^", False
    position = 0
    for found in _PARAMETER.finditer(template):
        pattern += re.escape(template[position : found.start()])
        if is_secret_parameter(found.group("name")):
            pattern += f"(?P<secret_{found.start()}>[^/]+)"
            secret = True
        else:
            pattern += "[^/]+"
        position = found.end()
    return re.compile(pattern) if secret else None


def _redact(path: str, pattern: re.Pattern[str]) -> str | None:
    found = pattern.match(path)
    if found is None:
        return None
    redacted, position = "", 0
    for name, value in found.groupdict().items():
        if name.startswith("secret_") and value is not None:
            start, end = found.span(name)
            redacted += path[position:start] + REDACTED
            position = end
    return redacted + path[position:]


def redacted_path(path: str, template: str) -> str | None:
    """``path`` with the secret parameters of the route ``template`` redacted, or None when
    it does not follow the template (the Odoo doctor shows webhook URLs this way)."""
    pattern = _secret_prefix(template)
    return None if pattern is None else _redact(path, pattern)


def loggable_path(request: web.Request) -> str:
    """``request.path`` with every secret path parameter of the app's routes redacted."""
    path = request.path
    for resource in request.app.router.resources():
        template = resource.canonical
        if "{" not in template:
            continue
        pattern = _secret_prefix(template)
        if pattern is None:
            continue
        redacted = _redact(path, pattern)
        if redacted is not None:
            return redacted
    return path
