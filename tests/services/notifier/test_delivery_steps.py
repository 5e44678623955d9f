"""The once-only steps of a notification, against a real KV bucket and scripted providers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from tests.services.notifier.harness import shipment_booked
from waybill_contracts import Message
from waybill_contracts.events import NotificationFailed, NotificationSent
from waybill_contracts.model import NotificationChannel
from waybill_notifier.attempts import EndpointGone, NotDelivered, Receipt, Undeliverable
from waybill_notifier.delivery import Deliveries, FirstTry, Step
from waybill_notifier.notifications import from_shipment_booked
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.bus.provisioning import ensure_bucket
from waybill_runtime.idempotency import OnceOnly
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.outcomes import RetryLater
from waybill_runtime.testing.counting import CountingKV

NOTIFICATION = from_shipment_booked(shipment_booked("WH/OUT/00500"))


class Published:
    """Stands in for a handler context: keeps what the steps publish."""

    @property
    def ctx(self) -> HandlerContext[Any]:
        return cast(HandlerContext[Any], self)

    def __init__(self) -> None:
        self.messages: list[tuple[Message, str | None]] = []

    async def publish(self, message: Message, *, fact_id: str | None = None) -> None:
        self.messages.append((message, fact_id))

    def of(self, kind: type[Message]) -> list[Any]:
        return [message for message, _ in self.messages if isinstance(message, kind)]


class Provider:
    """A provider that answers from a script, one entry per attempt, then accepts."""

    def __init__(self, *script: Exception) -> None:
        self.script = list(script)
        self.calls = 0

    async def send(self) -> Receipt:
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        return Receipt(recipient="someone", sent_at=datetime.now(UTC))


def step(provider: Provider, key: str = "email", **extra: Any) -> Step:
    channel = NotificationChannel.EMAIL if key == "email" else NotificationChannel.WEBHOOK
    return Step(channel=channel, channel_key=key, send=provider.send, **extra)


@pytest.fixture
async def kv(nc: NatsClient) -> KeyValue:
    return await ensure_bucket(nc.jetstream(), f"t{uuid.uuid4().hex[:10]}_idempotency")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def deliveries(kv: KeyValue, clock: Clock, in_doubt_after_s: float = 60.0) -> Deliveries:
    once = OnceOnly(kv, Receipt, in_doubt_after_s=in_doubt_after_s, clock=clock)
    first = OnceOnly(kv, FirstTry, in_doubt_after_s=in_doubt_after_s, clock=clock)
    return Deliveries(kv, once, first, clock=clock)


async def attempt(run: Callable[[], Awaitable[None]]) -> RetryLater | None:
    try:
        await run()
    except RetryLater as wait:
        return wait
    return None


def sent_ids(ctx: Published) -> set[str | None]:
    """The ids of the NotificationSent events: what the stream stores once each."""
    return {fid for message, fid in ctx.messages if isinstance(message, NotificationSent)}


async def test_a_sent_step_is_never_sent_again(kv: KeyValue) -> None:
    clock, ctx, provider = Clock(), Published(), Provider()
    runner = deliveries(kv, clock)
    for _ in range(3):
        await runner.deliver(NOTIFICATION, [step(provider)], ctx.ctx)
    assert provider.calls == 1
    # Handled again, the message announces the send again under the same id
    # (the stream's duplicate): the step was not recorded, its message being done.
    assert len(sent_ids(ctx)) == 1


async def test_a_step_sent_while_another_waits_is_not_announced_again(kv: KeyValue) -> None:
    clock, ctx = Clock(), Published()
    email, webhook = Provider(), Provider(NotDelivered("503"))
    runner = deliveries(kv, clock)
    steps = [step(email), step(webhook, "webhook.e1")]
    assert await attempt(lambda: runner.deliver(NOTIFICATION, steps, ctx.ctx)) is not None
    assert await attempt(lambda: runner.deliver(NOTIFICATION, steps, ctx.ctx)) is None
    assert (email.calls, webhook.calls) == (1, 2)
    assert len(ctx.of(NotificationSent)) == 2  # the email's once, the webhook's once


async def test_a_notification_sent_on_its_first_try_costs_two_writes_whatever_its_steps(
    kv: KeyValue,
) -> None:
    clock, ctx = Clock(), Published()
    counting = CountingKV(kv)
    once = OnceOnly(counting, Receipt, clock=clock)  # type: ignore[arg-type]
    first = OnceOnly(counting, FirstTry, clock=clock)  # type: ignore[arg-type]
    runner = Deliveries(counting, once, first, clock=clock)  # type: ignore[arg-type]
    email, webhook, other = Provider(), Provider(), Provider()
    steps = [step(email), step(webhook, "webhook.e1"), step(other, "webhook.e2")]
    await runner.deliver(NOTIFICATION, steps, ctx.ctx)
    assert (email.calls, webhook.calls, other.calls) == (1, 1, 1)
    assert len(sent_ids(ctx)) == 3
    # The first try's intent and its result, for the three steps together: before,
    # each step's first attempt had its own (six writes).
    assert (counting.reads, counting.writes) == (0, 2)


async def test_a_first_try_cut_off_is_made_again_step_by_step_once_its_intent_is_old(
    kv: KeyValue,
) -> None:
    clock, ctx = Clock(), Published()
    email, webhook = Provider(), Provider()
    steps = [step(email), step(webhook, "webhook.e1")]
    crashing = CrashBeforeResult(kv)
    dying = Deliveries(
        crashing,  # type: ignore[arg-type]
        OnceOnly(crashing, Receipt, clock=clock),  # type: ignore[arg-type]
        OnceOnly(crashing, FirstTry, clock=clock),  # type: ignore[arg-type]
        clock=clock,
    )
    with pytest.raises(ProcessDied):
        await dying.deliver(NOTIFICATION, steps, ctx.ctx)
    clock.now += 61  # the intent is in doubt: nobody is at it any more
    restarted, other_replica = deliveries(kv, clock), deliveries(kv, clock)
    await asyncio.gather(
        restarted.deliver(NOTIFICATION, steps, ctx.ctx),
        other_replica.deliver(NOTIFICATION, steps, ctx.ctx),
        return_exceptions=True,
    )
    await restarted.deliver(NOTIFICATION, steps, ctx.ctx)
    # Sent again once each (what may have gone out is not known: twice beats never),
    # however many deliveries take the cut-off try over.
    assert (email.calls, webhook.calls) == (2, 2)
    assert len(sent_ids(ctx)) == 2


async def test_a_failed_attempt_is_followed_by_a_fresh_one_at_once(kv: KeyValue) -> None:
    clock, ctx = Clock(), Published()
    provider = Provider(NotDelivered("relay down"), NotDelivered("relay down"))
    runner = deliveries(kv, clock)
    waits = [
        await attempt(lambda: runner.deliver(NOTIFICATION, [step(provider)], ctx.ctx))
        for _ in range(3)
    ]
    assert [w is not None for w in waits] == [True, True, False]
    assert waits[0] is not None and waits[0].delay_s is None  # the consumer's backoff applies
    assert provider.calls == 3
    assert [f.attempts for f in ctx.of(NotificationFailed)] == [1, 2]
    assert len(ctx.of(NotificationSent)) == 1


async def test_failed_attempts_and_given_up_steps_are_counted_by_channel_and_kind(
    kv: KeyValue,
) -> None:
    clock, ctx = Clock(), Published()
    metrics = MetricsRegistry("notifier")
    failures = metrics.counter(
        "waybill_notifications_failed_total", "failed", ("channel", "kind", "permanent")
    )
    once = OnceOnly(kv, Receipt, in_doubt_after_s=60.0, clock=clock)
    first = OnceOnly(kv, FirstTry, in_doubt_after_s=60.0, clock=clock)
    runner = Deliveries(kv, once, first, clock=clock, failures=failures)
    flaky = Provider(NotDelivered("relay down"))
    await attempt(lambda: runner.deliver(NOTIFICATION, [step(flaky)], ctx.ctx))
    gone = step(Provider(Undeliverable("no such user")), "webhook")
    await runner.deliver(NOTIFICATION, [gone], ctx.ctx)
    counted = {
        (s.labels["channel"], s.labels["permanent"]): s.value
        for family in metrics.collector_registry.collect()
        for s in family.samples
        if s.name == "waybill_notifications_failed_total"
    }
    assert counted == {("email", "false"): 1, ("webhook", "true"): 1}


async def test_a_concurrent_delivery_of_the_same_notification_waits_instead_of_sending(
    kv: KeyValue,
) -> None:
    clock, ctx = Clock(), Published()
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def slow_send() -> Receipt:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return Receipt(recipient="someone", sent_at=datetime.now(UTC))

    email = Step(channel=NotificationChannel.EMAIL, channel_key="email", send=slow_send)
    runner = deliveries(kv, clock)
    first = asyncio.create_task(runner.deliver(NOTIFICATION, [email], ctx.ctx))
    await asyncio.wait_for(started.wait(), timeout=30)
    second = await attempt(lambda: runner.deliver(NOTIFICATION, [email], ctx.ctx))
    release.set()
    await first
    assert second is not None and "under way" in str(second)
    assert calls == 1
    assert len(ctx.of(NotificationSent)) == 1


async def test_retry_after_keeps_the_step_from_being_tried_before_its_time(kv: KeyValue) -> None:
    clock, ctx = Clock(), Published()
    provider = Provider(NotDelivered("429", retry_after_s=30))
    runner = deliveries(kv, clock)

    async def run() -> None:
        await runner.deliver(NOTIFICATION, [step(provider, "webhook.e1")], ctx.ctx)

    first = await attempt(run)
    assert first is not None and first.delay_s == 30
    clock.now += 10
    early = await attempt(run)
    assert early is not None and early.delay_s == pytest.approx(20)
    assert provider.calls == 1
    clock.now += 20
    assert await attempt(run) is None
    assert provider.calls == 2


async def test_the_message_waits_for_the_shortest_wait_any_step_asked_for(kv: KeyValue) -> None:
    clock, ctx = Clock(), Published()
    slow = Provider(NotDelivered("429", retry_after_s=60))
    quick = Provider(NotDelivered("503", retry_after_s=5))
    runner = deliveries(kv, clock)
    wait = await attempt(
        lambda: runner.deliver(
            NOTIFICATION, [step(slow, "webhook.a"), step(quick, "webhook.b")], ctx.ctx
        )
    )
    assert wait is not None and wait.delay_s == 5


async def test_one_step_failing_unexpectedly_does_not_stop_the_others(kv: KeyValue) -> None:
    clock, ctx = Clock(), Published()
    broken = Provider(RuntimeError("bug"))
    fine = Provider()
    runner = deliveries(kv, clock, in_doubt_after_s=0.0)
    steps = [step(broken, "webhook.a"), step(fine, "email")]
    with pytest.raises(RuntimeError):
        await runner.deliver(NOTIFICATION, steps, ctx.ctx)
    clock.now += 1
    await runner.deliver(NOTIFICATION, steps, ctx.ctx)
    assert (broken.calls, fine.calls) == (2, 1)
    assert len(ctx.of(NotificationSent)) == 2


async def test_a_gone_endpoint_is_reported_once_and_told_to_disable(kv: KeyValue) -> None:
    clock, ctx = Clock(), Published()
    provider = Provider(EndpointGone("HTTP 410"))
    gone: list[str] = []

    async def on_gone(reason: str) -> None:
        gone.append(reason)

    runner = deliveries(kv, clock)
    for _ in range(2):
        await runner.deliver(
            NOTIFICATION,
            [step(provider, "webhook.e1", on_gone=on_gone)],
            ctx.ctx,
        )
    [failure] = ctx.of(NotificationFailed)
    assert failure.permanent and failure.channel is NotificationChannel.WEBHOOK
    assert gone == ["HTTP 410"]
    assert provider.calls == 1


async def test_an_undeliverable_step_settles_without_holding_the_message(kv: KeyValue) -> None:
    clock, ctx = Clock(), Published()
    provider = Provider(Undeliverable("550 no such user"))
    runner = deliveries(kv, clock)
    await runner.deliver(NOTIFICATION, [step(provider)], ctx.ctx)
    [failure] = ctx.of(NotificationFailed)
    assert failure.permanent and failure.reason == "550 no such user"


class ProcessDied(Exception):
    """The process ended here. Not an OSError or a NATS error: OnceOnly keeps trying to
    record a result through those (NATS away) for as long as the intent is fresh, 60 s,
    which a dead process never does and this test would only sit through."""


class CrashBeforeResult:
    """The real bucket; the write of an attempt's result never happens (the process died)."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        if b'"done"' in value:
            raise ProcessDied("the process died after the send")
        return await self._kv.update(key, value, last=last)

    def __getattr__(self, name: str) -> object:
        return getattr(self._kv, name)


async def test_a_crash_between_a_first_send_and_its_record_does_not_send_again(
    kv: KeyValue,
) -> None:
    clock, ctx, provider = Clock(), Published(), Provider()
    crashing = CrashBeforeResult(kv)
    dying = Deliveries(
        crashing,  # type: ignore[arg-type]
        OnceOnly(crashing, Receipt, clock=clock),  # type: ignore[arg-type]
        OnceOnly(crashing, FirstTry, clock=clock),  # type: ignore[arg-type]
        clock=clock,
    )
    with pytest.raises(ProcessDied):
        await dying.deliver(NOTIFICATION, [step(provider)], ctx.ctx)
    assert provider.calls == 1
    restarted = deliveries(kv, clock)  # a new process: nothing in memory
    wait = await attempt(lambda: restarted.deliver(NOTIFICATION, [step(provider)], ctx.ctx))
    assert wait is not None and "under way" in str(wait)
    assert provider.calls == 1
    assert ctx.of(NotificationSent) == []
