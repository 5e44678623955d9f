"""Effects once per business key, on a real KV bucket."""

from __future__ import annotations

import asyncio
import functools

import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.kv import KeyValue

from waybill_runtime.bus.provisioning import ensure_bucket
from waybill_runtime.idempotency import Begun, EffectInProgress, OnceOnly, kv_key
from waybill_runtime.outcomes import TransientError


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def bucket(nc: NatsClient, nats_prefix: str) -> KeyValue:
    return await ensure_bucket(nc.jetstream(), f"{nats_prefix}_idempotency")


async def test_a_completed_effect_is_not_repeated(bucket: KeyValue) -> None:
    calls: list[str] = []

    async def buy() -> str:
        calls.append("buy")
        return "LABEL-1"

    once = OnceOnly(bucket, str)
    assert await once.run("label:shp-1", buy) == "LABEL-1"
    assert await once.run("label:shp-1", buy) == "LABEL-1"
    assert calls == ["buy"]
    assert await once.result_of("label:shp-1") == "LABEL-1"
    assert await once.result_of("label:shp-2") is None


async def test_a_failed_attempt_lets_the_next_one_try_at_once(bucket: KeyValue) -> None:
    calls: list[int] = []

    async def flaky() -> int:
        calls.append(len(calls))
        if len(calls) == 1:
            raise TransientError("carrier answered 503")
        return 7

    once = OnceOnly(bucket, int, clock=Clock())
    with pytest.raises(TransientError):
        await once.run("label:shp-3", flaky)
    assert await once.run("label:shp-3", flaky) == 7
    assert calls == [0, 1]


async def test_a_young_intent_elsewhere_is_left_alone_until_in_doubt(bucket: KeyValue) -> None:
    clock = Clock()
    second = OnceOnly(bucket, str, clock=clock)
    calls: list[str] = []
    # Another worker recorded its intent a moment ago and is (or was) mid-call.
    await bucket.put(kv_key("label:shp-4"), b'{"state":"intent","at":1000000.0}')

    async def nothing_found() -> str | None:
        return None

    async def buy() -> str:
        calls.append("buy")
        return "LABEL-4"

    with pytest.raises(EffectInProgress):
        await second.run("label:shp-4", buy, recover=nothing_found)
    clock.now += 120  # the other worker is long gone
    assert await second.run("label:shp-4", buy, recover=nothing_found) == "LABEL-4"
    assert calls == ["buy"]


async def test_recover_finds_the_effect_an_interrupted_call_made(bucket: KeyValue) -> None:
    calls: list[str] = []
    await bucket.put(kv_key("label:shp-5"), b'{"state":"intent","at":0.0}')

    async def found_at_carrier() -> str | None:
        return "LABEL-FOUND"

    async def buy() -> str:
        calls.append("buy")
        return "LABEL-NEW"

    once = OnceOnly(bucket, str)
    assert await once.run("label:shp-5", buy, recover=found_at_carrier) == "LABEL-FOUND"
    assert calls == []
    assert await once.result_of("label:shp-5") == "LABEL-FOUND"


class CountingBucket:
    """The real bucket, counting the round trips made through it."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        method = getattr(self._kv, name)

        async def counted(*args: object, **kwargs: object) -> object:
            self.calls.append(name)
            return await method(*args, **kwargs)

        return counted


async def test_a_repeat_of_a_known_result_costs_no_round_trip(bucket: KeyValue) -> None:
    counting = CountingBucket(bucket)
    once: OnceOnly[str] = OnceOnly(counting, str)  # type: ignore[arg-type]

    async def publish() -> str:
        return "msg-1"

    assert await once.run("wms-fact:f1", publish) == "msg-1"
    made = len(counting.calls)
    assert await once.run("wms-fact:f1", publish) == "msg-1"
    assert await once.result_of("wms-fact:f1") == "msg-1"
    assert len(counting.calls) == made == 2  # the intent and the result, nothing after


async def test_only_the_most_recent_results_are_kept_in_memory(bucket: KeyValue) -> None:
    counting = CountingBucket(bucket)
    once: OnceOnly[int] = OnceOnly(counting, int, remembered=2)  # type: ignore[arg-type]
    for n in range(3):
        await once.run(f"fact:{n}", functools.partial(_value, n))
    counting.calls.clear()
    assert await once.run("fact:2", lambda: _value(99)) == 2  # remembered
    assert counting.calls == []
    assert await once.run("fact:0", lambda: _value(99)) == 0  # forgotten: read from the bucket
    assert counting.calls != []


async def _value(n: int) -> int:
    return n


async def test_an_effect_recorded_by_a_recovering_attempt_meanwhile_is_not_an_error(
    bucket: KeyValue,
) -> None:
    first, second = OnceOnly(bucket, str), OnceOnly(bucket, str)
    in_call = asyncio.Event()
    let_go = asyncio.Event()

    async def slow_publish() -> str:
        in_call.set()
        await let_go.wait()
        return "msg-A"

    async def publish_again() -> str:
        return "msg-B"

    running = asyncio.create_task(first.run("wms-fact:f2", slow_publish, recover=publish_again))
    await in_call.wait()
    # A second copy of the fact arrives; its recovery republishes and records.
    assert await second.run("wms-fact:f2", publish_again, recover=publish_again) == "msg-B"
    let_go.set()
    assert await running == "msg-A"  # raised "wrong last sequence" before


async def test_a_recovery_that_finishes_after_the_first_attempt_is_not_an_error(
    bucket: KeyValue,
) -> None:
    first, second = OnceOnly(bucket, str), OnceOnly(bucket, str)
    in_call = asyncio.Event()
    first_done = asyncio.Event()

    async def publish() -> str:
        in_call.set()
        return "msg-A"

    async def recover_slowly() -> str:
        await first_done.wait()
        return "msg-B"

    async def hold_first() -> str:
        result = await publish()
        return result

    await first.run("wms-fact:f3", hold_first)  # done: intent then result
    # Reset to an intent, as if the first attempt were still mid-call...
    entry = await bucket.get(kv_key("wms-fact:f3"))
    await bucket.update(kv_key("wms-fact:f3"), b'{"state":"intent","at":0.0}', last=entry.revision)
    recovering = asyncio.create_task(second.run("wms-fact:f3", publish, recover=recover_slowly))
    await asyncio.sleep(0.05)
    # ...and now it records its result before the recovery does.
    entry = await bucket.get(kv_key("wms-fact:f3"))
    await bucket.update(
        kv_key("wms-fact:f3"), b'{"state":"done","at":1.0,"result":"msg-A"}', last=entry.revision
    )
    first_done.set()
    assert await recovering == "msg-B"  # raised "wrong last sequence" before


async def test_a_deleted_key_is_as_good_as_never_written(bucket: KeyValue) -> None:
    calls: list[str] = []

    async def buy() -> str:
        calls.append("buy")
        return f"LABEL-{len(calls)}"

    assert await OnceOnly(bucket, str).run("label:shp-9", buy) == "LABEL-1"
    await bucket.delete(kv_key("label:shp-9"))
    assert await OnceOnly(bucket, str).run("label:shp-9", buy) == "LABEL-2"
    assert calls == ["buy", "buy"]


class UnreachableForResults:
    """The real bucket, except that the next ``failures`` writes of a result time out (NATS
    restarting between the effect and its record); ``None``: every one does."""

    def __init__(self, kv: KeyValue, failures: int | None) -> None:
        self._kv = kv
        self.failures = failures

    def __getattr__(self, name: str) -> object:
        return getattr(self._kv, name)

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        if b'"done"' in value and (self.failures is None or self.failures > 0):
            if self.failures is not None:
                self.failures -= 1
            raise NatsTimeoutError
        revision: int = await self._kv.update(key, value, last=last)
        return revision


async def test_a_result_the_bucket_could_not_take_at_once_is_recorded_and_never_made_again(
    bucket: KeyValue,
) -> None:
    calls: list[str] = []

    async def send() -> str:  # an email: nothing to look up afterwards
        calls.append("send")
        return "mail-1"

    flaky = UnreachableForResults(bucket, failures=3)
    once: OnceOnly[str] = OnceOnly(flaky, str)  # type: ignore[arg-type]
    assert await once.run("email:n-1", send) == "mail-1"
    assert flaky.failures == 0
    # Another replica, given the same message, finds the result and sends nothing.
    assert await OnceOnly(bucket, str).run("email:n-1", send) == "mail-1"
    assert calls == ["send"]


async def test_a_result_never_recorded_is_still_not_made_again_by_the_same_process(
    bucket: KeyValue,
) -> None:
    calls: list[str] = []

    async def send() -> str:
        calls.append("send")
        return "mail-2"

    unreachable = UnreachableForResults(bucket, failures=None)
    once: OnceOnly[str] = OnceOnly(unreachable, str, in_doubt_after_s=0.5)  # type: ignore[arg-type]
    with pytest.raises(NatsTimeoutError):
        await once.run("email:n-2", send)
    # The redelivery of the failed message, here: the effect is known, not made again.
    assert await once.run("email:n-2", send) == "mail-2"
    assert calls == ["send"]


async def test_run_new_makes_the_effect_only_for_a_key_never_written(bucket: KeyValue) -> None:
    counting = CountingBucket(bucket)
    once: OnceOnly[str] = OnceOnly(counting, str)  # type: ignore[arg-type]
    made: list[str] = []

    async def send() -> str:
        made.append("sent")
        return "receipt"

    assert await once.run_new("mail:n1", send) == "receipt"
    assert counting.calls == ["update", "update"]  # the intent and the result, no read
    counting.calls.clear()
    assert await once.run_new("mail:n1", send) is Begun.EARLIER  # remembered: no round trip
    assert counting.calls == []
    elsewhere: OnceOnly[str] = OnceOnly(counting, str)  # type: ignore[arg-type]
    assert await elsewhere.run_new("mail:n1", send) is Begun.EARLIER  # one refused write
    assert counting.calls == ["update"]
    assert made == ["sent"]
    assert await elsewhere.run("mail:n1", send) == "receipt"  # the usual way reads the result
    assert made == ["sent"]


async def test_run_deduplicated_reads_once_writes_once_and_shares_an_attempt(
    bucket: KeyValue,
) -> None:
    counting = CountingBucket(bucket)
    once: OnceOnly[str] = OnceOnly(counting, str)  # type: ignore[arg-type]
    made: list[str] = []
    going = asyncio.Event()

    async def publish() -> str:
        made.append("published")
        await going.wait()
        return "msg-1"

    callers = [asyncio.create_task(once.run_deduplicated("fact:f1", publish)) for _ in range(3)]
    await asyncio.sleep(0.05)
    going.set()
    assert await asyncio.gather(*callers) == ["msg-1"] * 3
    assert made == ["published"]  # the three callers shared one attempt
    assert counting.calls == ["get", "update"]  # no intent: one read, the result
    counting.calls.clear()
    assert await once.run_deduplicated("fact:f1", publish) == "msg-1"
    assert counting.calls == []  # remembered
    elsewhere: OnceOnly[str] = OnceOnly(counting, str)  # type: ignore[arg-type]
    assert await elsewhere.run_deduplicated("fact:f1", publish) == "msg-1"
    assert counting.calls == ["get"] and made == ["published"]  # the record read, not made


async def test_run_deduplicated_unread_makes_and_writes_without_a_read(
    bucket: KeyValue,
) -> None:
    """Issue 18: a caller that knows any earlier making is inside the partner's window
    skips the read; a second maker finds the record there through its refused write."""
    counting = CountingBucket(bucket)
    once: OnceOnly[str] = OnceOnly(counting, str)  # type: ignore[arg-type]
    made: list[str] = []

    async def publish() -> str:
        made.append("published")
        return f"msg-{len(made)}"

    assert await once.run_deduplicated("fact:f3", publish, unread=True) == "msg-1"
    assert counting.calls == ["update"]  # the result written as new: no read
    counting.calls.clear()
    elsewhere: OnceOnly[str] = OnceOnly(counting, str)  # type: ignore[arg-type]
    # Made again (the partner drops the repeat); the write is refused, nothing overwritten.
    assert await elsewhere.run_deduplicated("fact:f3", publish, unread=True) == "msg-2"
    assert counting.calls == ["update"]
    assert made == ["published", "published"]
    assert await OnceOnly(bucket, str).result_of("fact:f3") == "msg-1"
    counting.calls.clear()
    assert await elsewhere.run_deduplicated("fact:f3", publish, unread=True) == "msg-2"
    assert counting.calls == [] and len(made) == 2  # remembered


async def test_run_deduplicated_makes_again_over_an_intent_and_shares_a_failure(
    bucket: KeyValue,
) -> None:
    made: list[str] = []

    async def gone() -> str:
        raise TransientError("NATS went away")

    async def publish() -> str:
        made.append("published")
        return "msg-2"

    with pytest.raises(TransientError):  # an intent left by ``run``, as after a crash
        await OnceOnly(bucket, str).run("fact:f2", gone)
    once: OnceOnly[str] = OnceOnly(bucket, str)
    failing = [asyncio.create_task(once.run_deduplicated("fact:f2", gone)) for _ in range(2)]
    outcomes = await asyncio.gather(*failing, return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [TransientError, TransientError]
    assert await once.run_deduplicated("fact:f2", publish) == "msg-2"
    assert made == ["published"]
    assert await OnceOnly(bucket, str).result_of("fact:f2") == "msg-2"
