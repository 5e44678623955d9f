"""The RPC services behind ``/jsonrpc`` and ``/xmlrpc``: ``common``, ``object`` and ``db``.

JSON-RPC and XML-RPC only differ in how they encode calls and errors; both
route ``(service, method, params)`` here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from waybill_sandboxes.odoo.exceptions import InternalError, WrongArguments
from waybill_sandboxes.odoo.methods import call_kw

if TYPE_CHECKING:
    from waybill_sandboxes.odoo.sandbox import OdooSandbox


def operation_name(service: Any, method: Any, params: Any) -> str:
    """The fault-injection name of a call: ``stock.picking.write`` for model calls,
    ``common.login`` for the rest."""
    if (
        service == "object"
        and method in ("execute", "execute_kw")
        and isinstance(params, list)
        and len(params) >= 5
    ):
        return f"{params[3]}.{params[4]}"
    return f"{service}.{method}"


def _check_db(sandbox: OdooSandbox, db: Any) -> None:
    if db != sandbox.db:
        # What a client sees when it names a database the server does not have.
        raise InternalError(
            "psycopg2.OperationalError",
            f'connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: '
            f'FATAL:  database "{db}" does not exist',
        )


def _common(sandbox: OdooSandbox) -> dict[str, Callable[..., Any]]:
    def version() -> dict[str, Any]:
        return sandbox.version.common_version()

    def login(db: str, login: str, password: str) -> int | bool:
        _check_db(sandbox, db)
        return sandbox.credentials.login(login, password) or False

    def authenticate(db: str, login: str, password: str, user_agent_env: Any) -> int | bool:
        # Like login, real Odoo answers False (not an error) to wrong credentials here.
        _check_db(sandbox, db)
        return sandbox.credentials.login(login, password) or False

    return {"version": version, "login": login, "authenticate": authenticate}


def _object(sandbox: OdooSandbox) -> dict[str, Callable[..., Any]]:
    def execute(db: str, uid: Any, password: str, model: str, method: str, *args: Any) -> Any:
        return execute_kw(db, uid, password, model, method, list(args), {})

    def execute_kw(
        db: str,
        uid: Any,
        password: str,
        model: str,
        method: str,
        args: Any = None,
        kwargs: Any = None,
    ) -> Any:
        _check_db(sandbox, db)
        # Odoo converts the uid with int() and checks the password on every call.
        try:
            user_id = int(uid)
        except (TypeError, ValueError) as bad:
            raise InternalError("builtins.ValueError", f"invalid uid {uid!r}") from bad
        user = sandbox.credentials.check(user_id, password)
        return call_kw(sandbox.registry, user, model, method, args or [], kwargs or {})

    return {"execute": execute, "execute_kw": execute_kw}


def _db(sandbox: OdooSandbox) -> dict[str, Callable[..., Any]]:
    def list_databases(document: bool = False) -> list[str]:
        return [sandbox.db]

    def server_version() -> str:
        return sandbox.version.series

    return {"list": list_databases, "server_version": server_version}


def dispatch(sandbox: OdooSandbox, service: Any, method: Any, params: Any) -> Any:
    """Run ``service.method(*params)``; raises the Odoo-shaped error on failure."""
    services = {"common": _common, "object": _object, "db": _db}
    if service not in services:
        raise InternalError("builtins.KeyError", repr(service))
    functions = services[service](sandbox)
    function = functions.get(method) if isinstance(method, str) else None
    if function is None:
        raise InternalError("builtins.NameError", f"Method not available {method}")
    if not isinstance(params, list | tuple):
        raise WrongArguments(f"{service}.{method}(): the arguments must be a list")
    try:
        inspect.signature(function).bind(*params)
    except TypeError as wrong:
        raise WrongArguments(f"{service}.{method}() {wrong}") from wrong
    return function(*params)
