"""A durable pull consumer that runs typed handlers: fetch, decode, handle, settle.

Per message the outcome is one of: the handler returned (ack); it asked for
a retry or failed transiently (nak with a delay from the backoff schedule);
the message is invalid or the failure permanent, or the retries ran out
(dead letter, then term). Nothing is acked before its dead letter is stored.

nats-py can stop receiving on a pull subscription after a server restart
without raising; a watchdog re-creates the subscription when fetches keep
coming back empty while the server says messages are pending, and after every
reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from waybill_contracts import ContractError, Message, MessageContext, SubjectMap, decode
from waybill_runtime.bus.dead_letters import DeadLetter, now_utc, write_dead_letter
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.cancellation import cancel_and_wait
from waybill_runtime.logs import correlation_id_var
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.outcomes import Outcome, PermanentError, backoff_delay, classify
from waybill_runtime.telemetry import process_span, tracing_active

if TYPE_CHECKING:
    from waybill_runtime.service import Runtime

log = logging.getLogger("waybill.bus")


@dataclass(slots=True)
class HandlerContext:
    """What a handler knows about the message it handles, and how it answers."""

    envelope: MessageContext
    subject: str
    attempt: int
    stream_sequence: int
    publisher: Publisher
    runtime: Runtime[Any] | None = None

    @property
    def message_id(self) -> str:
        return self.envelope.id

    @property
    def correlation_id(self) -> str:
        return self.envelope.correlation_id

    async def publish(self, message: Message, *, fact_id: str | None = None) -> MessageContext:
        """Publish a message caused by this one (same correlation, causation = this id)."""
        return await self.publisher.publish(message, cause=self.envelope, fact_id=fact_id)


Handler = Callable[[Any, HandlerContext], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class ConsumerOptions:
    """How one consumer fetches and how many messages it handles at once."""

    concurrency: int = 16
    fetch_batch: int = 64
    fetch_timeout_s: float = 2.0
    max_deliver: int = 8
    retry_backoff_s: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)
    ack_wait_s: float = 30.0
    # Consecutive empty fetches, while the server reports pending messages,
    # before the subscription is considered dead and re-created.
    stalled_fetches: int = 3


@dataclass
class Consumer:
    """Runs the handlers of one durable consumer of one stream."""

    js: JetStreamContext
    subjects: SubjectMap
    service: str
    stream: str
    durable: str
    handlers: Mapping[type[Message], Handler]
    publisher: Publisher
    options: ConsumerOptions = field(default_factory=ConsumerOptions)
    metrics: MetricsRegistry | None = None
    runtime: Runtime[Any] | None = None

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self._in_flight: dict[asyncio.Task[None], tuple[Msg, float]] = {}
        self._stopping = asyncio.Event()
        self._resubscribe = asyncio.Event()
        self._check_now = False
        self._delivered_at_last_check: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self.bound = False

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._fetch_loop(), name=f"consume {self.durable}")
        self._keepalive = asyncio.create_task(
            self._keep_alive(), name=f"in-progress {self.durable}"
        )

    def check_soon(self) -> None:
        """Called after a reconnect: check at the next empty fetch whether delivery stalled.

        Re-subscribing blindly would strand the messages the server already sent
        to the old subscription until their ack wait runs out.
        """
        self._check_now = True

    async def stop(self, deadline_s: float) -> int:
        """Stop fetching, give in-flight handlers ``deadline_s`` to finish.

        Handlers still running at the deadline are cancelled and their messages
        nak'ed, so they are redelivered (here or to another replica). Returns
        how many were cut off.
        """
        self._stopping.set()
        if self._task is not None:
            # A fetch under way ends by itself within its wait; a loop waiting
            # for handler slots would wait for the handlers, so it is cancelled
            # (the deadline below is what the handlers get).
            done, _ = await asyncio.wait({self._task}, timeout=self.options.fetch_timeout_s + 1.0)
            if not done:
                await cancel_and_wait(self._task)
        pending = list(self._in_flight)
        cut_off = 0
        if pending:
            _done, still = await asyncio.wait(pending, timeout=deadline_s)
            for task in still:
                msg, _started = self._in_flight.get(task, (None, 0.0))
                cut_off += 1
                if msg is not None:
                    with contextlib.suppress(Exception):
                        await msg.nak()
            for task in still:
                await cancel_and_wait(task)
        if self._keepalive is not None:
            await cancel_and_wait(self._keepalive)
        self.bound = False
        return cut_off

    # -- fetching --------------------------------------------------------------

    async def _subscribe(self) -> Any:
        sub = await self.js.pull_subscribe_bind(self.durable, self.stream)
        self.bound = True
        return sub

    async def _fetch_loop(self) -> None:
        sub: Any = None
        empty_fetches = 0
        while not self._stopping.is_set():
            try:
                if sub is None or self._resubscribe.is_set():
                    self._resubscribe.clear()
                    if sub is not None:
                        with contextlib.suppress(Exception):
                            await sub.unsubscribe()
                    sub = await self._subscribe()
                    empty_fetches = 0
                # Only ask for as many messages as there are free handler slots:
                # the rest stay with the server for other replicas.
                # Wait for half a batch of free slots (or all of them when the
                # consumer is smaller): fewer, fuller pull requests under load.
                wanted = max(1, min(self.options.fetch_batch, self.options.concurrency) // 2)
                free = 0
                while free < wanted:
                    await self._slots.acquire()
                    free += 1
                while free < self.options.fetch_batch and not self._slots.locked():
                    await self._slots.acquire()
                    free += 1
                if self._stopping.is_set():
                    # Stopped while waiting for slots: fetch nothing more.
                    for _ in range(free):
                        self._slots.release()
                    break
                try:
                    msgs = await sub.fetch(free, timeout=self.options.fetch_timeout_s)
                except BaseException:
                    for _ in range(free):
                        self._slots.release()
                    raise
                for _ in range(free - len(msgs)):
                    self._slots.release()
                empty_fetches = 0
                for msg in msgs:
                    task = asyncio.create_task(self._handle(msg))
                    self._in_flight[task] = (msg, time.monotonic())
                    task.add_done_callback(self._finished)
            except (nats.errors.TimeoutError, TimeoutError):
                empty_fetches += 1
                if self._check_now or empty_fetches >= self.options.stalled_fetches:
                    empty_fetches = 0
                    self._check_now = False
                    await self._check_stalled()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self._stopping.is_set():
                    break
                log.warning(
                    "fetch on consumer %s failed (%s: %s); re-subscribing",
                    self.durable,
                    type(error).__name__,
                    error,
                )
                self.bound = False
                sub = None
                await self._pause(1.0)
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _check_stalled(self) -> None:
        """Empty fetches are normal when idle; with messages pending they may mean a dead one.

        One look is not enough: messages published a moment ago are pending
        and will come with the next fetch. Delivery has stalled only when the
        server reports pending messages twice in a row and delivered none in
        between.
        """
        try:
            info = await self.js.consumer_info(self.stream, self.durable)
        except Exception as error:
            log.warning("cannot read consumer %s (%s)", self.durable, error)
            return
        pending = info.num_pending or 0
        delivered = info.delivered.consumer_seq if info.delivered is not None else 0
        if self.metrics is not None:
            self.metrics.consumer_lag(self.durable).set(pending)
        if pending == 0:
            self._delivered_at_last_check = None
            return
        stalled = self._delivered_at_last_check == delivered
        self._delivered_at_last_check = delivered
        if stalled and (info.num_ack_pending or 0) < self.options.concurrency:
            log.warning(
                "consumer %s has %d pending messages but delivers none; re-subscribing",
                self.durable,
                pending,
            )
            self._delivered_at_last_check = None
            self._resubscribe.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._slots.release()

    async def _keep_alive(self) -> None:
        """Tell the server that long-running handlers are still at work (no redelivery)."""
        period = max(self.options.ack_wait_s / 3, 0.5)
        while True:
            await asyncio.sleep(period)
            threshold = time.monotonic() - period
            for msg, started in list(self._in_flight.values()):
                if started < threshold:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    # -- handling --------------------------------------------------------------

    async def _handle(self, msg: Msg) -> None:
        meta = msg.metadata
        attempt = meta.num_delivered
        started = time.perf_counter()
        try:
            decoded = decode(msg.subject, msg.headers, msg.data, self.subjects)
        except ContractError as error:
            await self._dead_letter(msg, "invalid message", error, attempt)
            return
        envelope = decoded.context
        handler = self.handlers.get(type(decoded.message))
        template = self.subjects.subject_template(msg.subject)
        token = correlation_id_var.set(envelope.correlation_id)
        try:
            span = (
                process_span(
                    template,
                    message_id=envelope.id,
                    consumer_group=self.durable,
                    parent_headers=msg.headers or {},
                )
                if tracing_active()
                else contextlib.nullcontext()
            )
            with span:
                if handler is None:
                    # The consumer's filter let through a type this service does
                    # not handle: a deployment error that retrying cannot fix.
                    raise PermanentError(f"{self.service} has no handler for {envelope.type}")
                context = HandlerContext(
                    envelope=envelope,
                    subject=msg.subject,
                    attempt=attempt,
                    stream_sequence=meta.sequence.stream,
                    publisher=self.publisher,
                    runtime=self.runtime,
                )
                await handler(decoded.message, context)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            await self._settle_failure(msg, error, attempt, template, started)
        else:
            await msg.ack()
            if self.metrics is not None:
                self.metrics.handler(self.durable, template).record(
                    Outcome.ACK, time.perf_counter() - started
                )
        finally:
            correlation_id_var.reset(token)

    async def _settle_failure(
        self, msg: Msg, error: Exception, attempt: int, template: str, started: float
    ) -> None:
        verdict = classify(error)
        if verdict.outcome is Outcome.RETRY and attempt < self.options.max_deliver:
            delay = verdict.delay_s
            if delay is None:
                delay = backoff_delay(attempt, self.options.retry_backoff_s)
            log.warning(
                "handling %s failed on attempt %d (%s: %s); retrying in %.1f s",
                msg.subject,
                attempt,
                verdict.error_type,
                verdict.reason,
                delay,
            )
            if self.metrics is not None:
                self.metrics.handler(self.durable, template).record(
                    Outcome.RETRY, time.perf_counter() - started, verdict.error_type
                )
            await msg.nak(delay=delay)
            return
        reason = "retries exhausted" if verdict.outcome is Outcome.RETRY else "permanent error"
        await self._dead_letter(msg, reason, error, attempt, verdict.error_type)

    async def _dead_letter(
        self, msg: Msg, reason: str, error: Exception, attempt: int, error_type: str | None = None
    ) -> None:
        meta = msg.metadata
        letter = DeadLetter(
            service=self.service,
            consumer=self.durable,
            reason=reason,
            error_type=error_type or type(error).__name__,
            error_message=str(error) or type(error).__name__,
            attempts=attempt,
            failed_at=now_utc(),
            original_subject=msg.subject,
            original_headers=dict(msg.headers or {}),
            original_body=msg.data,
            original_stream=meta.stream,
            original_sequence=meta.sequence.stream,
        )
        try:
            await write_dead_letter(self.js, self.subjects, letter)
        except Exception as publish_error:
            # The dead letter is not stored: keep the original instead.
            log.error(
                "could not store dead letter for %s (%s); the message will be redelivered",
                msg.subject,
                publish_error,
            )
            with contextlib.suppress(Exception):
                await msg.nak(delay=backoff_delay(attempt, self.options.retry_backoff_s))
            return
        log.error(
            "dead-lettered %s after %d attempt(s): %s (%s: %s)",
            msg.subject,
            attempt,
            reason,
            letter.error_type,
            letter.error_message,
        )
        if self.metrics is not None:
            self.metrics.handler(self.durable, self.subjects.subject_template(msg.subject)).record(
                Outcome.DEAD_LETTER, 0.0, letter.error_type
            )
        await msg.term()
