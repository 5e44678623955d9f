"""The Odoo client the gateway talks through, whatever the protocol.

:class:`OdooClient` is what handlers use: ``await odoo.call(model, method,
ids, **named_arguments)``. :class:`OdooHttpClient` holds what both protocols
share: the HTTP session, the bound on calls in flight, one write at a time
per record, timeouts, the login state that readiness reports, and version
detection. The protocols live in :mod:`~waybill_odoo_gateway.odoo_jsonrpc`
and :mod:`~waybill_odoo_gateway.odoo_json2`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import msgspec
from yarl import URL

from waybill_odoo_gateway.config import ODOO_OWN_RETRIES_S, OdooGatewaySettings
from waybill_odoo_gateway.odoo_errors import OdooLoginRejected, OdooUnavailable
from waybill_odoo_gateway.odoo_versions import OLDEST_SUPPORTED, OdooDialect, parse_major
from waybill_runtime.outcomes import parse_retry_after
from waybill_runtime.partner_calls import partner_session
from waybill_runtime.resilience import KeyedLock, PartnerTimeout, with_timeout
from waybill_runtime.resilience.adaptive import AdaptiveLimit

__all__ = ["READ_METHODS", "OdooClient", "OdooHttpClient", "RawAnswer"]

log = logging.getLogger("waybill.odoo")

READ_METHODS = frozenset(
    {
        "read",
        "search",
        "search_read",
        "search_count",
        "web_read",
        "web_search_read",
        "fields_get",
        "name_search",
        "default_get",
        "context_get",
        "check_object_reference",
        "check_access_rights",
        "has_access",
    }
)
"""Methods that change nothing; every other method with record ids is a write."""

_RETRYABLE_STATUSES = frozenset({408, 425, 429})

_JSON = {"Content-Type": "application/json"}

INITIAL_IN_FLIGHT = 4
"""Calls in flight to Odoo at start; the adaptive limit grows from there to the maximum."""


def _public_reason(down: OdooUnavailable) -> str:
    """Why Odoo cannot be used, in words /readyz may show anyone."""
    cause = down.__cause__
    if isinstance(cause, PartnerTimeout):
        return "Odoo is not answering"
    if isinstance(cause, aiohttp.ClientError | OSError):
        return "Odoo is unreachable"
    return "Odoo is not usable (the log says why)"


class OdooClient(Protocol):
    """Calls into one Odoo database as the integration user."""

    @property
    def dialect(self) -> OdooDialect:
        """The Odoo version's differences; known once connected."""
        ...

    @property
    def uid(self) -> int | None:
        """The integration user's id once logged in."""
        ...

    @property
    def ready(self) -> bool:
        """Logged in, and the last call reached Odoo."""
        ...

    @property
    def status(self) -> str:
        """One line saying whether Odoo is usable, and if not why (for the log)."""
        ...

    @property
    def public_status(self) -> str:
        """The same in words anyone may read: no URL, database or login."""
        ...

    async def connect(self) -> None:
        """Detect the version and log in (once); raises what the login ran into."""
        ...

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
        """Call ``model.method`` on ``ids`` (None: a model-level method) with named arguments."""
        ...

    async def close(self) -> None:
        """Release the HTTP session."""
        ...


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """An HTTP answer from Odoo: status, decoded JSON (None when not JSON) and headers."""

    status: int
    body: Any
    headers: Mapping[str, str]
    is_json: bool = True

    @property
    def retry_after_s(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))


class OdooHttpClient:
    """What the JSON-RPC and JSON-2 clients share; subclasses implement ``_login`` and
    ``_execute``."""

    protocol = "?"

    def __init__(
        self,
        settings: OdooGatewaySettings,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.settings = settings
        self.url = settings.odoo_url.rstrip("/")
        self._session = session
        self._own_session = session is None
        # Grows while Odoo answers fast, halves on lock conflicts, timeouts and slow
        # calls: under a burst, every extra write in flight competes for the same rows.
        self._in_flight = AdaptiveLimit(
            settings.odoo_max_in_flight,
            initial=min(settings.odoo_max_in_flight, INITIAL_IN_FLIGHT),
            slow_s=settings.odoo_slow_call_s,
        )
        self._record_writes = KeyedLock()
        self._urls: dict[str, URL] = {}
        self._connecting = asyncio.Lock()
        self._dialect = (
            OdooDialect(settings.odoo_version) if settings.odoo_version is not None else None
        )
        self._uid: int | None = None
        self._reachable = False
        self._status = f"not connected to Odoo at {self.url} yet"
        self._public_status = "not connected to Odoo yet"
        self._logged_in_status = ""
        self._logged_in_public = ""
        if settings.odoo_timeout_s <= ODOO_OWN_RETRIES_S:
            log.warning(
                "WAYBILL_ODOO_TIMEOUT_S=%g is not above %g s, the time Odoo may spend retrying "
                "a lock conflict itself: calls may be reported failed that still succeed",
                settings.odoo_timeout_s,
                ODOO_OWN_RETRIES_S,
            )

    # -- state ------------------------------------------------------------------

    @property
    def dialect(self) -> OdooDialect:
        if self._dialect is None:
            raise OdooUnavailable(f"the version of Odoo at {self.url} is not known yet")
        return self._dialect

    @property
    def uid(self) -> int | None:
        return self._uid

    @property
    def ready(self) -> bool:
        return self._uid is not None and self._reachable

    @property
    def status(self) -> str:
        return self._status

    @property
    def public_status(self) -> str:
        """The status for /readyz, which answers anyone: no URL, database or login."""
        return self._public_status

    @property
    def in_flight(self) -> int:
        """Calls to Odoo under way right now."""
        return self._in_flight.in_flight

    @property
    def in_flight_cap(self) -> int:
        """Calls to Odoo allowed at once right now (adapted to how Odoo copes)."""
        return self._in_flight.cap

    def _set_status(
        self, reachable: bool, status: str, public: str, *, failure: bool = False
    ) -> None:
        # Logged on change only: a login retried every 30 s must not fill the log.
        changed = status != self._status
        self._reachable, self._status, self._public_status = reachable, status, public
        if changed:
            if failure:
                log.error("%s", status)
            else:
                log.info("%s", status)

    def _credentials_hint(self) -> str:
        return (
            "WAYBILL_ODOO_API_KEY"
            if self.protocol == "json2"
            else "WAYBILL_ODOO_LOGIN/PASSWORD (or WAYBILL_ODOO_API_KEY)"
        )

    def login_rejected(self) -> OdooLoginRejected:
        """The one-line error for credentials Odoo refuses."""
        return OdooLoginRejected(
            f"Odoo at {self.url} rejected login {self.settings.odoo_login!r} for db "
            f"{self.settings.odoo_db!r}: check {self._credentials_hint()}"
        )

    def forget_login(self) -> OdooLoginRejected:
        """Odoo refused our credentials mid-way (password changed): log in again later."""
        self._uid = None
        rejected = self.login_rejected()
        self._set_status(
            True,
            str(rejected),
            f"Odoo rejected the login: check {self._credentials_hint()}",
            failure=True,
        )
        return rejected

    # -- connecting -------------------------------------------------------------

    async def connect(self) -> None:
        if self._uid is not None:
            return
        async with self._connecting:
            if self._uid is not None:
                return
            try:
                if self._dialect is None:
                    self._dialect = OdooDialect(await self._detect_major())
                self._check_protocol()
                uid = await self._login()
            except OdooLoginRejected:
                raise self.forget_login() from None
            except OdooUnavailable as down:
                self._set_status(
                    False,
                    f"Odoo at {self.url} is not usable: {down}",
                    _public_reason(down),
                    failure=True,
                )
                raise
            except Exception as failed:  # a refusal or server error while logging in
                self._set_status(
                    True,
                    f"Odoo at {self.url} failed the login: {failed}",
                    "the login to Odoo failed (the log says why)",
                    failure=True,
                )
                raise
            self._uid = uid
            self._logged_in_status = (
                f"logged in to Odoo {self.dialect.series} at {self.url} db "
                f"{self.settings.odoo_db!r} as {self.settings.odoo_login!r} (uid {uid}, "
                f"{self.protocol})"
            )
            self._logged_in_public = f"logged in to Odoo {self.dialect.series} ({self.protocol})"
            self._set_status(True, self._logged_in_status, self._logged_in_public)

    def _check_protocol(self) -> None:
        major = self.dialect.major
        if major < OLDEST_SUPPORTED:
            raise OdooUnavailable(
                f"Odoo {major} at {self.url} is older than the gateway supports (16-19)"
            )

    async def detect_major(self) -> int:
        """Ask Odoo its major version (``/web/webclient/version_info``, every protocol)."""
        try:
            return await self._detect_major()
        except OdooUnavailable as down:
            self._set_status(
                False,
                f"Odoo at {self.url} is not usable: {down}",
                _public_reason(down),
                failure=True,
            )
            raise

    async def _detect_major(self) -> int:
        payload = {"jsonrpc": "2.0", "method": "call", "params": {}, "id": 0}
        answer = await self.post("/web/webclient/version_info", payload, what="version_info")
        result = answer.body.get("result") if isinstance(answer.body, dict) else None
        major = parse_major(result.get("server_version_info") if isinstance(result, dict) else None)
        if answer.status != 200 or major is None:
            raise OdooUnavailable(
                f"{self.url}/web/webclient/version_info did not say which Odoo it is "
                f"(HTTP {answer.status}): check WAYBILL_ODOO_URL, or set WAYBILL_ODOO_VERSION"
            )
        return major

    async def _login(self) -> int:
        raise NotImplementedError

    # -- calling ------------------------------------------------------------------

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
        if self._uid is None:  # logged in: no coroutine to await for it on every call
            await self.connect()
        record_ids = None if ids is None else [int(i) for i in ids]
        reading = method in READ_METHODS
        if reading or not record_ids:
            # A read or a model-level call holds no record: no lock to take.
            return await self._within_limit(
                model, method, record_ids, context, arguments, timeout_s, reading=reading
            )
        async with self._holding(model, record_ids):
            return await self._within_limit(
                model, method, record_ids, context, arguments, timeout_s, reading=False
            )

    async def _within_limit(
        self,
        model: str,
        method: str,
        record_ids: list[int] | None,
        context: Mapping[str, Any] | None,
        arguments: dict[str, Any],
        timeout_s: float | None,
        *,
        reading: bool,
    ) -> Any:
        async with self._in_flight.slot() as slot:
            try:
                return await self._execute(
                    model, method, record_ids, dict(context or {}), arguments, timeout_s
                )
            except OdooUnavailable as down:
                # A keep-alive connection the server (or a proxy) closed as we
                # reused it: a read is safe to send again at once; a write is
                # left to the message's redelivery, which checks what happened.
                if not (reading and isinstance(down.__cause__, aiohttp.ClientConnectionError)):
                    if not isinstance(down, OdooLoginRejected):
                        slot.partner_overloaded()  # a lock conflict, a timeout, a 503
                    raise
            return await self._execute(
                model, method, record_ids, dict(context or {}), arguments, timeout_s
            )

    def _holding(
        self, model: str, record_ids: Sequence[int]
    ) -> contextlib.AbstractAsyncContextManager[None]:
        # Never two concurrent writes to one record: Odoo would serialize them
        # with lock conflicts. Most writes are to one record: its lock alone.
        keys = sorted(set(record_ids))
        if len(keys) == 1:
            return self._record_writes.hold((model, keys[0]))
        return self._holding_all(model, keys)

    @contextlib.asynccontextmanager
    async def _holding_all(self, model: str, keys: list[int]) -> AsyncIterator[None]:
        # Keys are taken in order so two calls writing the same records cannot wait
        # on each other.
        async with contextlib.AsyncExitStack() as stack:
            for record_id in keys:
                await stack.enter_async_context(self._record_writes.hold((model, record_id)))
            yield

    async def _execute(
        self,
        model: str,
        method: str,
        ids: list[int] | None,
        context: dict[str, Any],
        arguments: dict[str, Any],
        timeout_s: float | None,
    ) -> Any:
        raise NotImplementedError

    async def post(
        self,
        path: str,
        payload: Any,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> RawAnswer:
        """POST JSON to Odoo; connection trouble -> OdooUnavailable (calls are bounded by
        :meth:`call`'s adaptive limit)."""
        seconds = timeout_s or self.settings.odoo_timeout_s
        try:
            answer = await with_timeout(
                self._post(path, payload, headers), seconds, f"Odoo at {self.url} ({what})"
            )
        except PartnerTimeout as slow:
            self._set_status(
                False,
                f"Odoo at {self.url} is not answering: {slow}",
                "Odoo is not answering",
                failure=True,
            )
            raise OdooUnavailable(str(slow)) from slow
        except (aiohttp.ClientError, OSError) as trouble:
            self._set_status(
                False,
                f"Odoo at {self.url} is unreachable: {_describe(trouble)}",
                "Odoo is unreachable",
                failure=True,
            )
            raise OdooUnavailable(
                f"Odoo at {self.url} is unreachable ({what}): {_describe(trouble)}"
            ) from trouble
        odoo_spoke = isinstance(answer.body, dict) and "name" in answer.body
        if self.is_retryable_status(answer.status) and not odoo_spoke:
            # A proxy's 502 or a 503 page: Odoo itself is not answering.
            self._set_status(
                False,
                f"Odoo at {self.url} answers HTTP {answer.status}",
                f"Odoo answers HTTP {answer.status}",
                failure=True,
            )
        elif not self._reachable and self._uid is not None:
            self._set_status(True, self._logged_in_status, self._logged_in_public)
        return answer

    async def _post(self, path: str, payload: Any, headers: Mapping[str, str] | None) -> RawAnswer:
        session = self._session_now()
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(f"{self.url}{path}")
        async with session.post(
            url,
            data=msgspec.json.encode(payload),
            headers={**_JSON, **headers} if headers else _JSON,
        ) as response:
            raw = await response.read()
            try:
                return RawAnswer(response.status, msgspec.json.decode(raw), response.headers)
            except msgspec.DecodeError:
                # An HTML error page, a body cut off mid-way: not an answer from Odoo.
                return RawAnswer(response.status, None, response.headers, is_json=False)

    def unavailable(self, answer: RawAnswer, what: str) -> OdooUnavailable:
        """The error for an HTTP answer that is not Odoo's (a proxy's 502, a 429, HTML)."""
        return OdooUnavailable(
            f"Odoo at {self.url} answered HTTP {answer.status} to {what}",
            retry_after_s=answer.retry_after_s,
        )

    def is_retryable_status(self, status: int) -> bool:
        """5xx and the 4xx that mean "later" (408, 425, 429)."""
        return status >= 500 or status in _RETRYABLE_STATUSES

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No total timeout here: with_timeout bounds each call, by its own deadline.
            self._session = partner_session("odoo", timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
