"""Running an HTTP app on a host and port, with a clear error when the port is taken."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from waybill_runtime.errors import UserFacingError

__all__ = ["BoundAddress", "serve_http"]


@dataclass(frozen=True, slots=True)
class BoundAddress:
    """Where the server listens (``port`` is the real one when 0 was asked for)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """A base URL for reaching the server from this machine."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


def _listen_error(error: OSError, host: str, port: int) -> UserFacingError:
    if error.errno == errno.EADDRINUSE:
        return UserFacingError(
            f"port {port} on {host} is already in use: "
            "set WAYBILL_HTTP_PORT to a free port (or 0 for any)"
        )
    if error.errno == errno.EACCES:
        return UserFacingError(
            f"not allowed to listen on port {port} on {host}: "
            "set WAYBILL_HTTP_PORT to a port above 1023 (or 0 for any)"
        )
    return UserFacingError(
        f"cannot listen on {host}:{port} ({error.strerror or error}): "
        "set WAYBILL_HTTP_HOST to an address of this machine (0.0.0.0 for all)"
    )


@asynccontextmanager
async def serve_http(
    app: web.Application, host: str, port: int, *, shutdown_timeout_s: float = 5.0
) -> AsyncIterator[BoundAddress]:
    """Serve ``app`` for the duration of the ``async with`` block.

    Yields the bound address. Access logging is off: probes and scrapes would
    drown the service's own lines.
    """
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as error:
            raise _listen_error(error, host, port) from None
        # A name resolving to several addresses gets one socket each; the first will do.
        bound_port = int(runner.addresses[0][1])
        yield BoundAddress(host, bound_port)
    finally:
        await runner.cleanup()
