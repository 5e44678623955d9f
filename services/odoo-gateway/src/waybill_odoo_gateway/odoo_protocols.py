"""Choosing the protocol per Odoo version: ``WAYBILL_ODOO_PROTOCOL=auto``.

Odoo 19 deprecates JSON-RPC (removed in 20) in favour of JSON-2, which takes
an API key. ``auto`` asks Odoo its version (unless ``WAYBILL_ODOO_VERSION``
says it) and then speaks JSON-2 on 19+ when an API key is set, JSON-RPC
otherwise (with a warning on 19, from the JSON-RPC client).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.odoo_client import OdooHttpClient
from waybill_odoo_gateway.odoo_errors import OdooUnavailable
from waybill_odoo_gateway.odoo_json2 import Json2Odoo
from waybill_odoo_gateway.odoo_jsonrpc import JsonRpcOdoo
from waybill_odoo_gateway.odoo_versions import OdooDialect

__all__ = ["AutoProtocolOdoo", "client_for_version", "odoo_client_for"]


def client_for_version(settings: OdooGatewaySettings, major: int) -> OdooHttpClient:
    """The client ``auto`` picks for Odoo ``major``."""
    protocol = "json2" if major >= 19 and settings.odoo_api_key else "jsonrpc"
    chosen = msgspec.structs.replace(settings, odoo_protocol=protocol, odoo_version=major)
    return Json2Odoo(chosen) if protocol == "json2" else JsonRpcOdoo(chosen)


def odoo_client_for(settings: OdooGatewaySettings) -> OdooHttpClient | AutoProtocolOdoo:
    """The client for the configured protocol."""
    if settings.odoo_protocol == "json2":
        return Json2Odoo(settings)
    if settings.odoo_protocol == "jsonrpc":
        return JsonRpcOdoo(settings)
    if settings.odoo_version is not None:
        return client_for_version(settings, settings.odoo_version)
    return AutoProtocolOdoo(settings)


class AutoProtocolOdoo:
    """An Odoo client that learns the version first, then speaks its protocol.

    Until connected it answers through a JSON-RPC client used only to ask the
    version (``/web/webclient/version_info`` is the same for both protocols).
    """

    def __init__(self, settings: OdooGatewaySettings) -> None:
        self.settings = settings
        self._asking = JsonRpcOdoo(settings)
        self._chosen: OdooHttpClient | None = None
        self._choosing = asyncio.Lock()  # the login keeper and the poll connect at once

    @property
    def _current(self) -> OdooHttpClient:
        return self._chosen or self._asking

    @property
    def protocol(self) -> str:
        return self._chosen.protocol if self._chosen is not None else "auto"

    @property
    def dialect(self) -> OdooDialect:
        if self._chosen is None:
            raise OdooUnavailable(
                f"the version of Odoo at {self.settings.odoo_url} is not known yet"
            )
        return self._chosen.dialect

    @property
    def uid(self) -> int | None:
        return self._chosen.uid if self._chosen is not None else None

    @property
    def ready(self) -> bool:
        return self._chosen is not None and self._chosen.ready

    @property
    def status(self) -> str:
        return self._current.status

    @property
    def public_status(self) -> str:
        return self._current.public_status

    @property
    def in_flight(self) -> int:
        return self._current.in_flight

    @property
    def in_flight_cap(self) -> int:
        return self._current.in_flight_cap

    async def connect(self) -> None:
        if self._chosen is None:
            async with self._choosing:
                if self._chosen is None:
                    major = await self._asking.detect_major()
                    await self._asking.close()
                    self._chosen = client_for_version(self.settings, major)
        await self._chosen.connect()

    async def call(
        self,
        model: str,
        method: str,
        ids: Sequence[int] | None = None,
        *,
        context: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        **arguments: Any,
    ) -> Any:
        chosen = self._chosen
        if chosen is None:
            await self.connect()
            chosen = self._chosen
            assert chosen is not None  # connect chose one
        # The chosen client logs in again itself when it has to.
        return await chosen.call(
            model, method, ids, context=context, timeout_s=timeout_s, **arguments
        )

    async def close(self) -> None:
        await self._asking.close()
        if self._chosen is not None:
            await self._chosen.close()
