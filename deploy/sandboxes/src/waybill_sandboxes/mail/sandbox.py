"""The mail sandbox: the SMTP sink and the webhook receiver behind one HTTP admin port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

from waybill_sandboxes.mail.receiver import WebhookReceiver
from waybill_sandboxes.mail.smtp import SmtpMode, SmtpSink
from waybill_sandboxes.responses import BadBody, json_response, read_json

__all__ = ["MailSandbox"]


class _ModeRequest(msgspec.Struct, forbid_unknown_fields=True):
    mode: SmtpMode


class MailSandbox:
    """Notification channels in one object: ``smtp`` (a :class:`SmtpSink`) and
    ``receiver`` (a :class:`WebhookReceiver`).

    :meth:`app` serves the receiver and the admin routes, and starts and
    stops the SMTP server with the app.
    """

    def __init__(
        self, *, smtp_host: str = "127.0.0.1", smtp_port: int = 0, secret: str | None = None
    ) -> None:
        self.smtp = SmtpSink(smtp_host, smtp_port)
        self.receiver = WebhookReceiver(secret)

    def app(self) -> web.Application:
        app = self.receiver.app()
        app.add_routes(
            [
                web.get("/_sandbox/mail", self._summary),
                web.delete("/_sandbox/mail/messages", self._clear),
                web.put("/_sandbox/mail/mode", self._set_mode),
            ]
        )
        app.cleanup_ctx.append(self._running)
        return app

    async def _running(self, app: web.Application) -> AsyncIterator[None]:
        await self.smtp.start()
        yield
        await self.smtp.stop()

    async def _summary(self, request: web.Request) -> web.Response:
        return json_response(self.smtp.summary())

    async def _clear(self, request: web.Request) -> web.Response:
        self.smtp.messages.clear()
        return json_response({"messages": []})

    async def _set_mode(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request, _ModeRequest)
        except BadBody as error:
            return json_response({"error": str(error)}, status=400)
        await self.smtp.set_mode(body.mode)
        return json_response({"mode": self.smtp.mode})
