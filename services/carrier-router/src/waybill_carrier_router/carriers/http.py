"""One HTTP call to a carrier: base URL, auth, deadline, and what each failure means.

Every carrier client sends its requests through :class:`CarrierHttp`, so the
line between "nothing happened" (could not connect, 429, a 4xx) and "maybe it
happened" (timeout, connection lost, 5xx, an unreadable answer) is drawn once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import msgspec

from waybill_carrier_router.carriers.model import (
    CarrierRateLimited,
    CarrierRefused,
    CarrierUnavailable,
)
from waybill_runtime.outcomes import parse_retry_after
from waybill_runtime.resilience import PartnerTimeout, with_timeout

__all__ = ["CarrierHttp", "ErrorText"]

T = TypeVar("T")

ErrorText = Callable[[bytes], str]
"""Pulls the human-readable message out of a carrier's error body."""

_encode = msgspec.json.Encoder().encode
_SHOWN_BODY_CHARS = 200


def _plain_text(body: bytes) -> str:
    return body[:_SHOWN_BODY_CHARS].decode(errors="replace") or "no details"


class CarrierHttp:
    """Calls one carrier account's API and maps every answer to a result or an error."""

    def __init__(
        self,
        *,
        carrier: str,
        base_url: str,
        headers: Mapping[str, str],
        timeout_s: float,
        session: aiohttp.ClientSession,
        error_text: ErrorText = _plain_text,
    ) -> None:
        self.carrier = carrier
        self._base_url = base_url.rstrip("/")
        self._headers = dict(headers)
        self._timeout_s = timeout_s
        self._session = session
        self._error_text = error_text

    async def call(
        self,
        method: str,
        path: str,
        answer_type: type[T],
        *,
        what: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> T:
        """Send one request and decode a 2xx answer into ``answer_type``.

        Raises :class:`CarrierRefused` for a 4xx other than 408/429,
        :class:`CarrierRateLimited` for 429, and :class:`CarrierUnavailable`
        otherwise (``in_doubt`` unless the request surely never reached the carrier).
        """
        try:
            status, headers, body = await with_timeout(
                self._send(method, path, json, params), self._timeout_s, f"{self.carrier} {what}"
            )
        except PartnerTimeout as error:
            raise CarrierUnavailable(self.carrier, str(error), in_doubt=True) from error
        except aiohttp.ClientConnectorError as error:
            # The TCP connection never opened: the carrier cannot have seen the request.
            raise CarrierUnavailable(
                self.carrier, f"{what}: cannot connect ({error.os_error})", in_doubt=False
            ) from error
        except (aiohttp.ClientError, OSError) as error:
            raise CarrierUnavailable(
                self.carrier,
                f"{what}: connection lost before the answer ({type(error).__name__}: {error})",
                in_doubt=True,
            ) from error
        retry_after = parse_retry_after(headers.get("Retry-After"))
        if status == 429:
            raise CarrierRateLimited(self.carrier, retry_after)
        if status == 408 or status >= 500:
            raise CarrierUnavailable(
                self.carrier,
                f"{what} failed with HTTP {status}: {self._error_text(body)}",
                in_doubt=True,
                retry_after_s=retry_after,
            )
        if status >= 400:
            raise CarrierRefused(self.carrier, status, f"{what}: {self._error_text(body)}")
        try:
            return msgspec.json.decode(body, type=answer_type)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise CarrierUnavailable(
                self.carrier,
                f"{what} answered with a body Waybill cannot read: {error}",
                in_doubt=True,
            ) from error

    async def download(self, url: str, *, what: str) -> bytes:
        """Fetch a file the carrier made available at ``url`` (a report).

        Such URLs are pre-signed and may point at another host (a file store),
        so the API key is not sent along. Fails as :meth:`call` does.
        """
        try:
            status, _, body = await with_timeout(
                self._fetch(url), self._timeout_s, f"{self.carrier} {what}"
            )
        except PartnerTimeout as error:
            raise CarrierUnavailable(self.carrier, str(error), in_doubt=False) from error
        except (aiohttp.ClientError, OSError) as error:
            raise CarrierUnavailable(
                self.carrier, f"{what}: {type(error).__name__}: {error}", in_doubt=False
            ) from error
        if status >= 300:
            raise CarrierUnavailable(
                self.carrier, f"{what} failed with HTTP {status}", in_doubt=False
            )
        return body

    async def _fetch(self, url: str) -> tuple[int, Mapping[str, str], bytes]:
        async with self._session.get(url) as response:
            return response.status, response.headers, await response.read()

    async def _send(
        self, method: str, path: str, json: Any, params: Mapping[str, str] | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        headers = dict(self._headers)
        data = None
        if json is not None:
            data = _encode(json)
            headers["Content-Type"] = "application/json"
        async with self._session.request(
            method, self._base_url + path, data=data, params=params, headers=headers
        ) as response:
            body = await response.read()
            return response.status, response.headers, body
