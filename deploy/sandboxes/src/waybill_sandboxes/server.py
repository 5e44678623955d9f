"""Serving a sandbox app: in-process for tests, in the foreground for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType

from aiohttp import web

__all__ = [
    "RunningSandbox",
    "run_apps_forever",
    "run_forever",
    "serve",
    "wait_for_stop_signal",
]

# Handlers hung by a "timeout" fault must not hold up shutdown for aiohttp's default 60 s.
_SHUTDOWN_TIMEOUT_S = 1.0


def base_url(host: str, port: int) -> str:
    """``http://host:port``, with IPv6 hosts in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class RunningSandbox:
    """An aiohttp app listening on a real socket until :meth:`stop`.

    Use it as ``async with serve(app) as running:``; ``running.url`` is the
    base URL with the port actually bound (port 0 picks a free one).
    """

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        # handler_cancellation: when a client gives up on a hung call, the
        # handler is cancelled instead of sleeping on for minutes.
        self._runner = web.AppRunner(
            app,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
            access_log=None,
        )
        self._started = False

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        if not self._started:
            raise RuntimeError("the sandbox is not running: start it first")
        return base_url(self.host, self.port)

    async def start(self) -> RunningSandbox:
        """Bind the socket and start answering; returns self."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            raise OSError(
                error.errno,
                f"cannot listen on {self.host}:{self.port} ({error.strerror}): "
                "pick another port or stop whatever holds it",
            ) from error
        self.port = int(self._runner.addresses[0][1])
        self._started = True
        return self

    async def stop(self) -> None:
        """Stop listening, cancel in-flight handlers and run the app's cleanup."""
        if self._started:
            self._started = False
            await self._runner.cleanup()

    async def __aenter__(self) -> RunningSandbox:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> RunningSandbox:
    """A :class:`RunningSandbox` for ``app``, to be entered with ``async with``."""
    return RunningSandbox(app, host=host, port=port)


@contextlib.contextmanager
def _stop_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT or SIGTERM while the block runs."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on this platform
            continue
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def wait_for_stop_signal() -> None:
    """Return when the process gets SIGINT or SIGTERM (Ctrl-C, ``kill``)."""
    stop = asyncio.Event()
    with _stop_signals(stop):
        await stop.wait()


async def _serve_until_stopped(
    apps: Sequence[tuple[web.Application, int]], host: str, banner: Callable[[list[str]], str]
) -> None:
    # Signals are handled before the banner says the sandbox is up: whoever reads
    # the banner and stops the sandbox at once gets a clean stop, not a kill.
    stop = asyncio.Event()
    with _stop_signals(stop):
        async with contextlib.AsyncExitStack() as stack:
            urls = [
                (await stack.enter_async_context(serve(app, host, port))).url for app, port in apps
            ]
            print(banner(urls), flush=True)
            await stop.wait()


def run_apps_forever(
    apps: Sequence[tuple[web.Application, int]],
    host: str,
    banner: Callable[[list[str]], str],
) -> None:
    """Serve several ``(app, port)`` pairs in the foreground until Ctrl-C or SIGTERM.

    ``banner(urls)`` is printed once every socket is bound, with the real
    base URLs in the order of ``apps``. Raises OSError when a port is taken.
    """
    try:
        asyncio.run(_serve_until_stopped(apps, host, banner))
    except KeyboardInterrupt:  # pragma: no cover - a second Ctrl-C during shutdown
        print("stopped", file=sys.stderr)


def run_forever(
    app: web.Application, host: str = "127.0.0.1", port: int = 0, banner: str = ""
) -> None:
    """Serve ``app`` in the foreground until Ctrl-C or SIGTERM.

    ``banner`` is printed once the socket is bound, with ``{url}`` replaced by
    the real base URL; put the credentials an integrator needs in it.
    """
    text = banner or "listening on {url}"
    run_apps_forever([(app, port)], host, lambda urls: text.replace("{url}", urls[0]))
