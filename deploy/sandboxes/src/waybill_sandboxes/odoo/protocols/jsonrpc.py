"""JSON-RPC as Odoo speaks it: ``/jsonrpc`` and the envelope the ``/web`` JSON routes share.

Success: ``{"jsonrpc": "2.0", "id": N, "result": ...}``, without ``result``
when the method returned None. Errors travel with HTTP 200 as
``{"error": {"code": 200 (0 from 19), "message": "Odoo Server Error",
"data": {"name", "message", "arguments", "context", "debug"}}}``; an expired
session is code 100, "Odoo Session Expired". A body that is not JSON gets a
plain HTTP 400.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from waybill_sandboxes.odoo.exceptions import ErrorKind, InternalError, OdooError
from waybill_sandboxes.odoo.protocols.services import dispatch, operation_name
from waybill_sandboxes.odoo.sandbox import SANDBOX_KEY, OdooSandbox
from waybill_sandboxes.odoo.versions import OdooVersion

logger = logging.getLogger(__name__)

SESSION_COOKIE = "session_id"


@dataclass(frozen=True)
class Reply:
    """A JSON route's result, plus a web session to start (``/web/session/authenticate``)."""

    result: Any
    session_id: str | None = None
    end_session: bool = False


# (request, params) -> the result (or a Reply); raises OdooError.
JsonCall = Callable[[web.Request, OdooSandbox, dict[str, Any]], Any]
# params -> the fault-injection operation name
OperationOf = Callable[[dict[str, Any]], str]


def error_object(version: OdooVersion, error: OdooError) -> dict[str, Any]:
    """The ``error`` member of a JSON-RPC response for this Odoo version."""
    code, message = version.jsonrpc_error_code, "Odoo Server Error"
    if error.kind is ErrorKind.SESSION_EXPIRED:
        code, message = 100, "Odoo Session Expired"
    return {
        "code": code,
        "message": message,
        "data": {
            "name": error.qualified_name,
            "message": error.message,
            "arguments": error.arguments,
            "context": error.context,
            "debug": error.traceback_text(),
        },
    }


def _bad_request(reason: str) -> web.Response:
    return web.Response(status=400, text=f"400 Bad Request: {reason}")


async def answer_json_call(
    request: web.Request, operation_of: OperationOf, call: JsonCall
) -> web.StreamResponse:
    """Decode the JSON-RPC envelope, apply faults, run ``call`` and encode its answer."""
    sandbox = request.app[SANDBOX_KEY]
    try:
        envelope = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        return _bad_request("the body is not valid JSON")
    if not isinstance(envelope, dict):
        return _bad_request("the body must be a JSON-RPC object")
    params = envelope.get("params", {})
    if not isinstance(params, dict):
        return _bad_request("params must be a JSON object")
    faulty = await sandbox.faults.intercept(operation_of(params))
    if faulty is not None:
        return faulty
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": envelope.get("id")}
    reply = Reply(None)
    try:
        outcome = call(request, sandbox, params)
        reply = outcome if isinstance(outcome, Reply) else Reply(outcome)
        if reply.result is not None:
            body["result"] = reply.result
    except OdooError as error:
        body["error"] = error_object(sandbox.version, error)
    except Exception as bug:  # answer like Odoo would, but leave a trace of the sandbox bug
        logger.exception("Odoo sandbox failed on %s", request.path)
        body["error"] = error_object(
            sandbox.version, InternalError(f"builtins.{type(bug).__name__}", str(bug))
        )
    response = web.Response(body=msgspec.json.encode(body), content_type="application/json")
    if reply.session_id:
        response.set_cookie(SESSION_COOKIE, reply.session_id, httponly=True, samesite="Lax")
    if reply.end_session:
        response.del_cookie(SESSION_COOKIE)
    return response


def _service_operation(params: dict[str, Any]) -> str:
    return operation_name(params.get("service"), params.get("method"), params.get("args"))


def _service_call(request: web.Request, sandbox: OdooSandbox, params: dict[str, Any]) -> Any:
    return dispatch(sandbox, params.get("service"), params.get("method"), params.get("args", []))


async def jsonrpc(request: web.Request) -> web.StreamResponse:
    """``POST /jsonrpc``: the ``common``, ``object`` and ``db`` services."""
    sandbox = request.app[SANDBOX_KEY]
    if sandbox.version.jsonrpc_deprecated and not sandbox.jsonrpc_deprecation_logged:
        # As Odoo 19 does: the call is answered, the server log says it is deprecated.
        sandbox.jsonrpc_deprecation_logged = True
        logger.warning(
            "/jsonrpc is deprecated in Odoo %s and will be removed in Odoo 20: use /json/2",
            sandbox.version.series,
        )
    return await answer_json_call(request, _service_operation, _service_call)


def jsonrpc_routes() -> list[web.RouteDef]:
    """The ``/jsonrpc`` route."""
    return [web.post("/jsonrpc", jsonrpc)]
