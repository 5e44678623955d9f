"""Live updates: every new row of the audit trail, told to every open page (server-sent events).

Each page holds a bounded queue; a page that cannot keep up loses updates and
is told to reload (``event: resync``) rather than slowing the recording down.
An update names only the kind, type and order: the page fetches what it
shows through its own (authorised, masked) route.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import msgspec
from aiohttp import web

from waybill_auditor.stages import Stage

KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies from closing an idle stream."""
QUEUE_SIZE = 256

_encode = msgspec.json.Encoder().encode


class Update(msgspec.Struct, frozen=True, kw_only=True):
    """One new row of the audit trail."""

    kind: str
    type: str
    order_ref: str | None
    stage: Stage | None


_RESYNC = Update(kind="resync", type="", order_ref=None, stage=None)


class LiveFeed:
    """Fans each update out to the pages listening now."""

    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[Update]] = set()

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def announce(self, update: Update) -> None:
        """Tell every listener; one that is full gets a resync instead (it reloads)."""
        for queue in self._listeners:
            try:
                queue.put_nowait(update)
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(_RESYNC)

    def resync(self) -> None:
        """Tell every listener to reload: updates may have been missed."""
        for queue in self._listeners:
            with contextlib.suppress(asyncio.QueueEmpty):
                while queue.full():
                    queue.get_nowait()
            queue.put_nowait(_RESYNC)

    @contextlib.contextmanager
    def listen(self) -> Iterator[asyncio.Queue[Update]]:
        """A queue of the updates from now until the block ends."""
        queue: asyncio.Queue[Update] = asyncio.Queue(QUEUE_SIZE)
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)


async def event_stream(request: web.Request, feed: LiveFeed) -> web.StreamResponse:
    """``text/event-stream`` of the feed until the page goes away."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            # nginx and the like would buffer the stream otherwise.
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    with feed.listen() as queue:
        await response.write(b"retry: 3000\n\n")
        while True:
            try:
                update = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            name = b"resync" if update is _RESYNC else b"update"
            await response.write(b"event: " + name + b"\ndata: " + _encode(update) + b"\n\n")
