"""Which subjects some service consumes, judged per message on a real nats-server, each subject
matched against the consumers' filters once per read of them (issue #18: the auditor's CPU)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerConfig
from nats.js.client import JetStreamContext

from waybill_auditor import coverage
from waybill_auditor.coverage import ConsumerCoverage
from waybill_contracts import SubjectMap
from waybill_contracts.events import OrderCancelled, OrderReleased
from waybill_runtime.bus.dead_letters import subject_matches
from waybill_runtime.bus.provisioning import StreamPolicy, ensure_streams


@dataclass
class Judged:
    js: JetStreamContext
    subjects: SubjectMap
    released: str
    cancelled: str
    matches: list[str]
    """Every subject matched against a filter, in order."""
    judge: ConsumerCoverage


async def judged(nc: NatsClient, nats_prefix: str, monkeypatch: pytest.MonkeyPatch) -> Judged:
    """Streams, the orchestrator's consumer of releases, and every filter match counted."""
    subjects = SubjectMap(nats_prefix)
    js = nc.jetstream()
    await ensure_streams(js, subjects, StreamPolicy())
    released = subjects.subject_for(OrderReleased)
    cancelled = subjects.subject_for(OrderCancelled)
    await js.add_consumer(
        subjects.events_stream.name,
        ConsumerConfig(durable_name="orchestrator-events", filter_subject=released),
    )
    matches: list[str] = []

    def counted(subject: str, pattern: str) -> bool:
        matches.append(subject)
        return subject_matches(subject, pattern)

    monkeypatch.setattr(coverage, "subject_matches", counted)
    judge = ConsumerCoverage(js, subjects, own=frozenset({"auditor-events"}))
    return Judged(js, subjects, released, cancelled, matches, judge)


async def test_a_subject_is_matched_once_per_read_of_the_consumers(
    nc: NatsClient, nats_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    it = await judged(nc, nats_prefix, monkeypatch)
    js, subjects, judge = it.js, it.subjects, it.judge
    released, cancelled, matches = it.released, it.cancelled, it.matches

    answers = [await judge.consumed(released) for _ in range(50)]
    assert answers == [True] * 50
    assert len(matches) == 1  # one filter, matched once; was once per message

    assert await judge.consumed(cancelled) is False
    await js.add_consumer(
        subjects.events_stream.name,
        ConsumerConfig(durable_name="notifier-events", filter_subject=cancelled),
    )
    monkeypatch.setattr(coverage, "RECHECK_S", 0.0)  # a subject nobody took: read again
    assert await judge.consumed(cancelled) is True  # the new consumer's filter is heard


async def test_reading_the_same_filters_again_keeps_the_answers(
    nc: NatsClient, nats_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    it = await judged(nc, nats_prefix, monkeypatch)
    judge, released, cancelled, matches = it.judge, it.released, it.cancelled, it.matches
    monkeypatch.setattr(coverage, "RECHECK_S", 0.0)  # every uncovered message reads again
    reads = 0
    read = judge._read

    async def counted_read() -> None:
        nonlocal reads
        reads += 1
        await read()

    monkeypatch.setattr(judge, "_read", counted_read)

    for _ in range(10):
        assert await judge.consumed(released) is True
        assert await judge.consumed(cancelled) is False  # nobody takes it: read again

    # Ten reads of the same filters, each subject matched once (twenty before: each
    # read forgot the answers).
    assert reads >= 10
    assert matches.count(released) == 1 and matches.count(cancelled) == 1


async def test_messages_finding_the_filters_due_together_share_one_read(
    nc: NatsClient, nats_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    it = await judged(nc, nats_prefix, monkeypatch)
    judge, released, cancelled = it.judge, it.released, it.cancelled
    monkeypatch.setattr(coverage, "RECHECK_S", 0.0)  # every uncovered message finds them due
    lists = 0
    consumers_info = it.js.consumers_info

    async def counted(stream: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal lists
        lists += 1
        return await consumers_info(stream, *args, **kwargs)

    monkeypatch.setattr(it.js, "consumers_info", counted)

    # Sixteen messages nobody else takes, handled at once (a consumer's slots in a burst).
    answers = await asyncio.gather(*(judge.consumed(cancelled) for _ in range(16)))
    assert answers == [False] * 16
    assert lists == 2  # one read (two streams); 32 before: a read per message
    assert await judge.consumed(released) is True


async def test_a_failed_read_is_each_waiters_answer_and_the_next_message_reads_again(
    nc: NatsClient, nats_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    it = await judged(nc, nats_prefix, monkeypatch)
    judge, cancelled = it.judge, it.cancelled
    consumers_info = it.js.consumers_info
    failing = True

    async def flaky(stream: str, *args: Any, **kwargs: Any) -> Any:
        if failing:
            raise TimeoutError("no answer")
        return await consumers_info(stream, *args, **kwargs)

    monkeypatch.setattr(it.js, "consumers_info", flaky)
    # A failed look-up says yes (not judged), to every message that waited for it.
    assert await asyncio.gather(*(judge.consumed(cancelled) for _ in range(4))) == [True] * 4
    failing = False
    assert await judge.consumed(cancelled) is False
