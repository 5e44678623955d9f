"""A durable pull consumer that runs typed handlers: pull, decode, handle, settle.

Per message the outcome is one of: the handler returned (ack); it asked for
a retry or failed transiently (nak with a delay from the backoff schedule);
the message is invalid or the failure permanent, or the retries ran out
(dead letter, then term). Nothing is acked before its dead letter is stored.

Pull requests are kept outstanding for the free handler slots and each
message starts its handler as it arrives (:mod:`waybill_runtime.bus.pull`).
Every request is answered within its expiry, so a consumer that hears
nothing for longer has lost its requests or its subscription (nats-py can
stop receiving after a server restart): it opens a new inbox and asks again.

A consumer that gathers (``ConsumerOptions.gather_s``) asks one request at a
time instead, so that messages trickling in arrive together: a quiet consumer
waits on the server for one message, which is handed over at once; once it
has caught up with the stream it lets ``gather_s`` pass before asking for
what came meanwhile, in one ``no_wait`` request; while the server says more
is waiting it asks again at once. Each wake-up of the service (a socket read,
the handlers' tasks, the acks' write) then serves a group of messages
instead of one: about a third less CPU per order in the end-to-end
benchmark, for at most ``gather_s`` more latency per hop when busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from opentelemetry.trace import Span

from waybill_contracts import ContractError, Message, MessageContext, SubjectMap, decode
from waybill_runtime.bus.client import WaybillNatsClient
from waybill_runtime.bus.dead_letters import DeadLetter, now_utc, write_dead_letter
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.bus.pull import Delivery, PullInbox, delivery_of
from waybill_runtime.cancellation import cancel_and_wait
from waybill_runtime.logs import handled_message_var
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.outcomes import (
    Classification,
    Outcome,
    PermanentError,
    backoff_delay,
    classify,
)
from waybill_runtime.settings import RuntimeSettings
from waybill_runtime.telemetry import (
    dead_letter_span,
    process_span,
    trace_headers,
    tracing_active,
)

if TYPE_CHECKING:
    from waybill_runtime.service import ResourceKey, Runtime

log = logging.getLogger("waybill.bus")

S = TypeVar("S", bound=RuntimeSettings)
T = TypeVar("T")


@dataclass(slots=True)
class HandlerContext(Generic[S]):
    """What a handler knows about the message it handles, and how it answers.

    Generic over the service's settings type, so ``ctx.runtime.settings`` is
    the service's own settings and a handler typed for another service's
    context is refused by mypy.
    """

    envelope: MessageContext
    subject: str
    attempt: int
    stream_sequence: int
    publisher: Publisher
    runtime: Runtime[S]
    headers: Mapping[str, str] = field(default_factory=dict)
    """The message's NATS headers as they came (e.g. the marks of a replay)."""

    @property
    def settings(self) -> S:
        return self.runtime.settings

    def resource(self, key: ResourceKey[T]) -> T:
        """The service's resource ``key`` (see ``Service.resource``)."""
        return self.runtime.resource(key)

    @property
    def message_id(self) -> str:
        return self.envelope.id

    @property
    def correlation_id(self) -> str:
        return self.envelope.correlation_id

    async def publish(self, message: Message, *, fact_id: str | None = None) -> MessageContext:
        """Publish a message caused by this one (same correlation, causation = this id)."""
        return await self.publisher.publish(message, cause=self.envelope, fact_id=fact_id)


Handler = Callable[[Any, HandlerContext[S]], Awaitable[None]]
"""A message handler of a service whose settings are ``S``."""


def refusal_pause_s(refusals: int) -> float:
    """How long to wait before asking again after ``refusals`` refused requests in a row."""
    return min(0.5 * 2.0 ** min(refusals - 1, 10), 30.0)


async def _nak_quietly(msg: Msg) -> None:
    # If even the nak fails, the ack wait brings the message back.
    with contextlib.suppress(Exception):
        await msg.nak()


class _Ask(NamedTuple):
    """A pull request to send: how many messages, whether only those waiting now, and
    how long to let them gather before asking."""

    batch: int
    no_wait: bool = False
    after_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ConsumerOptions:
    """How one consumer pulls and how many messages it handles at once."""

    concurrency: int = 16
    fetch_batch: int = 64
    # How long a pull request waits on the server for messages.
    fetch_timeout_s: float = 2.0
    max_deliver: int = 8
    retry_backoff_s: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)
    ack_wait_s: float = 30.0
    # While messages keep coming, ask for the next ones at most this often, so
    # they arrive together (see the module's docstring); 0 asks at once.
    gather_s: float = 0.0

    @property
    def silence_limit_s(self) -> float:
        """Silence, with requests outstanding, after which the inbox is taken for lost."""
        return self.fetch_timeout_s + max(1.0, self.fetch_timeout_s / 2)


@dataclass
class Consumer:
    """Runs the handlers of one durable consumer of one stream."""

    nc: Client
    js: JetStreamContext
    subjects: SubjectMap
    service: str
    stream: str
    durable: str
    handlers: Mapping[type[Message], Handler[Any]]
    publisher: Publisher
    runtime: Runtime[Any]
    options: ConsumerOptions = field(default_factory=ConsumerOptions)
    metrics: MetricsRegistry | None = None

    def __post_init__(self) -> None:
        self._in_flight: dict[asyncio.Task[None], tuple[Msg, float]] = {}
        # Messages asked of the server and not yet delivered or given up.
        self._requested = 0
        # Requests the server refused in a row (reset by a delivery or an expiry).
        self._refusals = 0
        # Ask again once at least this many slots are free: fewer, fuller requests.
        self._wanted = max(1, min(self.options.fetch_batch, self.options.concurrency) // 2)
        self._room = asyncio.Event()
        self._stopping = asyncio.Event()
        self._inbox: PullInbox | None = None
        # Naks of messages that arrived too late to start, awaited by stop().
        self._handed_back: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self.bound = False
        # Gathering: messages delivered for the last request, and whether the
        # last of them said more is waiting (then there is nothing to gather).
        self._gathering = self.options.gather_s > 0
        self._brought = 0
        self._more_waiting = False
        # What the server last said is still pending; the lag gauge reads it
        # when scraped, not set at every delivery.
        self._pending = 0
        if self.metrics is not None:
            self.metrics.consumer_lag(self.durable).set_function(lambda: self._pending)
        # Waybill's client writes an ack in one step (see WaybillNatsClient.ack).
        self._ack: Callable[[Msg], Awaitable[None]] = (
            self.nc.ack if isinstance(self.nc, WaybillNatsClient) else Msg.ack
        )

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._pull_loop(), name=f"consume {self.durable}")
        self._keepalive = asyncio.create_task(
            self._keep_alive(), name=f"in-progress {self.durable}"
        )

    async def stop(self, deadline_s: float) -> int:
        """Stop pulling, give in-flight handlers ``deadline_s`` to finish.

        What the server delivers while stopping is nak'ed at once; handlers
        still running at the deadline are cancelled and their messages nak'ed,
        so they are redelivered (here or to another replica). Returns how
        many were cut off.
        """
        self._stopping.set()
        self._room.set()
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self._inbox is not None:
            with contextlib.suppress(Exception):
                await self._inbox.close()
        if self._handed_back:
            await asyncio.wait(self._handed_back)
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
                self._in_flight.pop(task, None)  # cancelled before it started
        if self._keepalive is not None:
            await cancel_and_wait(self._keepalive)
        self.bound = False
        return cut_off

    # -- pulling ---------------------------------------------------------------

    def _free(self) -> int:
        return self.options.concurrency - len(self._in_flight) - self._requested

    async def _open_inbox(self) -> PullInbox:
        old, self._inbox = self._inbox, None
        self._requested = 0
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        inbox = PullInbox(
            self.nc,
            stream=self.stream,
            durable=self.durable,
            on_message=self._delivered,
            on_ended=self._request_ended,
        )
        await inbox.open()
        self._inbox = inbox
        self.bound = True
        return inbox

    async def _pull_loop(self) -> None:
        options = self.options
        inbox: PullInbox | None = None
        while not self._stopping.is_set():
            try:
                if inbox is None:
                    inbox = await self._open_inbox()
                ask = self._gathered_request() if self._gathering else self._request()
                if ask is not None:
                    if self._refusals:
                        # The server refused the last request(s) (the consumer was
                        # deleted, JetStream is away): not ready, ask again later.
                        self.bound = False
                        await self._pause(refusal_pause_s(self._refusals))
                        if self._stopping.is_set():
                            break
                    if ask.after_s:
                        await self._pause(ask.after_s)
                        if self._stopping.is_set():
                            break
                        # Handlers may have finished meanwhile: as many as there is room for.
                        ask = ask._replace(batch=min(self._free(), options.fetch_batch))
                    await self._ask(inbox, ask)
                    continue
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), timeout=options.fetch_timeout_s)
                if self._requested > 0 and inbox.silent_for() > options.silence_limit_s:
                    log.warning(
                        "consumer %s heard nothing for %.1f s with %d message(s) requested; "
                        "opening a new pull inbox",
                        self.durable,
                        inbox.silent_for(),
                        self._requested,
                    )
                    inbox = None
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self._stopping.is_set():
                    break
                log.warning(
                    "pulling from consumer %s failed (%s: %s); trying again",
                    self.durable,
                    type(error).__name__,
                    error,
                )
                self.bound = False
                inbox = None
                await self._pause(1.0)

    def _request(self) -> _Ask | None:
        """The next request of a consumer that does not gather: for its free slots,
        once at least half a batch of them is free (fewer, fuller requests)."""
        free = self._free()
        return _Ask(min(free, self.options.fetch_batch)) if free >= self._wanted else None

    def _gathered_request(self) -> _Ask | None:
        """The next request of a gathering consumer.

        One request at a time. Quiet (the last request brought nothing): wait on
        the server for one message. Caught up (the last one brought messages and
        the server said none were left): let ``gather_s`` pass, then take what
        came meanwhile, all at once. Behind (more is waiting): take it now.
        """
        if self._requested:
            return None
        free = self._free()
        if self._brought == 0:
            return _Ask(1) if free >= 1 else None
        if free < self._wanted:
            return None
        after_s = 0.0 if self._more_waiting else self.options.gather_s
        return _Ask(min(free, self.options.fetch_batch), no_wait=True, after_s=after_s)

    async def _ask(self, inbox: PullInbox, ask: _Ask) -> None:
        if self._requested == 0:
            inbox.heard_at = time.monotonic()  # the silence starts now
        self.bound = True
        self._requested += ask.batch
        self._brought = 0
        await inbox.request(ask.batch, expires_s=self.options.fetch_timeout_s, no_wait=ask.no_wait)

    def _delivered(self, msg: Msg) -> None:
        self._refusals = 0
        if self._requested > 0:
            self._requested -= 1
            if self._requested == 0 and self._gathering:
                self._room.set()  # the request is filled: no status will end it
        try:
            delivery = delivery_of(msg)
        except Exception as error:
            # An ack subject of no known layout: nothing here could settle it.
            log.error(
                "could not read the delivery of %s on consumer %s (%s); "
                "it is redelivered after its ack wait",
                msg.subject,
                self.durable,
                error,
            )
            return
        if self._gathering:
            self._brought += 1
            self._more_waiting = delivery.pending > 0
        if self._stopping.is_set():
            # Too late to start: hand it straight back for redelivery.
            handing_back = asyncio.create_task(_nak_quietly(msg))
            self._handed_back.add(handing_back)
            handing_back.add_done_callback(self._handed_back.discard)
            return
        task = asyncio.create_task(self._run(msg, delivery))
        self._in_flight[task] = (msg, time.monotonic())

    def _request_ended(self, undelivered: int | None, refusal: str | None) -> None:
        if undelivered is None:
            # The server did not say how many will not come: start counting afresh.
            self._requested = 0
        else:
            self._requested = max(0, self._requested - undelivered)
        self._refusals = 0 if refusal is None else self._refusals + 1
        self._room.set()

    async def _run(self, msg: Msg, delivery: Delivery) -> None:
        """A delivery's task: handle and settle it, then free its slot.

        The slot is freed here, as the task ends, rather than by a done
        callback: that was one more callback through the event loop per message.
        """
        try:
            await self._handle(msg, delivery)
        except Exception as error:
            # Settling itself failed (the connection dropped during an ack, say):
            # the server redelivers the message once its ack wait runs out.
            log.error(
                "could not settle %s on consumer %s (%s: %s); it is redelivered after its ack wait",
                msg.subject,
                self.durable,
                type(error).__name__,
                error,
            )
        finally:
            self._in_flight.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            if not self._room.is_set() and self._free() >= self._wanted:
                self._room.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

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

    async def _handle(self, msg: Msg, delivery: Delivery) -> None:
        attempt = delivery.attempt
        started = time.perf_counter()
        self._pending = delivery.pending
        if attempt > 1 and self.metrics is not None:
            self.metrics.redelivered(self.durable).inc()
        try:
            decoded = decode(msg.subject, msg.headers, msg.data, self.subjects)
        except ContractError as error:
            await self._dead_letter(msg, "invalid message", error, attempt)
            return
        envelope = decoded.context
        handler = self.handlers.get(type(decoded.message))
        template = self.subjects.subject_template(msg.subject)
        # Log lines while handling it carry its correlation id and trace context.
        token = handled_message_var.set(envelope)
        try:
            if tracing_active():
                await self._handle_traced(
                    handler, decoded.message, msg, delivery, envelope, template
                )
            elif handler is None:
                raise self._unhandled(envelope)
            else:
                await handler(decoded.message, self._context(msg, delivery, envelope))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            await self._settle_failure(msg, error, attempt, template, started)
        else:
            await self._ack(msg)
            if self.metrics is not None:
                self.metrics.handler(self.durable, template).record(
                    Outcome.ACK, time.perf_counter() - started
                )
        finally:
            handled_message_var.reset(token)

    def _context(
        self, msg: Msg, delivery: Delivery, envelope: MessageContext
    ) -> HandlerContext[Any]:
        return HandlerContext(
            envelope=envelope,
            subject=msg.subject,
            attempt=delivery.attempt,
            stream_sequence=delivery.stream_sequence,
            publisher=self.publisher,
            runtime=self.runtime,
            headers=msg.headers or {},
        )

    def _unhandled(self, envelope: MessageContext) -> PermanentError:
        # The consumer's filter let through a type this service does not
        # handle: a deployment error that retrying cannot fix.
        return PermanentError(f"{self.service} has no handler for {envelope.type}")

    async def _handle_traced(
        self,
        handler: Handler[Any] | None,
        message: Message,
        msg: Msg,
        delivery: Delivery,
        envelope: MessageContext,
        template: str,
    ) -> None:
        """Run ``handler`` in a CONSUMER span, a child of the message's trace."""
        with process_span(
            template,
            message_id=envelope.id,
            consumer_group=self.durable,
            parent_headers=trace_headers(envelope),
        ) as span:
            if handler is None:
                raise self._unhandled(envelope)
            try:
                await handler(message, self._context(msg, delivery, envelope))
            except Exception as error:
                # Only on failure, only when traced: what happens next, on the span.
                self._note_failure(span, error, delivery.attempt)
                raise

    def _will_retry(self, verdict: Classification, attempt: int) -> bool:
        """Whether a failed attempt is handed back for another (else it is dead-lettered)."""
        return verdict.outcome is Outcome.RETRY and attempt < self.options.max_deliver

    def _note_failure(self, span: Span, error: Exception, attempt: int) -> None:
        # The delay has jitter, drawn when the message is handed back: not named here.
        attributes = {
            "waybill.delivery.attempt": attempt,
            "waybill.delivery.max_attempts": self.options.max_deliver,
        }
        will_retry = self._will_retry(classify(error), attempt)
        span.add_event("retry" if will_retry else "dead_letter", attributes)

    async def _settle_failure(
        self, msg: Msg, error: Exception, attempt: int, template: str, started: float
    ) -> None:
        verdict = classify(error)
        if self._will_retry(verdict, attempt):
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
            # A message near the server's max_payload does not fit in a letter
            # whole: the letter then keeps its start and points to the original.
            letter = await write_dead_letter(
                self.js, self.subjects, letter, max_payload=self.nc.max_payload
            )
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
        dead_letter_span(
            self.subjects.subject_template(msg.subject),
            headers=msg.headers,
            consumer_group=self.durable,
            reason=reason,
            error_type=letter.error_type,
            error_message=letter.error_message,
            attempts=attempt,
            dead_letter_stream=self.subjects.dlq_stream.name,
        )
        log.error(
            "dead-lettered %s after %d attempt(s): %s (%s: %s)%s",
            msg.subject,
            attempt,
            reason,
            letter.error_type,
            letter.error_message,
            (
                f"; body cut to {len(letter.original_body)} of {letter.original_size} bytes, "
                f"the original is {letter.original_stream} #{letter.original_sequence}"
                if letter.truncated
                else ""
            ),
        )
        if self.metrics is not None:
            self.metrics.handler(self.durable, self.subjects.subject_template(msg.subject)).record(
                Outcome.DEAD_LETTER, 0.0, letter.error_type
            )
        await msg.term()
