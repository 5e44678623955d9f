"""XML-RPC as Odoo speaks it: ``/xmlrpc/2/<service>`` and the legacy ``/xmlrpc/<service>``.

Faults on ``/xmlrpc/2``: code 1 for any other error (the traceback as text),
2 UserError / ValidationError / MissingError / RedirectWarning,
3 AccessDenied, 4 AccessError. The legacy endpoint uses string fault codes
(``"warning -- UserError\\n\\n<message>"``, ``"AccessDenied"``). None cannot
be marshalled, so a method returning None faults, as in Odoo.
"""

from __future__ import annotations

import base64
import logging
import xmlrpc.client
from datetime import datetime
from typing import Any

from aiohttp import web

from waybill_sandboxes.odoo.exceptions import ErrorKind, InternalError, OdooError
from waybill_sandboxes.odoo.protocols.services import dispatch, operation_name
from waybill_sandboxes.odoo.sandbox import SANDBOX_KEY

logger = logging.getLogger(__name__)

FAULT_CODES = {
    ErrorKind.USER: 2,
    ErrorKind.MISSING: 2,
    ErrorKind.ACCESS_DENIED: 3,
    ErrorKind.ACCESS_ERROR: 4,
}
LEGACY_WARNINGS = {
    "RedirectWarning": "Warning",
    "MissingError": "MissingError",
    "AccessError": "AccessError",
}


def fault_for(error: OdooError, *, legacy: bool) -> xmlrpc.client.Fault:
    """The fault Odoo sends for this error on the numeric or the legacy endpoint."""
    if not legacy:
        code = FAULT_CODES.get(error.kind)
        if code is None:
            return xmlrpc.client.Fault(1, error.traceback_text())
        return xmlrpc.client.Fault(code, error.message)
    if error.kind is ErrorKind.ACCESS_DENIED:
        return xmlrpc.client.Fault("AccessDenied", error.message)  # type: ignore[arg-type]
    if error.kind in (ErrorKind.USER, ErrorKind.MISSING, ErrorKind.ACCESS_ERROR):
        label = LEGACY_WARNINGS.get(error.short_name, "UserError")
        return xmlrpc.client.Fault(f"warning -- {label}\n\n{error.message}", "")  # type: ignore[arg-type]
    return xmlrpc.client.Fault(error.message, error.traceback_text())  # type: ignore[arg-type]


def _plain(value: Any) -> Any:
    # XML-RPC dateTime and base64 values arrive as objects; Odoo's ORM wants strings.
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _xml(body: str) -> web.Response:
    return web.Response(body=body.encode(), content_type="text/xml", charset="utf-8")


async def xmlrpc_endpoint(request: web.Request) -> web.StreamResponse:
    """``POST /xmlrpc/2/<service>`` and ``POST /xmlrpc/<service>``."""
    sandbox = request.app[SANDBOX_KEY]
    legacy = not request.path.startswith("/xmlrpc/2/")
    service = request.match_info["service"]
    try:
        params, method = xmlrpc.client.loads(await request.read(), use_builtin_types=True)
    except Exception:
        return web.Response(status=400, text="400 Bad Request: the body is not an XML-RPC call")
    arguments = _plain(list(params))
    faulty = await sandbox.faults.intercept(operation_name(service, method, arguments))
    if faulty is not None:
        return faulty
    try:
        result = dispatch(sandbox, service, method, arguments)
        return _xml(xmlrpc.client.dumps((result,), methodresponse=True, allow_none=False))
    except OdooError as error:
        return _xml(xmlrpc.client.dumps(fault_for(error, legacy=legacy)))
    except (TypeError, OverflowError) as unmarshallable:
        # e.g. "cannot marshal None unless allow_none is enabled", as real Odoo answers
        failure = InternalError(f"builtins.{type(unmarshallable).__name__}", str(unmarshallable))
        return _xml(xmlrpc.client.dumps(fault_for(failure, legacy=legacy)))
    except Exception as bug:
        logger.exception("Odoo sandbox failed on %s", request.path)
        failure = InternalError(f"builtins.{type(bug).__name__}", str(bug))
        return _xml(xmlrpc.client.dumps(fault_for(failure, legacy=legacy)))


def xmlrpc_routes() -> list[web.RouteDef]:
    """Both XML-RPC endpoints."""
    return [
        web.post("/xmlrpc/2/{service}", xmlrpc_endpoint),
        web.post("/xmlrpc/{service}", xmlrpc_endpoint),
    ]
