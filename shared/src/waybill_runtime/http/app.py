"""The HTTP face every service has: ``/healthz``, ``/readyz``, ``/metrics``, plus its own routes.

Built by a factory (no module singletons): shared state sits on the app under
typed ``web.AppKey``s, so tests build as many apps as they like. The probes
answer anyone, so they tell nothing a stranger could use: a readiness check's
detail is a short public text (where and as whom a service connects belongs in
its log), and a check that fails with an exception shows only the exception's
type.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from waybill_runtime.http.auth import ApiAccess
from waybill_runtime.http.openapi import OPENAPI_PATH, openapi_document
from waybill_runtime.http.problem import ProblemError, answer_error
from waybill_runtime.http.tracing import UNTRACED_PATHS, answer_in_span
from waybill_runtime.logs import mask_text
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.telemetry import tracing_active

__all__ = [
    "MAX_BODY_KEY",
    "METRICS_KEY",
    "READINESS_KEY",
    "SERVICE_KEY",
    "CheckResult",
    "ProbeCheck",
    "ReadinessCheck",
    "create_http_app",
]

logger = logging.getLogger(__name__)

# A readiness check that takes longer than this is as good as failed: the
# kubelet's probe would time out anyway.
READINESS_TIMEOUT_S = 2.0


class CheckResult(msgspec.Struct, frozen=True):
    """The answer of one readiness check."""

    ok: bool
    detail: str = ""


@runtime_checkable
class ReadinessCheck(Protocol):
    """Something the service needs before it can take work (NATS, consumers, a partner)."""

    @property
    def name(self) -> str:
        """A short label shown in /readyz, e.g. ``nats``."""
        ...

    async def check(self) -> CheckResult:
        """Whether the dependency is usable now."""
        ...


class ProbeCheck:
    """A readiness check from a coroutine function returning a bool or a CheckResult."""

    def __init__(self, name: str, probe: Callable[[], Awaitable[bool | CheckResult]]) -> None:
        self.name = name
        self._probe = probe

    async def check(self) -> CheckResult:
        answer = await self._probe()
        return answer if isinstance(answer, CheckResult) else CheckResult(bool(answer))


SERVICE_KEY = web.AppKey("waybill_service", str)
METRICS_KEY = web.AppKey("waybill_metrics", MetricsRegistry)
MAX_BODY_KEY = web.AppKey("waybill_max_body_bytes", int)
READINESS_KEY: web.AppKey[tuple[ReadinessCheck, ...]] = web.AppKey("waybill_readiness")
_READINESS_TIMEOUT_KEY = web.AppKey("waybill_readiness_timeout_s", float)
_OPENAPI_KEY = web.AppKey("waybill_openapi", bytes)


def json_answer(payload: Any, status: int = 200) -> web.Response:
    """A JSON answer encoded by msgspec (aiohttp's ``json_response`` goes through the
    standard library's ``json``, about twice the CPU)."""
    return web.Response(
        body=msgspec.json.encode(payload), status=status, content_type="application/json"
    )


async def _healthz(request: web.Request) -> web.Response:
    # Answering at all proves the event loop runs; that is what liveness means.
    return json_answer({"status": "ok", "service": request.app[SERVICE_KEY]})


async def _run_check(check: ReadinessCheck, timeout_s: float) -> dict[str, Any]:
    name = str(getattr(check, "name", type(check).__name__))
    try:
        async with asyncio.timeout(timeout_s):
            result = await check.check()
    except TimeoutError:
        result = CheckResult(False, f"no answer within {timeout_s:g} s")
    except Exception as error:
        # The message may name hosts, databases or users: it goes to the log only.
        logger.warning("readiness check %s failed: %s: %s", name, type(error).__name__, error)
        result = CheckResult(False, f"check failed: {type(error).__name__}")
    if not isinstance(result, CheckResult):
        result = CheckResult(False, f"check returned {type(result).__name__}, not a CheckResult")
    return {"name": name, "ok": result.ok, "detail": mask_text(result.detail)}


async def _readyz(request: web.Request) -> web.Response:
    timeout_s = request.app[_READINESS_TIMEOUT_KEY]
    results = await asyncio.gather(
        *(_run_check(check, timeout_s) for check in request.app[READINESS_KEY])
    )
    ready = all(result["ok"] for result in results)
    return json_answer(
        {
            "status": "ready" if ready else "not ready",
            "service": request.app[SERVICE_KEY],
            "checks": results,
        },
        status=200 if ready else 503,
    )


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS_KEY].render()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_OPENAPI_KEY], content_type="application/json")


class _FrontDoor:
    """The one middleware of a service's app: every request passes it once.

    Outermost the SERVER span (when tracing is on: it sees the answer the
    caller gets), then the problem answers to every error, the caller's access
    (before anything reads the body), and the body limit. One layer instead of
    four middlewares: aiohttp calls each through a wrapper of its own, and each
    looked up per request what is fixed for the app's life (the limit, the
    tracer's presence).
    """

    __middleware_version__ = 1  # aiohttp's mark of a new-style middleware

    def __init__(self, max_body_bytes: int, access: ApiAccess | None) -> None:
        self._max_body_bytes = max_body_bytes
        self._access = access
        # Filled as the routes are added; empty for a service that protects none
        # (its webhooks check their own signatures): then there is nothing to look up.
        self._guarded: Mapping[web.AbstractRoute, object] = {} if access is None else access.guarded

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if tracing_active() and request.path not in UNTRACED_PATHS:
            return await answer_in_span(request, self._answer, handler)
        return await self._answer(request, handler)

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if self._guarded:
                assert self._access is not None
                await self._access.admit(request)
            # Refuse a declared oversize body before anyone reads it; chunked bodies
            # are cut off by aiohttp's client_max_size while being read.
            length = request.content_length
            if length is not None and length > self._max_body_bytes:
                raise ProblemError(
                    413,
                    "Content Too Large",
                    f"the request body has {length} bytes; "
                    f"the limit is {self._max_body_bytes} bytes",
                )
            return await handler(request)
        except Exception as error:  # CancelledError is a BaseException: it passes
            return answer_error(request, error)


def create_http_app(
    *,
    service: str,
    registry: MetricsRegistry,
    readiness: Sequence[ReadinessCheck],
    max_body_bytes: int = 1_048_576,
    routes: Sequence[web.RouteDef] = (),
    readiness_timeout_s: float = READINESS_TIMEOUT_S,
    openapi: Mapping[str, Any] | None = None,
    access: ApiAccess | None = None,
) -> web.Application:
    """Build the service's HTTP app: health, readiness, metrics, ``openapi`` and ``routes``.

    ``openapi`` is the service's OpenAPI document (``Service.openapi()``), served
    at ``/openapi.json``; without it, a document of the probes alone. With
    ``access``, each of ``routes`` that declares a role answers only callers
    whose bearer token grants it (:mod:`waybill_runtime.http.auth`).
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
    if access is not None:
        access.metrics = registry
    app = web.Application(
        client_max_size=max_body_bytes, middlewares=[_FrontDoor(max_body_bytes, access)]
    )
    app[SERVICE_KEY] = service
    app[METRICS_KEY] = registry
    app[MAX_BODY_KEY] = max_body_bytes
    app[READINESS_KEY] = tuple(readiness)
    app[_READINESS_TIMEOUT_KEY] = readiness_timeout_s
    # Encoded once: the document is fixed for the life of the process.
    app[_OPENAPI_KEY] = msgspec.json.encode(
        openapi if openapi is not None else openapi_document(service=service)
    )
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get(OPENAPI_PATH, _openapi)
    if access is None:
        app.router.add_routes(routes)
    else:
        access.add_routes(app.router, routes)
    return app
