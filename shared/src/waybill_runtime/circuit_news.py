"""Circuit breaker news: each transition of a service's partner breakers, announced on the bus.

A breaker's state lives in the process that calls the partner; the control
tower (the auditor) learns it from ``PartnerCircuitChanged`` events. The
breaker's listener is synchronous and runs on the partner call path, so it
only puts the news in a bounded queue; one task publishes the queue in order.
A slow or absent NATS therefore never delays or breaks a call.

When a publish fails (NATS away, a timeout) the outage is logged once, and
the breaker's latest news is kept and published again every ``retry_s`` until
it goes through (a newer transition of the same breaker replaces it): the
tower may hear late, but never keeps a state the breaker has left.

Nothing is announced at start: every breaker starts closed, and a breaker
nobody announced is shown closed. The events stream keeps the announcements,
so an auditor started later reads them from its durable like any event.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from waybill_contracts.errors import ContractError
from waybill_contracts.events import CircuitStateName, PartnerCircuitChanged
from waybill_runtime.bus.publisher import NotAllowedToPublish, Publisher
from waybill_runtime.resilience.circuit import CircuitState

__all__ = ["CircuitNews", "bind_circuit_news", "bound_circuit_news", "instance_name"]

log = logging.getLogger(__name__)

_news_var: contextvars.ContextVar[CircuitNews | None] = contextvars.ContextVar(
    "waybill_circuit_news", default=None
)

_MAX_REASON = 500  # the contract's limits
_MAX_NAME = 100

_NAMES: dict[CircuitState, CircuitStateName] = {
    CircuitState.CLOSED: "closed",
    CircuitState.OPEN: "open",
    CircuitState.HALF_OPEN: "half_open",
}


def instance_name() -> str:
    """This process among the service's replicas: its host (a pod's name) and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def bind_circuit_news(news: CircuitNews | None) -> None:
    """Announce the transitions of breakers watched from here on (this task's context)."""
    _news_var.set(news)


def bound_circuit_news() -> CircuitNews | None:
    """The announcer bound in this context, if any (none outside a running service)."""
    return _news_var.get()


@dataclass(frozen=True, slots=True)
class _News:
    event: PartnerCircuitChanged
    fact_id: str
    sequence: int
    """Order of the transitions of this instance: a later one says more about the breaker."""


class CircuitNews:
    """Publishes one service instance's breaker transitions, in order, off the call path."""

    def __init__(
        self,
        publisher: Publisher,
        *,
        service: str,
        instance: str,
        retry_s: float = 5.0,
        capacity: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._publisher = publisher
        self._service = service
        self._instance = instance
        self._retry_s = retry_s
        self._clock = clock
        self._queue: asyncio.Queue[_News] = asyncio.Queue(capacity)
        # The latest news of each breaker that could not be published yet, by partner.
        self._owed: dict[str, _News] = {}
        # A try whose ack was lost may have been stored: every try of one piece of news
        # carries the same id, so JetStream keeps one (within its duplicate window).
        self._run = uuid.uuid4().hex
        self._sequence = 0
        self._sending = 0
        self._failing = False

    @property
    def unannounced(self) -> int:
        """Transitions queued or owed, not yet stored in the events stream."""
        return self._queue.qsize() + len(self._owed) + self._sending

    def announce(self, partner: str, old: CircuitState, new: CircuitState, reason: str) -> None:
        """Queue the news of one transition; returns at once and never raises."""
        self._sequence += 1
        event = PartnerCircuitChanged(
            service=self._service,
            instance=self._instance,
            partner=(partner or "partner")[:_MAX_NAME],
            state=_NAMES[new],
            previous_state=_NAMES[old],
            changed_at=self._clock(),
            reason=(reason or "unknown")[:_MAX_REASON],
        )
        news = _News(
            event, f"circuit:{self._instance}:{self._run}:{self._sequence}", self._sequence
        )
        try:
            self._queue.put_nowait(news)
        except asyncio.QueueFull:
            # Far behind: keep only the breaker's latest state, published once NATS keeps up.
            self._owe(news)

    @contextlib.asynccontextmanager
    async def running(self, *, drain_s: float = 2.0) -> AsyncIterator[CircuitNews]:
        """Publish while the block runs; at its end, up to ``drain_s`` to send what is queued."""
        task = asyncio.create_task(self._publish_forever(), name="circuit-news")
        try:
            yield self
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), drain_s)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._owed or not self._queue.empty():
                log.warning(
                    "stopping with %d breaker transition(s) not announced",
                    len(self._owed) + self._queue.qsize(),
                )

    async def _publish_forever(self) -> None:
        while True:
            try:
                news = await asyncio.wait_for(
                    self._queue.get(), self._retry_s if self._owed else None
                )
            except TimeoutError:
                await self._pay_owed()
                continue
            try:
                owed = self._owed.get(news.event.partner)
                if owed is not None and owed.sequence < news.sequence:
                    del self._owed[news.event.partner]  # this news is newer
                if await self._published(news):
                    await self._pay_owed()
                else:
                    self._owe(news)
            finally:
                self._queue.task_done()

    def _owe(self, news: _News) -> None:
        owed = self._owed.get(news.event.partner)
        if owed is None or owed.sequence < news.sequence:
            self._owed[news.event.partner] = news

    async def _pay_owed(self) -> None:
        for partner, news in list(self._owed.items()):
            if not await self._published(news):
                return
            if self._owed.get(partner) is news:
                del self._owed[partner]

    async def _published(self, news: _News) -> bool:
        event = news.event
        self._sending += 1
        try:
            await self._publisher.publish(event, fact_id=news.fact_id)
        except (ContractError, NotAllowedToPublish) as refused:
            # Refused before it was sent: trying again would be refused again.
            log.error("circuit %s news dropped: %s", event.partner, refused)
            return True
        except Exception as error:  # whatever NATS says, the calls go on
            if not self._failing:
                self._failing = True
                log.warning(
                    "cannot announce circuit %s %s -> %s (%s: %s); trying again every %g s",
                    event.partner,
                    event.previous_state,
                    event.state,
                    type(error).__name__,
                    error,
                    self._retry_s,
                )
            return False
        finally:
            self._sending -= 1
        if self._failing:
            self._failing = False
            log.info("announcing circuit breaker news again")
        return True
