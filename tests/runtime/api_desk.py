"""A small service with an API of each kind, for the API access tests.

``GET /holds`` reads (viewer), ``POST /holds`` acts (operator) and answers with the
caller's subject, ``DELETE /holds`` is for admins, ``POST /webhooks/desk`` is a
partner's webhook (no token; its handler finds no caller), plus the probes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from waybill_runtime.declaration import Route
from waybill_runtime.http import principal_of
from waybill_runtime.local.ports import free_port
from waybill_runtime.service import Runtime, Service
from waybill_runtime.settings import RuntimeSettings
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.tokens import api_keys

ROUTES = (
    Route("GET", "/holds", "operator", "orders on hold", role="viewer"),
    Route("POST", "/holds", "operator", "hold an order", role="operator"),
    Route("DELETE", "/holds", "operator", "release every hold", role="admin"),
    Route("POST", "/webhooks/desk", "partner", "the desk's signed webhooks"),
)


def build_desk() -> Service[RuntimeSettings]:
    service = Service("desk", description="holds orders for operators", routes=ROUTES)

    @service.routes
    def routes(runtime: Runtime[RuntimeSettings]) -> list[web.RouteDef]:
        holds: list[dict[str, str]] = []

        async def list_holds(request: web.Request) -> web.Response:
            return web.json_response({"holds": holds, "caller": principal_of(request).subject})

        async def hold(request: web.Request) -> web.Response:
            # The operator's identity travels with what the action causes.
            caller = principal_of(request)
            holds.append({"order_ref": "WH/OUT/1", "held_by": caller.subject})
            return web.json_response({"held_by": caller.subject, "role": caller.role})

        async def release_all(request: web.Request) -> web.Response:
            holds.clear()
            return web.json_response({"released_by": principal_of(request).subject})

        async def webhook(request: web.Request) -> web.Response:
            try:
                caller: str | None = principal_of(request).subject
            except LookupError:
                caller = None
            return web.json_response({"caller": caller})

        return [
            web.get("/holds", list_holds),
            web.post("/holds", hold),
            web.delete("/holds", release_all),
            web.post("/webhooks/desk", webhook),
        ]

    return service


@contextlib.asynccontextmanager
async def running_desk(
    nats_url: str, prefix: str, folder: Path | None = None, **settings: Any
) -> AsyncIterator[aiohttp.ClientSession]:
    """The desk on a free port, trusting the local keys in ``folder`` unless ``settings``
    name a key source of their own; an HTTP session on it (no token)."""
    port = free_port()
    sources = ("api_jwks_file", "api_jwks_url", "api_hs256_secret_file")
    if folder is not None and not any(name in settings for name in sources):
        settings = {**api_keys(folder).settings(), **settings}
    async with (
        running_service(
            build_desk(), nats_url=nats_url, subject_prefix=prefix, http_port=port, **settings
        ),
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http,
    ):
        yield http
