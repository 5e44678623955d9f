"""Odoo 19's JSON-2 API: ``POST /json/2/<model>/<method>`` with a bearer API key.

The body holds the named arguments plus optional ``ids`` and ``context``;
success is HTTP 200 with the plain JSON result. Errors are a JSON body
``{"name", "message", "arguments", "context", "debug"}`` with 401 (bad key),
403 (AccessError / AccessDenied), 404 (unknown model or method, MissingError),
409 (lock conflict), 422 (UserError, ValidationError, wrong arguments, ids
on a model method) or 500. Also ``GET /web/version`` and the method
documentation ``GET /doc-bearer/<model>.json`` that odoo-client-lib reads to
turn positional arguments into named ones.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import msgspec
from aiohttp import web

from waybill_sandboxes.odoo.env import Env, Records
from waybill_sandboxes.odoo.exceptions import ErrorKind, InternalError, OdooError, WrongArguments
from waybill_sandboxes.odoo.methods import NotFound, call_json2, describe_methods
from waybill_sandboxes.odoo.orm import fields_get
from waybill_sandboxes.odoo.sandbox import SANDBOX_KEY, OdooSandbox
from waybill_sandboxes.odoo.users import Credential

logger = logging.getLogger(__name__)

STATUS_OF_KIND = {
    ErrorKind.USER: HTTPStatus.UNPROCESSABLE_ENTITY,
    ErrorKind.MISSING: HTTPStatus.NOT_FOUND,
    ErrorKind.ACCESS_DENIED: HTTPStatus.FORBIDDEN,
    ErrorKind.ACCESS_ERROR: HTTPStatus.FORBIDDEN,
    ErrorKind.SESSION_EXPIRED: HTTPStatus.FORBIDDEN,
    ErrorKind.CONCURRENCY: HTTPStatus.CONFLICT,
}
_BEARER = re.compile(r"^bearer\s+(.+)$", re.IGNORECASE)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=msgspec.json.encode(body),
        content_type="application/json",
        headers=headers,
    )


WERKZEUG_NAMES = {
    HTTPStatus.BAD_REQUEST: "BadRequest",
    HTTPStatus.UNAUTHORIZED: "Unauthorized",
    HTTPStatus.NOT_FOUND: "NotFound",
    HTTPStatus.UNPROCESSABLE_ENTITY: "UnprocessableEntity",
}


def http_error(
    status: HTTPStatus, description: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A werkzeug HTTP exception serialised the way JSON-2 sends it."""
    name = f"werkzeug.exceptions.{WERKZEUG_NAMES[status]}"
    body = {
        "name": name,
        "message": description,
        "arguments": [description, int(status)],
        "context": {},
        "debug": (
            f"Traceback (most recent call last):\n{name}: {int(status)} {status.phrase}: "
            f"{description}\n"
        ),
    }
    return _json(body, int(status), headers)


def odoo_error(error: OdooError) -> web.Response:
    """An Odoo exception serialised with the HTTP status JSON-2 gives its kind."""
    body = {
        "name": error.qualified_name,
        "message": error.message,
        "arguments": error.arguments,
        "context": error.context,
        "debug": error.traceback_text(),
    }
    return _json(body, int(STATUS_OF_KIND.get(error.kind, HTTPStatus.INTERNAL_SERVER_ERROR)))


def _bearer_user(request: web.Request, sandbox: OdooSandbox) -> Credential | web.Response:
    challenge = {"WWW-Authenticate": "Bearer"}
    match = _BEARER.match(request.headers.get("Authorization", ""))
    if match is None:
        return http_error(
            HTTPStatus.UNAUTHORIZED,
            'User not authenticated, use the "Authorization" header',
            challenge,
        )
    user = sandbox.credentials.by_api_key(match.group(1).strip())
    if user is None:
        return http_error(HTTPStatus.UNAUTHORIZED, "Invalid apikey", challenge)
    return user


async def call(request: web.Request) -> web.StreamResponse:
    """``POST /json/2/<model>/<method>``."""
    sandbox = request.app[SANDBOX_KEY]
    model, method = request.match_info["model"], request.match_info["method"]
    faulty = await sandbox.faults.intercept(f"{model}.{method}")
    if faulty is not None:
        return faulty
    user = _bearer_user(request, sandbox)
    if isinstance(user, web.Response):
        return user
    raw = await request.read()
    try:
        arguments = msgspec.json.decode(raw) if raw.strip() else {}
    except msgspec.DecodeError as bad:
        return http_error(HTTPStatus.BAD_REQUEST, f"could not parse the body as json: {bad}")
    if not isinstance(arguments, dict):
        return http_error(
            HTTPStatus.BAD_REQUEST, "could not parse the body, expecting a json object"
        )
    ids = arguments.pop("ids", [])
    context = arguments.pop("context", {})
    try:
        result = call_json2(sandbox.registry, user, model, method, ids, context, arguments)
    except NotFound as missing:
        return http_error(HTTPStatus.NOT_FOUND, str(missing))
    except WrongArguments as wrong:
        return http_error(HTTPStatus.UNPROCESSABLE_ENTITY, wrong.message)
    except OdooError as error:
        return odoo_error(error)
    except Exception as bug:
        logger.exception("Odoo sandbox failed on %s", request.path)
        return odoo_error(InternalError(f"builtins.{type(bug).__name__}", str(bug)))
    return _json(result)


async def version(request: web.Request) -> web.StreamResponse:
    """``GET /web/version``: ``{"version_info": [19, 0, 0, "final", 0, ""], "version": "19.0"}``."""
    sandbox = request.app[SANDBOX_KEY]
    faulty = await sandbox.faults.intercept("web.version")
    if faulty is not None:
        return faulty
    return _json({"version_info": sandbox.version.version_info, "version": sandbox.version.series})


async def model_documentation(request: web.Request) -> web.StreamResponse:
    """``GET /doc-bearer/<model>.json``: fields and method signatures of one model."""
    sandbox = request.app[SANDBOX_KEY]
    faulty = await sandbox.faults.intercept("web.doc")
    if faulty is not None:
        return faulty
    user = _bearer_user(request, sandbox)
    if isinstance(user, web.Response):
        return user
    model = request.match_info["model"]
    if model not in sandbox.registry.models:
        return http_error(HTTPStatus.NOT_FOUND, f"the model {model!r} does not exist")
    records = Records(Env(sandbox.registry, user.uid), model)
    return _json({
        "model": model,
        "name": sandbox.registry.spec(model).description,
        "doc": None,
        "fields": fields_get(records),
        "methods": describe_methods(model, sandbox.version.major),
    })  # fmt: skip


def json2_routes() -> list[web.RouteDef]:
    """The JSON-2 routes (Odoo 19)."""
    return [
        web.post("/json/2/{model}/{method}", call),
        web.get("/doc-bearer/{model}.json", model_documentation),
    ]


def version_routes() -> list[web.RouteDef]:
    """``GET /web/version``."""
    return [web.get("/web/version", version)]
