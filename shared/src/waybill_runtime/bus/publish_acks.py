"""Publishing to JetStream and waiting for the stream's ack, at the cost of one dict entry.

``js.publish`` in nats-py goes through its generic request path for every
message: a random token from ``secrets``, a future with a done-callback, an
``asyncio.wait_for`` (a second task-like wrapper and timer), and a dataclass
built field by field from the JSON ack. On a service that publishes once per
message handled, that was a tenth of the whole cost per message.

:class:`PublishAcks` keeps one wildcard reply subscription per publisher;
each publish takes the next counter value as its reply token, parks a future
under it and arms a single timer. The ack is read by msgspec. The errors are
nats-py's own (``TimeoutError``, ``NoStreamResponseError``, ``APIError`` and
subclasses), so callers and the outcome classification see no difference.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError, NoStreamResponseError

from waybill_runtime.bus.client import WaybillNatsClient

# What JetStream answers a publish with (either an error or where it stored it).
_Answer = TypeVar("_Answer")

_STATUS = "Status"
_NO_RESPONDERS = "503"


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int | None = None
    description: str | None = None


class StoredAck(msgspec.Struct, frozen=True):
    """Where JetStream stored a message; ``duplicate`` when it had it already."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    domain: str | None = None
    error: _ApiError | None = None


_ACK = msgspec.json.Decoder(StoredAck)


class Outbound(msgspec.Struct, frozen=True):
    """One message for :meth:`PublishAcks.publish_many`."""

    subject: str
    body: bytes
    headers: dict[str, str]


def _expire(future: asyncio.Future[Msg]) -> None:
    if not future.done():
        future.set_exception(NatsTimeoutError())


def _expire_all(futures: Sequence[asyncio.Future[Msg]]) -> None:
    for future in futures:
        _expire(future)


def read_answer(
    reply: Msg, decode: Callable[[bytes], _Answer], what: str, *, nobody: type[Exception]
) -> _Answer:
    """``reply``'s JSON body, decoded; ``nobody`` raised when nobody answered (status 503),
    nats-py's ``APIError`` for a body that is not ``what`` it should be."""
    headers = reply.headers
    if headers is not None and headers.get(_STATUS) == _NO_RESPONDERS:
        raise nobody
    try:
        return decode(reply.data)
    except msgspec.DecodeError as error:
        raise APIError(description=f"unreadable {what}: {error}") from None


def read_ack(reply: Msg) -> StoredAck:
    """The stored-ack in ``reply``; nats-py's error if JetStream refused or nobody answered."""
    ack = read_answer(reply, _ACK.decode, "publish ack", nobody=NoStreamResponseError)
    if ack.error is not None:
        APIError.from_error(msgspec.structs.asdict(ack.error))  # raises the matching subclass
    return ack


class PublishAcks:
    """Publishes with a reply subject of its own and hands back JetStream's ack."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix: str | None = None
        self._listening = asyncio.Lock()
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._counter = 0

    async def _listen(self) -> str:
        # Once per publisher, on its first publish (hence the lock).
        async with self._listening:
            if self._prefix is None:
                prefix = self._nc.new_inbox() + "."
                # nats-py re-subscribes after a reconnect; acks lost in a
                # disconnect end in a timeout, which callers retry.
                if isinstance(self._nc, WaybillNatsClient):
                    # Each reply resolves its future from the read loop: no queue, no task.
                    await self._nc.subscribe_direct(prefix + "*", self._on_reply)
                else:
                    await self._nc.subscribe(prefix + "*", cb=self._on_reply_async)
                self._prefix = prefix
        return self._prefix

    def _on_reply(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject.rpartition(".")[2], None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def _on_reply_async(self, msg: Msg) -> None:
        self._on_reply(msg)

    def _park(self) -> tuple[str, asyncio.Future[Msg]]:
        """A new reply token, and the future its reply will resolve (a plain call, no
        coroutine: this runs for every publish and every KV operation)."""
        self._counter += 1
        token = str(self._counter)
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        return token, future

    async def publish(
        self, subject: str, body: bytes, headers: dict[str, str], *, timeout_s: float
    ) -> StoredAck:
        """Publish one message and wait up to ``timeout_s`` for the stream to store it."""
        return read_ack(await self.request(subject, body, headers, timeout_s=timeout_s))

    async def request(
        self, subject: str, body: bytes, headers: dict[str, str] | None, *, timeout_s: float
    ) -> Msg:
        """Send one request (a publish, a JetStream API call) and wait for its one reply.

        nats-py's own ``TimeoutError`` after ``timeout_s``; a reply saying nobody
        listens (status 503) is returned as it came, for the caller to read.
        """
        prefix = self._prefix or await self._listen()
        token, future = self._park()
        try:
            await self._nc.publish(subject, body, reply=prefix + token, headers=headers)
            timer = future.get_loop().call_later(timeout_s, _expire, future)
            try:
                return await future
            finally:
                timer.cancel()
        finally:
            self._waiting.pop(token, None)

    async def publish_many(
        self, batch: Sequence[Outbound], *, timeout_s: float
    ) -> list[StoredAck | BaseException]:
        """Publish all, then wait for every ack; each result is its ack or its error."""
        prefix = self._prefix or await self._listen()
        tokens: list[str] = []
        futures: list[asyncio.Future[Msg]] = []
        try:
            for out in batch:
                token, future = self._park()
                tokens.append(token)  # forgotten in the finally below, sent or not
                futures.append(future)
                await self._nc.publish(
                    out.subject, out.body, reply=prefix + token, headers=out.headers
                )
            timer = asyncio.get_running_loop().call_later(timeout_s, _expire_all, futures)
            try:
                replies = await asyncio.gather(*futures, return_exceptions=True)
            finally:
                timer.cancel()
        finally:
            for token in tokens:
                self._waiting.pop(token, None)
        results: list[StoredAck | BaseException] = []
        for reply in replies:
            if isinstance(reply, BaseException):
                results.append(reply)
                continue
            try:
                results.append(read_ack(reply))
            except Exception as error:
                results.append(error)
        return results
