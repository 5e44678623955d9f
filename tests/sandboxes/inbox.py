"""A bare webhook receiver for tests: records every POST with its raw body and headers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web


class Received(msgspec.Struct, kw_only=True, frozen=True):
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        decoded: dict[str, Any] = msgspec.json.decode(self.body)
        return decoded


class Inbox:
    """Answers every POST with ``status`` (200 by default) and keeps what it got.

    ``failures_left`` POSTs are answered 503 first, which is how a test shows a
    sender retrying until the receiver is back.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 200
        self.failures_left = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
        return app

    async def _receive(self, request: web.Request) -> web.Response:
        self.received.append(
            Received(path=request.path, headers=dict(request.headers), body=await request.read())
        )
        if self.failures_left > 0:
            self.failures_left -= 1
            return web.Response(status=503)
        return web.Response(status=self.status)

    def bodies(self) -> list[dict[str, Any]]:
        return [item.json() for item in self.received]

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """Poll until at least ``count`` POSTs arrived (generous timeout, no timing asserts)."""
        await eventually(lambda: len(self.received) >= count, timeout_s)
        return self.received


async def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail with a clear message after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {timeout_s} s")
        await asyncio.sleep(0.01)
