"""An HTTP endpoint for Waybill's outbound webhooks that checks Standard Webhooks signatures.

Every POST under ``/webhooks`` is recorded with its id, timestamp, body and
whether the signature verified (using the ``standardwebhooks`` reference
implementation). It can be told to answer 5xx, 410 or 429 to exercise the
sender's retry, disable and back-off paths.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from aiohttp import hdrs, web
from standardwebhooks import Webhook

from waybill_sandboxes.faults import Faults, install_faults
from waybill_sandboxes.responses import BadBody, json_response, read_json

__all__ = ["Delivery", "WebhookReceiver", "new_secret"]


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Delivery(msgspec.Struct, kw_only=True, frozen=True):
    """One POST the receiver got."""

    webhook_id: str | None
    timestamp: str | None
    body: str
    path: str
    headers: dict[str, str]
    verified: bool
    error: str | None
    """Why verification failed, if it did."""
    answered: int
    """The HTTP status the receiver answered."""
    received_at: datetime


class ResponseOverride(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PUT /_sandbox/response``: answer this instead of the normal status."""

    status: Annotated[int, msgspec.Meta(ge=200, le=599)]
    retry_after_s: Annotated[int, msgspec.Meta(ge=0)] | None = None
    times: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Only for the next ``times`` deliveries (None: until cleared)."""


class WebhookReceiver:
    """Records and verifies Standard Webhooks deliveries.

    Deliveries that verify are answered 204, others 401, unless an override
    set with :meth:`respond_with` says otherwise.
    """

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret or new_secret()
        try:
            self._verifier = Webhook(self.secret)
        except Exception as error:  # the library raises binascii.Error, RuntimeError...
            raise ValueError(
                f"the webhook secret must be whsec_ followed by base64 ({error}): "
                "leave it out to get a fresh one"
            ) from error
        self.faults = Faults()
        self.deliveries: list[Delivery] = []
        self._override: ResponseOverride | None = None
        self._override_left: int | None = None

    def respond_with(
        self, status: int, *, retry_after_s: int | None = None, times: int | None = None
    ) -> None:
        """Answer ``status`` (e.g. 503, 410, 429) to the next deliveries."""
        override = msgspec.convert(
            {"status": status, "retry_after_s": retry_after_s, "times": times}, ResponseOverride
        )
        self._override, self._override_left = override, override.times

    def respond_normally(self) -> None:
        """Drop any override."""
        self._override = self._override_left = None

    def verified(self) -> list[Delivery]:
        """Deliveries whose signature checked out."""
        return [d for d in self.deliveries if d.verified]

    def app(self) -> web.Application:
        """POST ``/webhooks[/anything]``; admin under ``/_sandbox``."""
        app = web.Application()
        install_faults(app, self.faults)
        app.add_routes(self.routes())
        return app

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/webhooks{tail:(/.*)?}", self._receive, name="receive_webhook"),
            web.get("/_sandbox/deliveries", self._list),
            web.delete("/_sandbox/deliveries", self._clear),
            web.put("/_sandbox/response", self._set_response),
            web.delete("/_sandbox/response", self._clear_response),
        ]

    def _verify(self, body: bytes, headers: dict[str, str]) -> str | None:
        try:
            self._verifier.verify(body, headers, json_parse=False)
        except Exception as error:  # malformed headers raise ValueError & co., not only ours
            return f"{type(error).__name__}: {error}"
        return None

    def _answer(self, verified: bool) -> web.Response:
        override = self._override
        if override is None:
            return web.Response(status=204 if verified else 401)
        if self._override_left is not None:
            self._override_left -= 1
            if self._override_left <= 0:
                self.respond_normally()
        response = web.Response(status=override.status)
        if override.retry_after_s is not None:
            response.headers[hdrs.RETRY_AFTER] = str(override.retry_after_s)
        return response

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        error = self._verify(body, headers)
        response = self._answer(verified=error is None)
        lowered = {name.lower(): value for name, value in headers.items()}
        self.deliveries.append(
            Delivery(
                webhook_id=lowered.get("webhook-id"),
                timestamp=lowered.get("webhook-timestamp"),
                body=body.decode(errors="replace"),
                path=request.path,
                headers=headers,
                verified=error is None,
                error=error,
                answered=response.status,
                received_at=datetime.now(UTC),
            )
        )
        return response

    async def _list(self, request: web.Request) -> web.Response:
        return json_response({"deliveries": self.deliveries})

    async def _clear(self, request: web.Request) -> web.Response:
        self.deliveries.clear()
        return json_response({"deliveries": []})

    async def _set_response(self, request: web.Request) -> web.Response:
        try:
            override = await read_json(request, ResponseOverride)
        except BadBody as error:
            return json_response({"error": str(error)}, status=400)
        self._override, self._override_left = override, override.times
        return json_response({"response": override})

    async def _clear_response(self, request: web.Request) -> web.Response:
        self.respond_normally()
        return json_response({"response": None})
