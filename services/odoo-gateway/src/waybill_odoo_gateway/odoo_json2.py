"""Odoo 19's JSON-2 API: ``POST /json/2/<model>/<method>`` with a bearer API key.

Arguments are named at the top level of the body, beside ``ids`` and
``context``; success is HTTP 200 with the plain result. Errors are an HTTP
status plus ``{"name", "message", ...}``: 401 bad key, 403 AccessError /
AccessDenied, 404 unknown model or method / MissingError, 409 lock conflict,
422 UserError / ValidationError / wrong arguments, 500 anything else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from waybill_odoo_gateway.odoo_client import OdooHttpClient, RawAnswer
from waybill_odoo_gateway.odoo_errors import (
    OdooLoginRejected,
    OdooRefused,
    OdooUnavailable,
    error_data,
    error_from_name,
)
from waybill_odoo_gateway.odoo_versions import OLDEST_SUPPORTED

__all__ = ["Json2Odoo"]

_REFUSED_STATUSES = frozenset({403, 404, 422})


class Json2Odoo(OdooHttpClient):
    """An Odoo 19+ client over ``/json/2``, authenticated by an API key."""

    protocol = "json2"

    def _check_protocol(self) -> None:
        if not self.dialect.has_json2:
            raise OdooUnavailable(
                f"Odoo {self.dialect.major} at {self.url} has no JSON-2 API (Odoo 19+): set "
                f"WAYBILL_ODOO_PROTOCOL=jsonrpc (Odoo {OLDEST_SUPPORTED}-19)"
            )

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"bearer {self.settings.odoo_api_key or ''}",
            "X-Odoo-Database": self.settings.odoo_db,
        }

    async def _request(
        self, model: str, method: str, body: dict[str, Any], timeout_s: float | None
    ) -> Any:
        what = f"{model}.{method}"
        path = f"/json/2/{quote(model, safe='.')}/{quote(method, safe='')}"
        answer = await self.post(
            path, body, what=what, headers=self._headers(), timeout_s=timeout_s
        )
        return self._result(answer, what)

    def _result(self, answer: RawAnswer, what: str) -> Any:
        if answer.status == 200:
            if not answer.is_json:
                raise OdooUnavailable(f"Odoo at {self.url} answered {what} with something not JSON")
            return answer.body
        odoo_error = isinstance(answer.body, dict) and "name" in answer.body
        if not odoo_error:
            if answer.status == 404:
                raise OdooUnavailable(
                    f"there is no Odoo JSON-2 API at {self.url}/json/2 (HTTP 404): check "
                    "WAYBILL_ODOO_URL and that Odoo is version 19 or newer"
                )
            raise self.unavailable(answer, what)
        name, message = error_data(answer.body)
        where = f"Odoo at {self.url} ({what})"
        if answer.status == 401:
            raise OdooLoginRejected(f"{where}: {message}")
        if answer.status == 409:
            raise OdooUnavailable(f"{where}: lock conflict ({message}); retrying later")
        mapped = error_from_name(name, message, where)
        if answer.status in _REFUSED_STATUSES and not isinstance(
            mapped, OdooRefused | OdooLoginRejected
        ):
            # An unknown model or method, or arguments Odoo will never accept.
            raise OdooRefused(name, message)
        raise mapped

    async def _login(self) -> int:
        context = await self._request("res.users", "context_get", {}, None)
        uid = context.get("uid") if isinstance(context, dict) else None
        if not isinstance(uid, int) or isinstance(uid, bool):
            raise OdooUnavailable(
                f"Odoo at {self.url} did not say who the API key belongs to (res.users.context_get)"
            )
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
        body = dict(arguments)
        if ids is not None:
            body["ids"] = ids
        if context:
            body["context"] = context
        try:
            return await self._request(model, method, body, timeout_s)
        except OdooLoginRejected:
            raise self.forget_login() from None
