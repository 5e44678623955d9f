"""No message leaves a stream unrecorded: dead letters from JetStream's own advisories.

A handler's verdict makes a dead letter (:mod:`waybill_runtime.bus.consumer`).
Without one (the process was killed on every delivery, a handler hung past
its ack wait, writing the letter kept failing) the server stops delivering
once ``max_deliver`` is spent and says so only in an advisory,
``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>``; a message
terminated by something other than the runtime likewise only in
``...MSG_TERMINATED...``. :class:`AdvisoryWatcher` listens to both for the
events and commands streams, reads the original by its stream sequence and
writes the dead letter the consumer's service would have written.

The letter has the id the runtime would give it (service, consumer, stream,
sequence, deliveries), so when the runtime did write one (a term after a
verdict) JetStream drops this one as a duplicate: at most one letter per
message and consumer. Advisories are core NATS messages: one that comes
while no watcher runs is not seen (see the runtime guide).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from waybill_contracts import SubjectMap
from waybill_runtime.bus.dead_letter_format import DeadLetter, dead_letter_message, fit_within
from waybill_runtime.cancellation import cancel_and_wait
from waybill_runtime.metrics import MetricsRegistry

if TYPE_CHECKING:
    from waybill_runtime.service import Runtime

__all__ = [
    "MAX_DELIVERIES_REASON",
    "TERMINATED_REASON",
    "AdvisoryWatcher",
    "ConsumerAdvisory",
    "letter_for",
    "record_advisory",
    "service_of_durable",
]

log = logging.getLogger("waybill.bus")

MAX_DELIVERIES_REASON = "max deliveries exhausted"
TERMINATED_REASON = "terminated without a dead letter"

_MAX_DELIVER_TYPE = "io.nats.jetstream.advisory.v1.max_deliver"
_TERMINATED_TYPE = "io.nats.jetstream.advisory.v1.terminated"
_PURPOSES = ("events", "commands")


class ConsumerAdvisory(msgspec.Struct, frozen=True, kw_only=True):
    """The fields Waybill reads of a max-deliveries or terminated advisory."""

    type: str
    stream: str
    consumer: str
    stream_seq: int
    deliveries: int
    timestamp: datetime | None = None
    reason: str = ""


_decode_advisory = msgspec.json.Decoder(ConsumerAdvisory).decode


def service_of_durable(durable: str) -> str:
    """The service a Waybill durable belongs to (``wms-bridge-events`` -> ``wms-bridge``)."""
    for purpose in _PURPOSES:
        if durable.endswith(f"-{purpose}"):
            return durable.removesuffix(f"-{purpose}")
    return durable


def letter_for(
    advisory: ConsumerAdvisory,
    *,
    subject: str,
    headers: dict[str, str],
    body: bytes,
    found: bool,
) -> DeadLetter:
    """The dead letter that records the message ``advisory`` is about."""
    exhausted = advisory.type == _MAX_DELIVER_TYPE
    if exhausted:
        error = (
            f"{advisory.consumer} delivered it {advisory.deliveries} time(s) and no handler "
            "settled it (killed, hung past its ack wait, or its dead letter could not be stored)"
        )
    else:
        error = f"{advisory.consumer} terminated it without a dead letter" + (
            f": {advisory.reason}" if advisory.reason else ""
        )
    if not found:
        error += f"; the original is no longer in {advisory.stream}"
    return DeadLetter(
        service=service_of_durable(advisory.consumer),
        consumer=advisory.consumer,
        reason=MAX_DELIVERIES_REASON if exhausted else TERMINATED_REASON,
        error_type="MaxDeliveriesExhausted" if exhausted else "Terminated",
        error_message=error,
        attempts=advisory.deliveries,
        failed_at=(advisory.timestamp or datetime.now(UTC)).astimezone(UTC),
        original_subject=subject,
        original_headers=headers,
        original_body=body,
        original_stream=advisory.stream,
        original_sequence=advisory.stream_seq,
    )


async def record_advisory(
    js: JetStreamContext, subjects: SubjectMap, advisory: ConsumerAdvisory, *, max_payload: int
) -> DeadLetter | None:
    """Write the dead letter for ``advisory``'s message; ``None`` when one existed already."""
    try:
        original = await js.get_msg(advisory.stream, advisory.stream_seq)
    except NotFoundError:
        subject, headers, body, found = "", {}, b"", False
    else:
        subject = original.subject or ""
        headers, body, found = dict(original.headers or {}), original.data or b"", True
    letter = fit_within(
        letter_for(advisory, subject=subject, headers=headers, body=body, found=found), max_payload
    )
    dl_headers, dl_body = dead_letter_message(letter)
    ack = await js.publish(subjects.dlq_subject(letter.service), dl_body, headers=dl_headers)
    return None if ack.duplicate else letter


class AdvisoryWatcher:
    """Turns the advisories of the events and commands streams' consumers into dead letters."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        subjects: SubjectMap,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self.nc, self.js, self.subjects = nc, js, subjects
        self._subscriptions: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._recorded = (
            metrics.counter(
                "waybill_unsettled_dead_letters_total",
                "Dead letters written from JetStream advisories: messages no handler settled.",
                ("consumer", "reason"),
            )
            if metrics is not None
            else None
        )

    async def start(self) -> None:
        for subject in self.subjects.advisory_subjects():
            self._subscriptions.append(await self.nc.subscribe(subject, cb=self._received))

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()
        self._subscriptions.clear()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10.0)
        for task in list(self._tasks):
            await cancel_and_wait(task)

    async def _received(self, msg: Msg) -> None:
        # Fetching and writing take round trips: not in the subscription's callback.
        task = asyncio.create_task(self._record(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, msg: Msg) -> None:
        try:
            advisory = _decode_advisory(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            log.error("advisory on %s is not one Waybill reads: %s", msg.subject, error)
            return
        if advisory.type not in (_MAX_DELIVER_TYPE, _TERMINATED_TYPE):
            return
        for attempt in range(1, 6):
            try:
                letter = await record_advisory(
                    self.js, self.subjects, advisory, max_payload=self.nc.max_payload
                )
            except Exception as error:
                log.warning(
                    "could not record %s #%d from %s's advisory (attempt %d: %s: %s)",
                    advisory.stream,
                    advisory.stream_seq,
                    advisory.consumer,
                    attempt,
                    type(error).__name__,
                    error,
                )
                await asyncio.sleep(min(2.0**attempt, 10.0))
                continue
            break
        else:
            log.error(
                "gave up recording %s #%d (%s); it is still in its stream: look at it with "
                "`nats stream get %s %d`",
                advisory.stream,
                advisory.stream_seq,
                advisory.consumer,
                advisory.stream,
                advisory.stream_seq,
            )
            return
        if letter is None:
            return  # the consumer's own letter is there
        log.error(
            "dead-lettered %s #%d for %s: %s (%s)",
            advisory.stream,
            advisory.stream_seq,
            letter.consumer,
            letter.reason,
            letter.error_message,
        )
        if self._recorded is not None:
            self._recorded.labels(letter.consumer, letter.reason).inc()


@contextlib.asynccontextmanager
async def recording_unsettled(runtime: Runtime[Any]) -> AsyncIterator[None]:
    """Dead letters for messages no handler settled, while the service runs (the mesh's watcher)."""
    watcher = AdvisoryWatcher(runtime.nc, runtime.js, runtime.subjects, runtime.metrics)
    await watcher.start()
    try:
        yield
    finally:
        await watcher.stop()
