"""Outgoing webhook delivery, as unreliable as a real partner's.

Partners POST events to a URL, retry a failed POST a few times with backoff
and then give up; some lose, repeat or reorder events. :class:`WebhookSender`
does all of that on demand so Waybill's receivers can be shown to reconcile.
Every event is recorded with its outcome for inspection.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Callable
from typing import Annotated

import aiohttp
import msgspec
from aiohttp import web

from waybill_sandboxes.responses import BadBody, json_response, read_json

__all__ = [
    "DeliveryMode",
    "DeliveryPolicy",
    "SentWebhook",
    "WebhookSender",
    "WebhookSettings",
    "webhook_admin_routes",
]

_log = logging.getLogger(__name__)


class DeliveryMode(enum.StrEnum):
    """How faithfully events reach the receiver."""

    NORMAL = "normal"
    """Each event once, in order (after retries if the receiver fails)."""
    LOSSY = "lossy"
    """Each event is dropped with probability ``drop_rate`` before any attempt."""
    DUPLICATE = "duplicate"
    """Each event is delivered twice, same id and body."""
    REORDER = "reorder"
    """Events are held for ``reorder_window_s`` and each held batch goes out newest first."""


class DeliveryPolicy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Delivery behaviour of one webhook sender."""

    mode: DeliveryMode = DeliveryMode.NORMAL
    drop_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5
    """Share of events lost in ``lossy`` mode."""
    reorder_window_s: Annotated[float, msgspec.Meta(ge=0)] = 0.05
    """How long ``reorder`` mode gathers events before releasing them reversed."""
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 3
    """POSTs per delivery before the event is given up as failed."""
    retry_backoff_s: Annotated[float, msgspec.Meta(ge=0)] = 0.05
    """First retry delay; doubles at each further attempt."""
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    """Per-POST timeout."""
    concurrency: Annotated[int, msgspec.Meta(ge=1)] = 1
    """Events being delivered at once. 1 (the default) sends one at a time, in order, as
    many partners do; more is how a busy partner's sender keeps up under a burst (events
    may then arrive out of order, which receivers must bear anyway)."""


class SentWebhook(msgspec.Struct, kw_only=True):
    """One event handed to the sender, and what became of it."""

    event_id: str
    event_type: str
    body: str
    url: str | None
    """Where it went (or goes): its own target if it has one, else the sender's URL."""
    target: str | None = None
    """The URL its source addressed it to (an Odoo webhook action's); None: the sender's."""
    outcome: str = "pending"
    """pending, delivered, dropped (lossy mode), failed (retries exhausted) or no_url."""
    attempts: int = 0
    """POSTs tried."""
    deliveries: int = 0
    """POSTs the receiver answered with 2xx (2 for a duplicated event)."""
    last_status: int | None = None
    last_error: str | None = None


Signer = Callable[[bytes], dict[str, str]]


class WebhookSender:
    """Queues events and POSTs them to ``url``, ``policy.concurrency`` at a time.

    ``sign(body)`` returns the signature headers; it is called for every
    attempt so timestamps are fresh, as a real partner's are. Call
    :meth:`start` inside the event loop and :meth:`close` at the end (the
    sandboxes do both from their app's cleanup context).
    """

    def __init__(
        self,
        *,
        sign: Signer,
        url: str | None = None,
        policy: DeliveryPolicy | None = None,
        seed: int | None = None,
    ) -> None:
        self.url = url
        self.policy = policy or DeliveryPolicy()
        self.records: list[SentWebhook] = []
        self._sign = sign
        self._random = random.Random(seed)
        self._queue: asyncio.Queue[SentWebhook] = asyncio.Queue()
        self._session: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    def configure(self, *, url: str | None = None, policy: DeliveryPolicy | None = None) -> None:
        """Change the target URL and/or the policy; applies to events not yet sent."""
        if url is not None:
            self.url = url or None
        if policy is not None:
            self.policy = policy

    async def start(self) -> None:
        """Open the HTTP session and start the delivery worker."""
        if self._worker is None:
            self._session = aiohttp.ClientSession()
            self._worker = asyncio.create_task(self._deliver_forever(), name="webhook-sender")

    async def close(self) -> None:
        """Stop the worker (undelivered events stay ``pending``) and close the session."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        for task in self._in_flight:
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._in_flight.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def enqueue(
        self, event_id: str, event_type: str, body: bytes, *, url: str | None = None
    ) -> SentWebhook:
        """Hand one event to the sender; returns its record (updated as delivery goes on).

        ``url``: where this event goes, whatever the sender's URL (a partner whose
        every hook has its own target, as Odoo's webhook actions do).
        """
        record = SentWebhook(
            event_id=event_id,
            event_type=event_type,
            body=body.decode(),
            url=url or self.url,
            target=url or None,
        )
        self.records.append(record)
        self._queue.put_nowait(record)
        return record

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued event has an outcome."""
        await asyncio.wait_for(self._queue.join(), timeout_s)

    async def _deliver_forever(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            if self.policy.mode is DeliveryMode.REORDER:
                batch += await self._gather_more(self.policy.reorder_window_s)
                batch.reverse()
            for record in batch:
                if self.policy.concurrency == 1:
                    await self._deliver_one(record)
                    continue
                # Read at every event, so a policy changed while sending applies at once.
                while len(self._in_flight) >= self.policy.concurrency:
                    await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                task = asyncio.create_task(self._deliver_one(record))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)

    async def _deliver_one(self, record: SentWebhook) -> None:
        try:
            await self._deliver(record)
        except Exception as error:  # keep the worker alive whatever happens
            _log.exception("webhook %s could not be delivered", record.event_id)
            record.outcome, record.last_error = "failed", repr(error)
        finally:
            self._queue.task_done()

    async def _gather_more(self, window_s: float) -> list[SentWebhook]:
        gathered: list[SentWebhook] = []
        deadline = asyncio.get_running_loop().time() + window_s
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                gathered.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
                break
        return gathered

    async def _deliver(self, record: SentWebhook) -> None:
        record.url = record.target or self.url
        if record.url is None:
            record.outcome = "no_url"
            return
        policy = self.policy
        if policy.mode is DeliveryMode.LOSSY and self._random.random() < policy.drop_rate:
            record.outcome = "dropped"
            return
        copies = 2 if policy.mode is DeliveryMode.DUPLICATE else 1
        delivered = [await self._post_with_retries(record, record.url) for _ in range(copies)]
        record.outcome = "delivered" if any(delivered) else "failed"

    async def _post_with_retries(self, record: SentWebhook, url: str) -> bool:
        policy = self.policy
        body = record.body.encode()
        for attempt in range(policy.max_attempts):
            if attempt:
                await asyncio.sleep(policy.retry_backoff_s * 2 ** (attempt - 1))
            record.attempts += 1
            if await self._post_once(record, url, body, policy.timeout_s):
                record.deliveries += 1
                return True
        return False

    async def _post_once(
        self, record: SentWebhook, url: str, body: bytes, timeout_s: float
    ) -> bool:
        assert self._session is not None, "start() the sender before delivering"
        headers = {"Content-Type": "application/json", **self._sign(body)}
        try:
            async with self._session.post(
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,  # a webhook that redirects is a misconfigured receiver
            ) as response:
                record.last_status = response.status
                accepted = 200 <= response.status < 300
                record.last_error = None if accepted else f"HTTP {response.status}"
                return accepted
        except (aiohttp.ClientError, TimeoutError) as error:
            record.last_status = None
            record.last_error = f"{type(error).__name__}: {error}"
            return False


class WebhookSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PUT /_sandbox/webhook``."""

    url: str | None = None
    """New target; an empty string stops sending (events are then recorded as no_url)."""
    policy: DeliveryPolicy | None = None


def webhook_admin_routes(sender: WebhookSender) -> list[web.RouteDef]:
    """``GET /_sandbox/webhooks`` (what was sent) and ``PUT /_sandbox/webhook`` (where, how)."""

    async def list_sent(request: web.Request) -> web.Response:
        return json_response({"url": sender.url, "webhooks": sender.records})

    async def configure(request: web.Request) -> web.Response:
        try:
            body = await read_json(request, WebhookSettings)
        except BadBody as error:
            return json_response({"error": str(error)}, status=400)
        sender.configure(url=body.url, policy=body.policy)
        return json_response({"url": sender.url, "policy": sender.policy})

    return [web.get("/_sandbox/webhooks", list_sent), web.put("/_sandbox/webhook", configure)]
