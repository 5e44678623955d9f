"""Delivering one notification over several channels, each made once, none blocking another.

A notification goes out as independent *steps*: the email, and one webhook
per subscribed endpoint. All steps of a message are tried together; a step
that succeeds or fails for good is settled and skipped on every redelivery,
and if any step has to wait (relay down, endpoint rate-limited) the message
is retried later, after the shortest wait any provider asked for.

Each attempt is a runtime :class:`~waybill_runtime.idempotency.OnceOnly`
effect, so no redelivery, replica or restart sends it twice. The first
attempt of every step of a notification is *one* effect, keyed by the
notification (its result holds the receipt of each step it sent); a failed
step moves to its own next attempt, keyed by notification, channel and
attempt number (a fresh key each). Per step, a small record in the
idempotency bucket keeps the attempt number, the earliest next try and the
final state.

Nearly every notification is sent whole on its first try, the first time
its message is handled. That costs two writes (the first try's intent and
its result, whatever the number of steps) and an event per step, and
nothing else: the intent is written only if it was never written
(:meth:`~waybill_runtime.idempotency.OnceOnly.run_new`), and a step record is
only ever written after that intent, so a notification whose first intent
is new has no record to read. A step's own record ("sent") is written only
if the message is to be handled again (another step waits): then a
redelivery skips it. A message handled again anyway (a lost ack, the same
event published twice) finds the first try's stored result, sends nothing,
and announces each step it sent again under the same event id, which the
stream takes as a duplicate within its window. A first try cut off before
its result was recorded is in doubt: while its intent is young it is taken
to be under way elsewhere (the message waits), after that as failed, and each
step it did not record as sent gets an attempt of its own (an email may then
come twice, never not at all: see :mod:`waybill_notifier.mailer`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from prometheus_client import Counter

from waybill_contracts import fact_id
from waybill_contracts.events import NotificationFailed, NotificationSent
from waybill_contracts.model import NotificationChannel
from waybill_notifier.attempts import EndpointGone, NotDelivered, Receipt, Undeliverable
from waybill_notifier.notifications import Notification
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.idempotency import Begun, EffectInProgress, OnceOnly
from waybill_runtime.outcomes import RetryLater

__all__ = ["Deliveries", "FirstTry", "Step", "StepRecord"]

log = logging.getLogger("waybill.notifier")


@dataclass(frozen=True)
class Step:
    """One channel of one notification: the email, or the webhook to one endpoint."""

    channel: NotificationChannel
    channel_key: str
    """Names the step within its notification: ``email`` or ``webhook.<endpoint key>``."""
    send: Callable[[], Awaitable[Receipt]]
    on_gone: Callable[[str], Awaitable[None]] | None = None
    """Called with the reason when the provider says it is gone for good (HTTP 410)."""
    recipient: str | None = None
    """Where it goes (the customer's email, the endpoint's name), for NotificationFailed."""


class StepRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Where a step stands, across redeliveries."""

    state: Literal["pending", "sent", "failed"] = "pending"
    failures: int = 0
    """Attempts that certainly failed; also the number of the next attempt."""
    not_before: float | None = None
    """Unix time before which the provider asked not to be tried again."""
    last_error: str | None = None


class FirstTry(msgspec.Struct, frozen=True, kw_only=True):
    """What a notification's first try sent: the receipt of each step, by channel key."""

    sent: dict[str, Receipt] = msgspec.field(default_factory=dict)


@dataclass(frozen=True)
class _Wait:
    """A step that must be tried again, after ``delay_s`` when the provider said so."""

    delay_s: float | None
    reason: str


@dataclass(frozen=True)
class _FirstTry:
    """A step sent on its first attempt, announced, and not recorded yet (``key``: its record)."""

    key: str


_SETTLED = None  # a step that needs nothing more


class Deliveries:
    """Runs the steps of notifications, once each, and reports them as events."""

    def __init__(
        self,
        ledger: KeyValue,
        once: OnceOnly[Receipt],
        first: OnceOnly[FirstTry],
        *,
        clock: Callable[[], float] = time.time,
        failures: Counter | None = None,
    ) -> None:
        self._ledger = ledger
        self._once = once
        self._first = first
        self._clock = clock
        # waybill_notifications_failed_total{channel, kind, permanent}: which were not sent.
        self._failures = failures
        self._decode = msgspec.json.Decoder(StepRecord).decode
        self._encode = msgspec.json.Encoder().encode

    async def deliver(
        self, notification: Notification, steps: Sequence[Step], ctx: HandlerContext[Any]
    ) -> None:
        """Run every step; raise :class:`RetryLater` while any of them has to wait."""
        first_key = f"notifier.notification.{notification.notification_id}.a0"
        outcomes: list[Receipt | BaseException] = []

        async def first_try() -> FirstTry:
            # Every step at once; each one's failure is its own (settled below).
            outcomes.extend(
                await asyncio.gather(*(step.send() for step in steps), return_exceptions=True)
            )
            return FirstTry(
                sent={
                    step.channel_key: outcome
                    for step, outcome in zip(steps, outcomes, strict=True)
                    if isinstance(outcome, Receipt)
                }
            )

        # A new first intent means no step record exists yet: nothing to read.
        begun = await self._first.run_new(first_key, first_try)
        runs: list[Coroutine[Any, Any, _Wait | _FirstTry | None]]
        if begun is Begun.EARLIER:
            runs = [self._run_recorded(notification, step, ctx, first_key) for step in steps]
        else:
            runs = [
                self._settle_first_try(notification, step, ctx, outcome)
                for step, outcome in zip(steps, outcomes, strict=True)
            ]
        results = await asyncio.gather(*runs, return_exceptions=True)
        unsettled = [r for r in results if r is not _SETTLED and not isinstance(r, _FirstTry)]
        if unsettled:
            # The message comes back: steps sent now are recorded so that it skips them.
            await self._record_sent([r for r in results if isinstance(r, _FirstTry)])
        for result in results:
            if isinstance(result, BaseException):
                # The other steps are settled or recorded; this one is retried.
                raise result
        waits = [result for result in results if isinstance(result, _Wait)]
        if waits:
            delays = [wait.delay_s for wait in waits]
            delay = None if None in delays else min(d for d in delays if d is not None)
            reasons = "; ".join(wait.reason for wait in waits)
            raise RetryLater(
                f"notification {notification.notification_id} waits for {len(waits)} of "
                f"{len(steps)} channel(s): {reasons}",
                delay_s=delay,
            )

    # -- one step ------------------------------------------------------------------

    async def _settle_first_try(
        self,
        notification: Notification,
        step: Step,
        ctx: HandlerContext[Any],
        outcome: Receipt | BaseException,
    ) -> _Wait | _FirstTry | None:
        """A step as its notification's first try left it: announced, or its failure recorded."""
        key = _step_key(notification, step)
        if isinstance(outcome, NotDelivered):
            return await self._not_delivered(
                notification, step, ctx, key, StepRecord(), None, outcome
            )
        if isinstance(outcome, Undeliverable):
            await self._undeliverable(notification, step, ctx, key, StepRecord(), None, outcome)
            return _SETTLED
        if isinstance(outcome, BaseException):
            # Unexpected: no record, so the next delivery gives the step an attempt of its own.
            raise outcome
        await self._announce(notification, step, ctx, outcome)
        return _FirstTry(key)

    async def _run_recorded(
        self, notification: Notification, step: Step, ctx: HandlerContext[Any], first_key: str
    ) -> _Wait | None:
        """A step tried before: its record says which attempt is next, or that it is settled."""
        key = _step_key(notification, step)
        record, revision = await self._read(key)
        if record.state != "pending":
            return _SETTLED
        if record.not_before is not None and record.not_before > self._clock():
            return _Wait(record.not_before - self._clock(), f"{step.channel_key} asked to wait")
        if revision is None:
            # No record: the step's first attempt was its notification's first try.
            try:
                # An intent left by a try that is over for sure (old, or released) is taken
                # as having sent nothing: steps it did not record as sent are tried again.
                first = await self._first.run(first_key, _nothing_sent)
            except EffectInProgress:
                return _Wait(None, f"{step.channel_key} attempt under way elsewhere")
            receipt = first.sent.get(step.channel_key)
            if receipt is not None:
                await self._announce(notification, step, ctx, receipt)
                await self._write(key, StepRecord(state="sent"), None)
                return _SETTLED
        attempt_key = f"{key}.a{record.failures}"
        try:
            receipt = await self._once.run(attempt_key, step.send)
        except NotDelivered as error:
            return await self._not_delivered(notification, step, ctx, key, record, revision, error)
        except Undeliverable as error:
            await self._undeliverable(notification, step, ctx, key, record, revision, error)
            return _SETTLED
        except EffectInProgress:
            return _Wait(None, f"{step.channel_key} attempt under way elsewhere")
        await self._announce(notification, step, ctx, receipt)
        # Recorded after the event: a crash in between repeats the event (same id), not the send.
        await self._write(key, StepRecord(state="sent", failures=record.failures), revision)
        return _SETTLED

    async def _announce(
        self, notification: Notification, step: Step, ctx: HandlerContext[Any], receipt: Receipt
    ) -> None:
        await ctx.publish(
            NotificationSent(
                notification_id=notification.notification_id,
                order_ref=notification.order_ref,
                channel=step.channel,
                template=notification.kind.value,
                recipient=receipt.recipient,
                provider_message_id=receipt.provider_message_id,
                sent_at=receipt.sent_at,
            ),
            fact_id=fact_id("notification-sent", notification.notification_id, step.channel_key),
        )

    async def _record_sent(self, first_tries: Sequence[_FirstTry]) -> None:
        written = await asyncio.gather(
            *(self._write(sent.key, StepRecord(state="sent"), None) for sent in first_tries),
            return_exceptions=True,
        )
        for sent, result in zip(first_tries, written, strict=True):
            if isinstance(result, Exception):
                # Not lost: a redelivery finds the attempt's result, sends nothing,
                # and announces it again under the same id.
                log.warning("could not record %s as sent (%s)", sent.key, result)

    async def _not_delivered(
        self,
        notification: Notification,
        step: Step,
        ctx: HandlerContext[Any],
        key: str,
        record: StepRecord,
        revision: int | None,
        error: NotDelivered,
    ) -> _Wait:
        failures = record.failures + 1
        delay = error.retry_after_s
        updated = StepRecord(
            failures=failures,
            not_before=None if delay is None else self._clock() + delay,
            last_error=str(error),
        )
        # Written before anything else: the next attempt gets a fresh once-only key.
        await self._write(key, updated, revision)
        log.warning(
            "%s of notification %s not delivered on attempt %d: %s",
            step.channel_key,
            notification.notification_id,
            failures,
            error,
        )
        await ctx.publish(
            self._count(_failed(notification, step, str(error), failures, permanent=False)),
            fact_id=fact_id(
                "notification-failed", notification.notification_id, step.channel_key, failures
            ),
        )
        return _Wait(delay, f"{step.channel_key}: {error}")

    async def _undeliverable(
        self,
        notification: Notification,
        step: Step,
        ctx: HandlerContext[Any],
        key: str,
        record: StepRecord,
        revision: int | None,
        error: Undeliverable,
    ) -> None:
        failures = record.failures + 1
        if isinstance(error, EndpointGone) and step.on_gone is not None:
            await step.on_gone(str(error))
        log.error(
            "%s of notification %s given up: %s",
            step.channel_key,
            notification.notification_id,
            error,
        )
        await ctx.publish(
            self._count(_failed(notification, step, str(error), failures, permanent=True)),
            fact_id=fact_id("notification-failed", notification.notification_id, step.channel_key),
        )
        await self._write(
            key, StepRecord(state="failed", failures=failures, last_error=str(error)), revision
        )

    def _count(self, failed: NotificationFailed) -> NotificationFailed:
        if self._failures is not None:
            self._failures.labels(
                str(failed.channel), failed.template, "true" if failed.permanent else "false"
            ).inc()
        return failed

    # -- the step records -------------------------------------------------------------

    async def _read(self, key: str) -> tuple[StepRecord, int | None]:
        try:
            entry = await self._ledger.get(key)
        except KeyNotFoundError:
            return StepRecord(), None
        if not entry.value:
            return StepRecord(), entry.revision
        return self._decode(entry.value), entry.revision

    async def _write(self, key: str, record: StepRecord, revision: int | None) -> None:
        # Compare-and-set: a concurrent delivery of the same message loses with
        # KeyWrongLastSequenceError, which the runtime retries.
        value = self._encode(record)
        if revision is None:
            await self._ledger.create(key, value)
        else:
            await self._ledger.update(key, value, last=revision)


def _step_key(notification: Notification, step: Step) -> str:
    return f"notifier.step.{notification.notification_id}.{step.channel_key}"


async def _nothing_sent() -> FirstTry:
    return FirstTry()


def _failed(
    notification: Notification, step: Step, reason: str, attempts: int, *, permanent: bool
) -> NotificationFailed:
    return NotificationFailed(
        notification_id=notification.notification_id,
        order_ref=notification.order_ref,
        channel=step.channel,
        template=notification.kind.value,
        reason=reason,
        attempts=attempts,
        permanent=permanent,
        failed_at=datetime.now(UTC),
        recipient=step.recipient,
    )
