"""Fault injection shared by every sandbox.

A sandbox owns one :class:`Faults`. Each incoming call is named by an
*operation* (an aiohttp route name, or a protocol-level name such as
``"object.execute_kw stock.picking.write"``) and passes through
:meth:`Faults.intercept`, which counts it and decides whether to misbehave:
add latency, hang, drop the connection, answer 429 or 503, or send a body
that does not parse. Tests drive it from Python; scripts drive it over HTTP
through the admin routes that :func:`install_faults` adds under ``/_sandbox``.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from aiohttp import web

from waybill_sandboxes.responses import json_response

__all__ = [
    "ALL_OPERATIONS",
    "FAULTS_KEY",
    "FaultPlan",
    "FaultPlanError",
    "Faults",
    "SandboxOutage",
    "install_faults",
]

#: The operation name whose plan applies to every operation without a plan of its own.
ALL_OPERATIONS = "*"

NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class FaultPlan(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What to inject for one operation (or ``"*"`` for all of them).

    Checked in this order: latency, outage, timeout, rate limit, error rate,
    malformed. Unknown fields are refused so a typo cannot silently inject nothing.
    """

    latency_s: NonNegativeFloat = 0.0
    """Delay added before answering (applies before every other fault)."""
    error_rate: Probability = 0.0
    """Probability 0..1 of answering HTTP 503."""
    timeout: bool = False
    """Hang far longer than any client timeout (cancelled when the client goes away)."""
    outage: bool = False
    """Drop the connection without any HTTP response."""
    rate_limit: bool = False
    """429 storm: answer every call with 429 and ``Retry-After``."""
    retry_after_s: NonNegativeInt = 1
    """Seconds announced in ``Retry-After`` during a 429 storm."""
    malformed: bool = False
    """Answer 200 with a body that is not valid for the protocol (truncated JSON)."""
    times: PositiveInt | None = None
    """Apply the plan to this many calls only, then remove it (``None``: until cleared)."""
    after_calls: NonNegativeInt = 0
    """Let this many calls through untouched first: a failure in the middle of a run."""


class FaultPlanError(ValueError):
    """A fault plan that cannot be applied (wrong field, wrong type, out of range)."""


class SandboxOutage(Exception):
    """Raised by :meth:`Faults.intercept` to make the middleware drop the connection."""


def _validated(plan: FaultPlan | None, fields: dict[str, Any]) -> FaultPlan:
    # Going through msgspec.convert enforces the Meta constraints, which plain
    # construction does not, so Python callers get the same checks as HTTP callers.
    base: dict[str, Any] = msgspec.to_builtins(plan) if plan is not None else {}
    base.update(fields)
    try:
        return msgspec.convert(base, FaultPlan)
    except msgspec.ValidationError as error:
        raise FaultPlanError(f"invalid fault plan: {error}") from error


class Faults:
    """The faults and call counters of one sandbox.

    ``seed`` makes the random 5xx choices repeatable. ``hang_s`` is how long a
    ``timeout`` fault hangs; it is far beyond any client timeout on purpose.
    """

    def __init__(self, *, seed: int | None = None, hang_s: float = 120.0) -> None:
        self._plans: dict[str, FaultPlan] = {}
        self._remaining: dict[str, int] = {}
        self._untouched: dict[str, int] = {}  # calls still let through before a plan applies
        self._calls: Counter[str] = Counter()
        self._random = random.Random(seed)
        self.hang_s = hang_s

    def set(
        self, operation: str = ALL_OPERATIONS, plan: FaultPlan | None = None, **fields: Any
    ) -> None:
        """Inject ``plan`` (with ``fields`` applied over it) into ``operation``.

        Replaces any earlier plan for that operation. A plan for a named
        operation takes precedence over the ``"*"`` plan.
        """
        if not operation:
            raise FaultPlanError("invalid fault plan: the operation name is empty")
        checked = _validated(plan, fields)
        self._plans[operation] = checked
        self._remaining.pop(operation, None)
        if checked.times is not None:
            self._remaining[operation] = checked.times
        self._untouched[operation] = checked.after_calls

    def clear(self, operation: str | None = None) -> None:
        """Remove the plan of ``operation``, or every plan when ``operation`` is None."""
        if operation is None:
            self._plans.clear()
            self._remaining.clear()
            self._untouched.clear()
        else:
            self._plans.pop(operation, None)
            self._remaining.pop(operation, None)
            self._untouched.pop(operation, None)

    def reset(self) -> None:
        """Remove every plan and zero the call counters."""
        self.clear()
        self._calls.clear()

    def plans(self) -> dict[str, FaultPlan]:
        """The plans in force, by operation."""
        return dict(self._plans)

    def calls(self) -> dict[str, int]:
        """How many times each operation was called, faulted or not."""
        return dict(self._calls)

    def plan_for(self, operation: str) -> FaultPlan | None:
        """The plan that applies to ``operation`` now, if any."""
        return self._plans.get(operation) or self._plans.get(ALL_OPERATIONS)

    def _consume(self, operation: str) -> FaultPlan | None:
        key = operation if operation in self._plans else ALL_OPERATIONS
        plan = self._plans.get(key)
        if plan is None:
            return None
        if self._untouched.get(key, 0) > 0:
            self._untouched[key] -= 1
            return None
        if key in self._remaining:
            self._remaining[key] -= 1
            if self._remaining[key] <= 0:
                self.clear(key)
        return plan

    async def intercept(self, operation: str) -> web.StreamResponse | None:
        """Count a call of ``operation`` and apply its fault plan.

        Returns the faulty response to send, or None to answer normally.
        Raises :class:`SandboxOutage` when the connection must be dropped
        (the middleware of :func:`install_faults` turns that into a closed socket).
        """
        self._calls[operation] += 1
        plan = self._consume(operation)
        if plan is None:
            return None
        if plan.latency_s > 0:
            await asyncio.sleep(plan.latency_s)
        if plan.outage:
            raise SandboxOutage(operation)
        if plan.timeout:
            await asyncio.sleep(self.hang_s)
            return _problem(504, "the sandbox hung on purpose and gave up")
        if plan.rate_limit:
            response = _problem(429, "rate limit exceeded, slow down")
            response.headers["Retry-After"] = str(plan.retry_after_s)
            return response
        if plan.error_rate > 0 and self._random.random() < plan.error_rate:
            return _problem(503, "the service is temporarily unavailable")
        if plan.malformed:
            return web.Response(
                status=200, body=self.malformed_body(), content_type="application/json"
            )
        return None

    def malformed_body(self) -> bytes:
        """A 200 body no JSON parser accepts: an object cut off mid-string."""
        return b'{"status": "ok", "result": {"id": 1, "name": "trunc'


def _problem(status: int, detail: str) -> web.Response:
    return json_response({"status": status, "error": detail}, status=status)


FAULTS_KEY = web.AppKey("waybill_sandboxes.faults", Faults)

OperationOf = Callable[[web.Request], str | None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ADMIN_PREFIX = "/_sandbox"


def _route_operation(request: web.Request) -> str | None:
    route = request.match_info.route
    if route.resource is None:  # no route matched: aiohttp answers 404/405 itself
        return None
    if route.name:
        return route.name
    return f"{request.method} {route.resource.canonical}"


def _drop_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        # abort() rather than close(): nothing buffered may reach the client.
        transport.abort()


def install_faults(
    app: web.Application,
    faults: Faults,
    *,
    operation_of: OperationOf | None = None,
) -> None:
    """Put ``faults`` in front of every route of ``app`` and add the admin routes.

    The operation of a request is ``operation_of(request)`` when given (None
    means "the handler calls :meth:`Faults.intercept` itself"), else the route
    name, else ``"<METHOD> <path template>"``. Routes under ``/_sandbox`` are
    never faulted or counted. Admin routes: ``GET /_sandbox/faults``,
    ``PUT /_sandbox/faults/{operation}``, ``DELETE /_sandbox/faults[/{operation}]``,
    ``GET /_sandbox/calls``, ``POST /_sandbox/reset``.
    """
    pick_operation = operation_of or _route_operation

    @web.middleware
    async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if not request.path.startswith(ADMIN_PREFIX):
                operation = pick_operation(request)
                if operation is not None:
                    faulty = await faults.intercept(operation)
                    if faulty is not None:
                        return faulty
            return await handler(request)
        except SandboxOutage:
            _drop_connection(request)
            # The client is gone; this response is never written anywhere.
            return web.Response(status=503)

    app[FAULTS_KEY] = faults
    app.middlewares.append(fault_middleware)
    app.router.add_get(f"{ADMIN_PREFIX}/faults", _list_faults)
    app.router.add_put(f"{ADMIN_PREFIX}/faults/{{operation:.+}}", _put_fault)
    app.router.add_delete(f"{ADMIN_PREFIX}/faults", _delete_faults)
    app.router.add_delete(f"{ADMIN_PREFIX}/faults/{{operation:.+}}", _delete_faults)
    app.router.add_get(f"{ADMIN_PREFIX}/calls", _get_calls)
    app.router.add_post(f"{ADMIN_PREFIX}/reset", _reset)


async def _list_faults(request: web.Request) -> web.Response:
    return json_response(request.app[FAULTS_KEY].plans())


async def _put_fault(request: web.Request) -> web.Response:
    faults = request.app[FAULTS_KEY]
    operation = request.match_info["operation"]
    try:
        fields = msgspec.json.decode(await request.read())
    except msgspec.DecodeError as error:
        return json_response({"error": f"the body is not JSON: {error}"}, status=400)
    if not isinstance(fields, dict):
        return json_response(
            {"error": "the body must be a JSON object of FaultPlan fields"}, status=400
        )
    try:
        # Fields are validated as a whole so keys like "plan" cannot clash with set()'s own.
        faults.set(operation, _validated(None, fields))
    except FaultPlanError as error:
        return json_response({"error": str(error)}, status=400)
    return json_response({"operation": operation, "plan": faults.plans()[operation]})


async def _delete_faults(request: web.Request) -> web.Response:
    request.app[FAULTS_KEY].clear(request.match_info.get("operation"))
    return json_response({"faults": request.app[FAULTS_KEY].plans()})


async def _get_calls(request: web.Request) -> web.Response:
    return json_response(request.app[FAULTS_KEY].calls())


async def _reset(request: web.Request) -> web.Response:
    request.app[FAULTS_KEY].reset()
    return json_response({"reset": True})
