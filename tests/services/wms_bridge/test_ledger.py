"""The fact ledger: a fact seen again long after JetStream's duplicate window is not re-sent."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pytest
from nats.aio.client import Client as NatsClient

from waybill_contracts import SubjectMap
from waybill_contracts.events import WarehouseOrderAccepted
from waybill_runtime.bus.provisioning import StreamPolicy, ensure_bucket, ensure_streams
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.idempotency import OnceOnly, kv_key
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.testing.streams import stored_messages
from waybill_wms_bridge.ledger import FactLedger
from waybill_wms_bridge.lifecycle import accepted_fact

AT = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


class Rig(NamedTuple):
    ledger: FactLedger
    publisher: Publisher
    metrics: MetricsRegistry
    kv: Any
    subjects: SubjectMap


async def _ledger(nc: NatsClient, prefix: str) -> Rig:
    """The ledger on the runtime's real publisher, streams and idempotency bucket."""
    subjects = SubjectMap(prefix)
    js = nc.jetstream()
    await ensure_streams(js, subjects, StreamPolicy())
    kv = await ensure_bucket(js, subjects.kv_bucket("idempotency"))
    metrics = MetricsRegistry("wms-bridge")
    publisher = Publisher(nc, subjects, service="wms-bridge", metrics=metrics)
    return Rig(FactLedger(publisher, kv), publisher, metrics, kv, subjects)


def publish_calls(rig: Rig) -> float:
    """Acceptances handed to the publisher (a repeat JetStream would drop counts too)."""
    labels = {"service": "wms-bridge", "subject": rig.subjects.subject_for(WarehouseOrderAccepted)}
    value = rig.metrics.collector_registry.get_sample_value(
        "waybill_messages_published_total", labels
    )
    return value or 0.0


async def stored_ids(nc: NatsClient, rig: Rig) -> list[str]:
    return [
        context.id for _, context in await stored_messages(nc, rig.subjects, WarehouseOrderAccepted)
    ]


async def test_a_fact_published_once_is_not_sent_again_however_late_it_is_seen(
    nc: NatsClient, nats_prefix: str
) -> None:
    rig = await _ledger(nc, nats_prefix)
    fact = accepted_fact("WH/OUT/00080", "OO-1", "WH1", AT)
    first = await rig.ledger.publish(fact)
    again = await rig.ledger.publish(fact)
    other = await rig.ledger.publish(accepted_fact("WH/OUT/00081", "OO-2", "WH1", AT))
    assert (first, again, other) == (True, False, True)
    # The repeat never reached the publisher (JetStream's window would not help a
    # week later): two publishes, two stored events, under the facts' ids.
    assert publish_calls(rig) == 2
    assert await stored_ids(nc, rig) == [
        fact.id,
        accepted_fact("WH/OUT/00081", "OO-2", "WH1", AT).id,
    ]


async def test_a_fact_whose_earlier_attempt_failed_is_sent_under_the_same_id(
    nc: NatsClient, nats_prefix: str
) -> None:
    rig = await _ledger(nc, nats_prefix)
    fact = accepted_fact("WH/OUT/00082", "OO-3", "WH1", AT)

    async def nats_away() -> str:
        raise ConnectionError("NATS went away")

    with pytest.raises(ConnectionError):  # the intent stays, as after a crash
        await OnceOnly(rig.kv, str).run(f"wms-fact:{fact.id}", nats_away)
    assert await rig.ledger.publish(fact) is True
    assert await rig.ledger.publish(fact) is False
    assert publish_calls(rig) == 1
    assert await stored_ids(nc, rig) == [fact.id]


async def bucket_writes(nc: NatsClient, rig: Rig) -> int:
    """Every write the idempotency bucket has taken (its stream's last sequence)."""
    info = await nc.jetstream().stream_info(f"KV_{rig.subjects.kv_bucket('idempotency')}")
    return int(info.state.last_seq)


async def test_a_fact_costs_one_record_and_one_publish_however_many_webhooks_bring_it(
    nc: NatsClient, nats_prefix: str
) -> None:
    """Issue #18: the stream drops a repeat of the fact's id within its window, so the
    record needs no intent before the publish, and webhooks arriving together (each
    repeats the stages before it) share one attempt: before, one fact seen by four
    webhooks at once cost an intent, a result and a publish for the first, and a read,
    a publish and a write for each that found the intent."""
    rig = await _ledger(nc, nats_prefix)
    fact = accepted_fact("WH/OUT/00090", "OO-9", "WH1", AT)

    sent = await asyncio.gather(*(rig.ledger.publish(fact) for _ in range(4)))
    later = await rig.ledger.publish(fact)

    assert sorted(sent) == [False, False, False, True] and later is False
    assert await bucket_writes(nc, rig) == 1
    assert publish_calls(rig) == 1
    assert await stored_ids(nc, rig) == [fact.id]
    # The record is what a process that never saw the fact goes by.
    fresh = await _ledger(nc, nats_prefix)
    assert await fresh.ledger.publish(fact) is False
    assert publish_calls(fresh) == 0


async def test_a_fact_published_but_not_recorded_is_published_again_and_stored_once(
    nc: NatsClient, nats_prefix: str
) -> None:
    """A crash between the publish and its record: the next sight publishes it again
    under the same id, and within the duplicate window JetStream keeps one copy."""
    rig = await _ledger(nc, nats_prefix)
    fact = accepted_fact("WH/OUT/00091", "OO-10", "WH1", AT)
    await rig.ledger.publish(fact)
    await rig.kv.purge(kv_key(f"wms-fact:{fact.id}"))  # the record never written

    after_crash = await _ledger(nc, nats_prefix)
    assert await after_crash.ledger.publish(fact) is True
    assert await after_crash.ledger.publish(fact) is False
    assert await stored_ids(nc, rig) == [fact.id]


class CountedReads:
    """Counts the reads the ledger makes of the idempotency bucket."""

    def __init__(self, kv: Any) -> None:
        self.count = 0
        read = kv.get

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await read(*args, **kwargs)

        kv.get = counted


async def test_a_fact_of_a_young_order_costs_one_publish_and_one_write_and_no_read(
    nc: NatsClient, nats_prefix: str
) -> None:
    """Issue #18: a fact of an order the WMS created moments ago cannot have been
    published outside JetStream's duplicate window, so its record is not read first;
    before, each new fact cost a read, a publish and a write."""
    rig = await _ledger(nc, nats_prefix)
    reads = CountedReads(rig.kv)
    fact = accepted_fact("WH/OUT/00092", "OO-11", "WH1", datetime.now(UTC))

    sent = await asyncio.gather(*(rig.ledger.publish(fact) for _ in range(4)))

    assert sorted(sent) == [False, False, False, True]
    assert reads.count == 0  # 1 before
    assert await bucket_writes(nc, rig) == 1
    assert publish_calls(rig) == 1
    # Another replica (or this one after a restart) seeing it young: the stream drops its
    # publish and its record write finds the record there; still nothing read.
    other = await _ledger(nc, nats_prefix)
    other_reads = CountedReads(other.kv)
    await other.ledger.publish(fact)
    assert other_reads.count == 0
    assert await bucket_writes(nc, rig) == 1
    assert await stored_ids(nc, rig) == [fact.id]


async def test_a_fact_seen_when_its_order_is_older_than_half_the_window_is_read_first(
    nc: NatsClient, nats_prefix: str
) -> None:
    """The other side of the trade: once an earlier publish may be outside the window,
    the record decides, and a fact published young here is not read again."""
    rig = await _ledger(nc, nats_prefix)
    reads = CountedReads(rig.kv)
    created = datetime.now(UTC) - timedelta(seconds=59)
    young = accepted_fact("WH/OUT/00093", "OO-12", "WH1", created)
    assert await rig.ledger.publish(young) is True
    assert reads.count == 0

    later = FactLedger(rig.publisher, rig.kv, clock=lambda: time.time() + 2)
    assert await later.publish(young) is False  # a restarted process: read, found
    assert reads.count == 1
    old = accepted_fact("WH/OUT/00094", "OO-13", "WH1", created - timedelta(seconds=2))
    assert await rig.ledger.publish(old) is True
    assert reads.count == 2
    assert publish_calls(rig) == 2


async def test_the_facts_counter_looks_up_each_stage_and_outcome_once(
    nc: NatsClient, nats_prefix: str
) -> None:
    """Issue #18: a dozen facts an order each looked up their counter child (a lookup
    under the counter's lock); now once per stage and outcome."""
    rig = await _ledger(nc, nats_prefix)
    ledger = FactLedger(rig.publisher, rig.kv, rig.metrics)
    counter = rig.metrics.counter("waybill_wms_facts_total", "", ("stage", "outcome"))
    lookups = 0
    labels = counter.labels

    def counted(*values: str) -> Any:
        nonlocal lookups
        lookups += 1
        return labels(*values)

    counter.labels = counted  # type: ignore[method-assign,assignment]
    facts = [accepted_fact(f"WH/OUT/0010{n}", f"OO-2{n}", "WH1", AT) for n in range(3)]
    for fact in facts * 2:
        await ledger.publish(fact)
    assert lookups == 2  # 6 before
    published = rig.metrics.collector_registry.get_sample_value(
        "waybill_wms_facts_total", {"stage": "accepted", "outcome": "published"}
    )
    repeats = rig.metrics.collector_registry.get_sample_value(
        "waybill_wms_facts_total", {"stage": "accepted", "outcome": "repeat"}
    )
    assert (published, repeats) == (3, 3)
