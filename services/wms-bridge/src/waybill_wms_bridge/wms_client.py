"""The one client of the WMS REST API (orders, returns, the product catalogue), with
timeouts, retries and a breaker.

Failures come out as the runtime's outcome exceptions, so a handler never
has to sort them itself:

* the WMS unreachable, slow, answering 5xx, 429 (``Retry-After`` honoured) or
  garbage → :class:`WmsUnavailable` (transient: the message is retried later);
* 401/403 → :class:`WmsAuthFailed` (also retried: once the key is fixed the
  same message succeeds) and :attr:`WmsClient.auth_problem` is set, which
  makes the service not ready;
* any other 4xx → :class:`WmsRejected` (permanent: dead letter with the WMS's
  reason); 409 is :class:`WmsConflict`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from waybill_runtime.outcomes import (
    PermanentError,
    TransientError,
    is_transient,
    parse_retry_after,
)
from waybill_runtime.partner_calls import partner_session, watch_circuits
from waybill_runtime.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    RetryPolicy,
    TokenBucket,
    retry_call,
    with_timeout,
)
from waybill_wms_bridge.config import WmsBridgeSettings
from waybill_wms_bridge.return_wire import WmsReturn, WmsReturnList, WmsReturnRequest
from waybill_wms_bridge.wms_wire import (
    WmsOrder,
    WmsOrderList,
    WmsOrderRequest,
    WmsProblem,
    WmsProduct,
    WmsProductResults,
    WmsStockCursor,
    WmsStockPage,
)

__all__ = [
    "API_KEY_HEADER",
    "WmsAuthFailed",
    "WmsClient",
    "WmsConflict",
    "WmsRejected",
    "WmsUnavailable",
    "open_wms_client",
]

log = logging.getLogger("waybill.wms_bridge.client")

T = TypeVar("T")

API_KEY_HEADER = "X-Api-Key"
_API_PREFIX = "/api/v1"
# Statuses below 500 that still mean "later": request timeout, too early, too many requests.
_RETRYABLE_4XX = frozenset({408, 425, 429})
_AUTH_STATUSES = frozenset({401, 403})


class WmsUnavailable(TransientError):
    """The WMS could not answer properly now (down, slow, overloaded, garbled)."""


class WmsAuthFailed(TransientError):
    """The WMS refused the API key. Retried: the same message succeeds once the key is fixed."""


class WmsRejected(PermanentError):
    """The WMS refused the request for good (4xx); ``status`` and ``detail`` say why."""

    def __init__(self, what: str, status: int, detail: str) -> None:
        super().__init__(f"the WMS refused {what} (HTTP {status}): {detail}")
        self.status = status
        self.detail = detail


class WmsConflict(WmsRejected):
    """409: the request clashes with the order's state (e.g. too late to cancel)."""


def _problem_detail(raw: bytes) -> str:
    try:
        problem = msgspec.json.decode(raw, type=WmsProblem)
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = raw.decode(errors="replace").strip()
        return text[:200] or "no details given"
    return problem.detail or problem.title or "no details given"


def _wire_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _partner_unwell(error: BaseException) -> bool:
    # A refused key is an answer from a healthy WMS: opening the circuit would
    # only delay the recovery once the key is fixed.
    return is_transient(error) and not isinstance(error, WmsAuthFailed)


def _retry_now(error: BaseException) -> bool:
    # An open circuit or a wrong key will not heal within one delivery: let the
    # bus redeliver later instead of holding a worker.
    return is_transient(error) and not isinstance(error, CircuitOpenError | WmsAuthFailed)


class WmsClient:
    """Calls the WMS REST API for outbound orders and expected returns."""

    def __init__(self, settings: WmsBridgeSettings, session: aiohttp.ClientSession) -> None:
        self._base = settings.wms_url.rstrip("/") + _API_PREFIX
        self._session = session
        self._timeout_s = settings.wms_timeout_s
        self._retry = RetryPolicy(attempts=settings.wms_retry_attempts, base_s=0.2, max_s=2.0)
        self._rate = TokenBucket(settings.wms_rate_per_s, burst=max(1.0, settings.wms_rate_per_s))
        self.breaker = CircuitBreaker(
            settings.wms_circuit_failures,
            settings.wms_circuit_reset_s,
            name="wms",
            is_failure=_partner_unwell,
            on_state_change=watch_circuits("wms"),
        )
        self.auth_problem: str | None = None
        """Why the WMS last refused the API key; None once a call gets through."""

    # -- outbound orders ---------------------------------------------------------

    async def create_order(self, request: WmsOrderRequest) -> WmsOrder:
        """Create the order, or get the existing one back when the ref was sent before."""
        body = msgspec.json.encode(request)
        return await self._call(
            f"order {request.client_order_ref}", "POST", "/outbound-orders", WmsOrder, body=body
        )

    async def get_order(self, order_id: str) -> WmsOrder:
        """The order with the WMS id ``order_id``."""
        path = f"/outbound-orders/{quote(order_id, safe='')}"
        return await self._call(f"the lookup of order {order_id}", "GET", path, WmsOrder)

    async def find_order(self, client_order_ref: str) -> WmsOrder | None:
        """The order created for ``client_order_ref``, or None when the WMS has none."""
        found = await self._call(
            f"the lookup of {client_order_ref}",
            "GET",
            "/outbound-orders",
            WmsOrderList,
            params={"client_order_ref": client_order_ref},
        )
        matching = [o for o in found.orders if o.client_order_ref == client_order_ref]
        return matching[0] if matching else None

    async def cancel_order(self, order_id: str) -> WmsOrder:
        """Cancel the order; cancelling a cancelled order is fine. 409 when it is too late."""
        path = f"/outbound-orders/{quote(order_id, safe='')}/cancel"
        return await self._call(f"the cancellation of order {order_id}", "POST", path, WmsOrder)

    async def orders_updated_since(self, since: datetime) -> list[WmsOrder]:
        """Orders changed at or after ``since``, oldest change first (the reconciliation poll)."""
        found = await self._call(
            "the reconciliation poll",
            "GET",
            "/outbound-orders",
            WmsOrderList,
            params={"updated_since": _wire_time(since)},
        )
        return found.orders

    # -- product catalogue -------------------------------------------------------

    async def upsert_products(self, products: list[WmsProduct]) -> WmsProductResults:
        """Create or update ``products``; the WMS answers per product (some may be refused)."""
        body = msgspec.json.encode({"products": products})
        what = f"an upload of {len(products)} products"
        return await self._call(what, "POST", "/products", WmsProductResults, body=body)

    # -- stock on hand ------------------------------------------------------------

    async def stock_on_hand(self, after: WmsStockCursor | None, limit: int) -> WmsStockPage:
        """One page of stock per SKU and location, starting after ``after`` (None: the first)."""
        params = {"limit": str(limit)}
        if after is not None:
            params |= {"after_sku": after.after_sku, "after_location": after.after_location}
        return await self._call(
            "a page of stock on hand", "GET", "/stock-on-hand", WmsStockPage, params=params
        )

    # -- expected returns ----------------------------------------------------------

    async def expect_return(self, request: WmsReturnRequest) -> WmsReturn:
        """Announce a return, or get the existing one back when the ref was sent before."""
        body = msgspec.json.encode(request)
        return await self._call(
            f"return {request.client_return_ref}", "POST", "/returns", WmsReturn, body=body
        )

    async def find_return(self, client_return_ref: str) -> WmsReturn | None:
        """The return expected under ``client_return_ref``, or None when the WMS has none."""
        found = await self._call(
            f"the lookup of {client_return_ref}",
            "GET",
            "/returns",
            WmsReturnList,
            params={"client_return_ref": client_return_ref},
        )
        matching = [r for r in found.returns if r.client_return_ref == client_return_ref]
        return matching[0] if matching else None

    async def returns_updated_since(self, since: datetime) -> list[WmsReturn]:
        """Returns changed at or after ``since``, oldest change first (the reconciliation poll)."""
        found = await self._call(
            "the list of changed returns",
            "GET",
            "/returns",
            WmsReturnList,
            params={"updated_since": _wire_time(since)},
        )
        return found.returns

    async def cancel_return(self, return_id: str) -> WmsReturn:
        """Call off a return not received yet; cancelling twice is fine. 409 once received."""
        path = f"/returns/{quote(return_id, safe='')}/cancel"
        return await self._call(f"the cancellation of return {return_id}", "POST", path, WmsReturn)

    # -- plumbing ----------------------------------------------------------------

    async def _call(
        self,
        what: str,
        method: str,
        path: str,
        answer_type: type[T],
        *,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> T:
        async def once() -> T:
            await self._rate.acquire()
            return await self.breaker.call(
                lambda: with_timeout(
                    self._exchange(what, method, path, answer_type, params, body),
                    self._timeout_s,
                    f"the WMS ({what})",
                )
            )

        return await retry_call(once, self._retry, retry_on=_retry_now)

    async def _exchange(
        self,
        what: str,
        method: str,
        path: str,
        answer_type: type[T],
        params: dict[str, str] | None,
        body: bytes | None,
    ) -> T:
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            async with self._session.request(
                method, self._base + path, params=params, data=body, headers=headers
            ) as response:
                status = response.status
                raw = await response.read()
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except aiohttp.ClientError as error:
            raise WmsUnavailable(
                f"the WMS could not be reached for {what} ({type(error).__name__}: {error})"
            ) from error
        if status in _AUTH_STATUSES:
            self._auth_refused(status, _problem_detail(raw))
            raise WmsAuthFailed(
                f"the WMS refused the API key for {what} (HTTP {status}): check WAYBILL_WMS_API_KEY"
            )
        self.auth_problem = None
        if 200 <= status < 300:
            try:
                return msgspec.json.decode(raw, type=answer_type)
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                raise WmsUnavailable(
                    f"the WMS answered {what} with an unreadable body: {error}"
                ) from error
        detail = _problem_detail(raw)
        if status >= 500 or status in _RETRYABLE_4XX:
            raise WmsUnavailable(
                f"the WMS answered {what} with HTTP {status}: {detail}", retry_after_s=retry_after
            )
        if status == 409:
            raise WmsConflict(what, status, detail)
        raise WmsRejected(what, status, detail)

    def _auth_refused(self, status: int, detail: str) -> None:
        if self.auth_problem is None:
            # Logged once per outage of the key, not once per message.
            log.error(
                "the WMS refuses our API key (HTTP %d: %s): set WAYBILL_WMS_API_KEY to a key "
                "the WMS accepts; messages wait and are retried meanwhile",
                status,
                detail,
            )
        self.auth_problem = (
            f"the WMS refuses the API key (HTTP {status}): check WAYBILL_WMS_API_KEY"
        )


@contextlib.asynccontextmanager
async def open_wms_client(settings: WmsBridgeSettings) -> AsyncIterator[WmsClient]:
    """A :class:`WmsClient` with its own connection pool, closed on exit."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.wms_connect_timeout_s)
    headers = {API_KEY_HEADER: settings.wms_api_key, "Accept": "application/json"}
    async with partner_session("wms", timeout=timeout, headers=headers) as session:
        yield WmsClient(settings, session)
