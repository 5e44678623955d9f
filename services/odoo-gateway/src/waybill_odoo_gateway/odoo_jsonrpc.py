"""Odoo's JSON-RPC API (``POST /jsonrpc``), spoken by Odoo 16 to 19.

``common.login(db, login, password)`` gives the user id (``false`` for wrong
credentials, never an error); every model call is
``object.execute_kw(db, uid, password, model, method, args, kwargs)``, which
checks the password again. Errors come back with HTTP 200 and an ``error``
object whose ``data.name`` is the Odoo exception's name.
"""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp

from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.odoo_client import OdooHttpClient, RawAnswer, log
from waybill_odoo_gateway.odoo_errors import (
    OdooLoginRejected,
    OdooServerError,
    OdooUnavailable,
    error_data,
    error_from_name,
)

__all__ = ["JsonRpcOdoo"]

_SESSION_EXPIRED = 100


class JsonRpcOdoo(OdooHttpClient):
    """An Odoo client over ``/jsonrpc``: login + password (or API key) on every call."""

    protocol = "jsonrpc"

    def __init__(
        self, settings: OdooGatewaySettings, *, session: aiohttp.ClientSession | None = None
    ) -> None:
        super().__init__(settings, session=session)
        self._ids = itertools.count(1)

    def _check_protocol(self) -> None:
        super()._check_protocol()
        if self.dialect.jsonrpc_deprecated:
            log.warning(
                "JSON-RPC is deprecated in Odoo %s and removed in Odoo 20: create an API key "
                "for %r, set WAYBILL_ODOO_API_KEY and WAYBILL_ODOO_PROTOCOL=json2 (or auto)",
                self.dialect.series,
                self.settings.odoo_login,
            )

    async def _rpc(
        self, service: str, method: str, args: list[Any], *, what: str, timeout_s: float | None
    ) -> Any:
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": args},
            "id": next(self._ids),
        }
        answer = await self.post("/jsonrpc", payload, what=what, timeout_s=timeout_s)
        return self._result(answer, what)

    def _result(self, answer: RawAnswer, what: str) -> Any:
        if answer.status != 200:
            if answer.status == 404:
                raise OdooUnavailable(
                    f"there is no Odoo JSON-RPC API at {self.url}/jsonrpc (HTTP 404): "
                    "check WAYBILL_ODOO_URL"
                )
            if answer.status == 400:
                raise OdooServerError("BadRequest", f"Odoo could not read the request for {what}")
            raise self.unavailable(answer, what)
        if not isinstance(answer.body, dict):
            raise OdooUnavailable(f"Odoo at {self.url} answered {what} with something not JSON")
        error = answer.body.get("error")
        if error is None:
            # A method returning None comes back without "result".
            return answer.body.get("result")
        code = error.get("code") if isinstance(error, dict) else None
        if code == _SESSION_EXPIRED:
            raise OdooUnavailable(f"Odoo session expired during {what}")
        name, message = error_data(error.get("data") if isinstance(error, dict) else error)
        raise error_from_name(name, message, f"Odoo at {self.url} ({what})")

    async def _login(self) -> int:
        settings = self.settings
        try:
            uid = await self._rpc(
                "common",
                "login",
                [settings.odoo_db, settings.odoo_login, settings.odoo_secret],
                what="common.login",
                timeout_s=None,
            )
        except OdooLoginRejected:
            raise
        except (OdooServerError, OdooUnavailable) as failed:
            if failed.odoo_name is None:
                raise  # the network, not Odoo's answer
            # A wrong database name, for one, is a server error at login.
            raise OdooUnavailable(
                f"Odoo at {self.url} could not log in to db {settings.odoo_db!r} ({failed}): "
                "check WAYBILL_ODOO_DB"
            ) from failed
        if isinstance(uid, bool) or not isinstance(uid, int):
            raise OdooLoginRejected("common.login returned false")
        return uid

    async def _execute(
        self,
        model: str,
        method: str,
        ids: list[int] | None,
        context: dict[str, Any],
        arguments: dict[str, Any],
        timeout_s: float | None,
    ) -> Any:
        uid = self.uid
        if uid is None:
            raise self.login_rejected()
        settings = self.settings
        kwargs = {**arguments, "context": context} if context else dict(arguments)
        positional: list[Any] = [] if ids is None else [ids]
        if method == "create" and ids is None and "vals_list" in kwargs:
            # odoo/api.py _call_kw_model_create (16.0-18.0) reads the values as args[0]
            # whatever was passed: given only as a keyword, create fails with an IndexError.
            positional = [kwargs.pop("vals_list")]
        args = [
            settings.odoo_db,
            uid,
            settings.odoo_secret,
            model,
            method,
            positional,
            kwargs,
        ]
        try:
            return await self._rpc(
                "object", "execute_kw", args, what=f"{model}.{method}", timeout_s=timeout_s
            )
        except OdooLoginRejected:
            raise self.forget_login() from None
