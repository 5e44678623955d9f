"""Pull requests to a durable JetStream consumer, and what comes back for them.

nats-py's ``fetch`` sends a request, then waits for each message in turn
(``asyncio.wait_for`` around a queue read) and hands over the batch only when
it is complete. :class:`PullInbox` instead keeps requests outstanding and
passes each message on the moment it arrives, so handlers start while the
rest of the batch is still on the wire, and no per-message timer is armed.

The server answers every request: with messages, and with a status when the
request ends before it is filled (``408 Request Timeout`` when it expires,
``404 No Messages`` when a ``no_wait`` request has taken all there was,
``409`` when the server gives up on it, ``503`` when no JetStream answers);
``Nats-Pending-Messages`` says how many of it were not delivered. Hearing
nothing at all for longer than a request lives means the subscription or the
requests were lost (nats-py can stop receiving after a server restart); the
consumer then opens a new inbox (see :mod:`waybill_runtime.bus.consumer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import NamedTuple

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from waybill_runtime.bus.client import WaybillNatsClient

log = logging.getLogger("waybill.bus")

_STATUS = "Status"
_DESCRIPTION = "Description"
_PENDING_MESSAGES = "Nats-Pending-Messages"
_HEARTBEAT = "100"
_TIMED_OUT = "408"
_NO_MESSAGES = "404"  # the end of a no_wait request: nothing more was waiting
# How a request ends in the normal course: not a refusal, nothing to log.
_ROUTINE_ENDS = frozenset({_TIMED_OUT, _NO_MESSAGES})
_NO_RESPONDERS = "503"
_ACK_PREFIX = "$JS.ACK."


class Delivery(NamedTuple):
    """What the ack subject of a delivered message says about it."""

    attempt: int
    stream_sequence: int
    pending: int


def delivery_of(msg: Msg) -> Delivery:
    """Delivery count, stream sequence and messages still pending, read off ``msg.reply``.

    The same fields as nats-py's ``msg.metadata``, without building its
    dataclasses for every message. Both ack subject layouts are read: the
    original nine tokens and the one with a domain and an account hash.
    """
    tokens: list[str] = msg.reply.split(".") if msg.reply.startswith(_ACK_PREFIX) else []
    if len(tokens) == 9:
        return Delivery(int(tokens[4]), int(tokens[5]), int(tokens[8]))
    if len(tokens) >= 11:
        return Delivery(int(tokens[6]), int(tokens[7]), int(tokens[10]))
    meta = msg.metadata  # raises nats-py's error for a message that is not from JetStream
    return Delivery(meta.num_delivered, meta.sequence.stream, meta.num_pending)


def next_subject(stream: str, durable: str) -> str:
    """The subject a pull request for durable consumer ``durable`` of ``stream`` goes to."""
    return f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"


class _NextRequest(msgspec.Struct, omit_defaults=True):
    batch: int
    expires: int  # nanoseconds
    no_wait: bool = False


_encode_request = msgspec.json.Encoder().encode


def _refusal(status: str, headers: dict[str, str]) -> str:
    if status == _NO_RESPONDERS:
        # What the server says when the durable consumer (or JetStream) is not there.
        return "503 no responders: the consumer does not exist or JetStream is unavailable"
    return f"{status} {headers.get(_DESCRIPTION) or 'no description'}"


class PullInbox:
    """One inbox of pull requests: sends them, routes what comes back.

    ``on_message`` gets every delivered message; ``on_ended`` gets the number
    of requested messages that will not come (a request expired or was
    refused), or ``None`` when the server did not say and the count of
    outstanding requests can no longer be trusted, and, unless the request
    simply expired, why the server ended it.
    """

    def __init__(
        self,
        nc: Client,
        *,
        stream: str,
        durable: str,
        on_message: Callable[[Msg], None],
        on_ended: Callable[[int | None, str | None], None],
    ) -> None:
        self._nc = nc
        self._durable = durable
        self._next_subject = next_subject(stream, durable)
        self._on_message = on_message
        self._on_ended = on_ended
        self._sub: Subscription | None = None
        self._prefix = ""
        self._counter = 0
        self.heard_at = time.monotonic()

    async def open(self) -> None:
        self._prefix = self._nc.new_inbox() + "."
        if isinstance(self._nc, WaybillNatsClient):
            # Each delivery starts its handler from the read loop: no queue, no task.
            self._sub = await self._nc.subscribe_direct(self._prefix + "*", self._received)
        else:
            self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._receive)
        self.heard_at = time.monotonic()

    async def close(self, *, timeout_s: float = 5.0) -> None:
        """Stop receiving; what the server sent before is still handed over (drain).

        A drain needs a round trip to the server; while it is out of reach the
        subscription is dropped after ``timeout_s`` instead (what it had been
        sent comes back after its ack wait).
        """
        sub, self._sub = self._sub, None
        if sub is None:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await sub.drain()  # type: ignore[no-untyped-call]
        except Exception as error:
            log.warning("could not drain the pull inbox of %s (%s)", self._durable, error)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def request(self, batch: int, *, expires_s: float, no_wait: bool = False) -> None:
        """Ask for up to ``batch`` messages, for at most ``expires_s`` seconds.

        With ``no_wait`` the server sends only what is waiting now, then ends the
        request with ``404 No Messages`` (it does not say how many did not come).
        """
        self._counter += 1
        # The reply token carries the batch size, for a status that does not say.
        token = f"{self._counter}-{batch}"
        body = _encode_request(
            _NextRequest(batch=batch, expires=int(expires_s * 1e9), no_wait=no_wait)
        )
        await self._nc.publish(self._next_subject, body, reply=self._prefix + token)

    async def _receive(self, msg: Msg) -> None:
        self._received(msg)

    def _received(self, msg: Msg) -> None:
        self.heard_at = time.monotonic()
        if msg.reply:  # only messages from the stream carry an ack subject
            self._on_message(msg)
            return
        headers = msg.headers or {}
        status = headers.get(_STATUS)
        if status == _HEARTBEAT:
            return
        if status is None:
            log.warning(
                "ignored a message on the pull inbox of %s: not from JetStream", self._durable
            )
            return
        pending = headers.get(_PENDING_MESSAGES)
        refusal = None
        if status not in _ROUTINE_ENDS:
            refusal = _refusal(status, headers)
            log.warning("pull request for %s ended: %s", self._durable, refusal)
        if pending is not None and pending.isdigit():
            self._on_ended(int(pending), refusal)
        elif status == _NO_RESPONDERS and (batch := msg.subject.rpartition("-")[2]).isdigit():
            # Nobody took the request: none of it will come.
            self._on_ended(int(batch), refusal)
        else:
            self._on_ended(None, refusal)

    def silent_for(self) -> float:
        """Seconds since the server last said anything to this inbox."""
        return time.monotonic() - self.heard_at
