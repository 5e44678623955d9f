"""The web client's JSON routes: version info, session login, ``call_kw``.

``/web/session/authenticate`` starts a session (``session_id`` cookie) and
``/web/dataset/call_kw`` calls model methods as that session's user; without
a live session it answers "Odoo Session Expired" (code 100).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from waybill_sandboxes.odoo.exceptions import AccessDenied, AccessError, SessionExpired
from waybill_sandboxes.odoo.methods import call_kw
from waybill_sandboxes.odoo.protocols.jsonrpc import SESSION_COOKIE, Reply, answer_json_call
from waybill_sandboxes.odoo.sandbox import OdooSandbox


def _version_info(request: web.Request, sandbox: OdooSandbox, params: dict[str, Any]) -> Any:
    return sandbox.version.common_version()


def session_info(sandbox: OdooSandbox, uid: int) -> dict[str, Any]:
    """What Odoo's ``ir.http.session_info`` tells the web client about the user."""
    registry = sandbox.registry
    partner = registry.value("res.users", uid, "partner_id")
    return {
        "uid": uid,
        "is_system": uid == 2,
        "is_admin": uid == 2,
        "db": sandbox.db,
        "name": registry.value("res.users", uid, "name"),
        "username": registry.value("res.users", uid, "login"),
        "partner_id": partner,
        "partner_display_name": registry.display_name("res.partner", partner),
        "user_context": {
            "lang": registry.value("res.users", uid, "lang"),
            "tz": registry.value("res.users", uid, "tz"),
            "uid": uid,
        },
        "server_version": sandbox.version.series,
        "server_version_info": sandbox.version.version_info,
    }


def _authenticate(request: web.Request, sandbox: OdooSandbox, params: dict[str, Any]) -> Reply:
    if params.get("db") != sandbox.db:
        raise AccessError("Database not found.")
    uid = sandbox.credentials.login(params.get("login"), params.get("password"))
    if uid is None:
        raise AccessDenied()
    return Reply(session_info(sandbox, uid), session_id=sandbox.credentials.open_session(uid))


def _session_user(request: web.Request, sandbox: OdooSandbox) -> int:
    uid = sandbox.credentials.session_user(request.cookies.get(SESSION_COOKIE))
    if uid is None:
        raise SessionExpired()
    return uid


def _get_session_info(request: web.Request, sandbox: OdooSandbox, params: dict[str, Any]) -> Any:
    return session_info(sandbox, _session_user(request, sandbox))


def _destroy(request: web.Request, sandbox: OdooSandbox, params: dict[str, Any]) -> Reply:
    sandbox.credentials.close_session(request.cookies.get(SESSION_COOKIE))
    return Reply(None, end_session=True)


def _call_kw(request: web.Request, sandbox: OdooSandbox, params: dict[str, Any]) -> Any:
    user = sandbox.credentials.of(_session_user(request, sandbox))
    return call_kw(
        sandbox.registry,
        user,
        params.get("model", ""),
        params.get("method", ""),
        params.get("args", []),
        params.get("kwargs", {}),
    )


def _named(name: str) -> Any:
    return lambda params: name


def _model_operation(params: dict[str, Any]) -> str:
    return f"{params.get('model')}.{params.get('method')}"


async def version_info(request: web.Request) -> web.StreamResponse:
    """``POST /web/webclient/version_info``."""
    return await answer_json_call(request, _named("web.version_info"), _version_info)


async def authenticate(request: web.Request) -> web.StreamResponse:
    """``POST /web/session/authenticate``."""
    return await answer_json_call(request, _named("web.session.authenticate"), _authenticate)


async def get_session_info(request: web.Request) -> web.StreamResponse:
    """``POST /web/session/get_session_info``."""
    return await answer_json_call(
        request, _named("web.session.get_session_info"), _get_session_info
    )


async def destroy(request: web.Request) -> web.StreamResponse:
    """``POST /web/session/destroy``."""
    return await answer_json_call(request, _named("web.session.destroy"), _destroy)


async def dataset_call_kw(request: web.Request) -> web.StreamResponse:
    """``POST /web/dataset/call_kw[/<anything>]``."""
    return await answer_json_call(request, _model_operation, _call_kw)


def web_routes() -> list[web.RouteDef]:
    """The web client's JSON routes."""
    return [
        web.post("/web/webclient/version_info", version_info),
        web.post("/web/session/authenticate", authenticate),
        web.post("/web/session/get_session_info", get_session_info),
        web.post("/web/session/destroy", destroy),
        web.post("/web/dataset/call_kw", dataset_call_kw),
        web.post("/web/dataset/call_kw/{path:.*}", dataset_call_kw),
    ]
