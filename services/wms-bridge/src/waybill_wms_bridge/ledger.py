"""Publishing warehouse facts so each is stored once, however often and however late it is seen.

Two layers, because each covers what the other cannot:

* the message id is derived from the fact (:func:`~waybill_wms_bridge.lifecycle.stage_fact_id`),
  so JetStream drops a second copy published within its duplicate window
  (``WAYBILL_DUPLICATE_WINDOW_S``, two minutes by default), e.g. a webhook and a
  poll racing each other;
* the runtime's :class:`~waybill_runtime.idempotency.OnceOnly` remembers every
  published fact in the idempotency bucket (seven days), so a poll that sees
  an order again an hour later (it moved on to "shipped") does not store its
  "accepted" and "packed" again.

Because of the first layer the second needs no intent before the publish
(:meth:`~waybill_runtime.idempotency.OnceOnly.run_deduplicated`): a fact is
read, published if not recorded, and recorded once after. A crash between the
publish and its record leaves nothing recorded, and the next sight of the fact
publishes it again: within the duplicate window JetStream drops the copy; after
it (the crash, then no webhook or poll for two minutes) the fact is stored a
second time under the same id, as it was when an intent was re-published.
Each webhook repeats the stages before it and several of one order's webhooks
arrive at once: facts seen together share one attempt, and facts published
are remembered, so a repeat costs no round trip.

A fact of a young WMS order (created less than half the duplicate window ago,
by the WMS's clock: :attr:`~waybill_wms_bridge.lifecycle.WarehouseFact.since`)
is not read first. Any earlier publish of it came after the order was created,
so inside the window, and JetStream drops the copy; its record is then written
as new (compare-and-set on "never written"), and a record already there means
another sighting published and recorded it first. A read, which told nothing
the stream does not, is saved on nearly every new fact (issue 18). The half
window is the room left for the WMS's clock running ahead of ours. A fact seen
when its order is older is read first, as above.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from nats.js.kv import KeyValue
from prometheus_client import Counter

from waybill_contracts import MessageContext
from waybill_runtime.bus.provisioning import StreamPolicy
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.idempotency import OnceOnly
from waybill_runtime.metrics import MetricsRegistry
from waybill_wms_bridge.lifecycle import WarehouseFact

__all__ = ["FactLedger"]

log = logging.getLogger("waybill.wms_bridge.facts")


class FactLedger:
    """Publishes :class:`WarehouseFact` s once each."""

    def __init__(
        self,
        publisher: Publisher,
        records: KeyValue,
        metrics: MetricsRegistry | None = None,
        *,
        duplicate_window_s: float = StreamPolicy.duplicate_window_s,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._publisher = publisher
        self._once = OnceOnly(records, str)
        self._young_for_s = duplicate_window_s / 2
        self._clock = clock
        self._counter = (
            metrics.counter(
                "waybill_wms_facts_total",
                "Warehouse facts seen, by stage and whether they were new or a repeat.",
                ("stage", "outcome"),
            )
            if metrics is not None
            else None
        )
        # The counter's child per (stage, outcome), looked up once rather than per fact
        # (a dozen facts an order, each a lookup under the counter's lock).
        self._counted: dict[tuple[str, str], Counter] = {}

    def _is_young(self, fact: WarehouseFact) -> bool:
        """Whether any earlier publish of ``fact`` is still inside the duplicate window."""
        return fact.since is not None and self._clock() - fact.since.timestamp() < self._young_for_s

    async def publish(self, fact: WarehouseFact, *, cause: MessageContext | None = None) -> bool:
        """Publish ``fact`` unless it was published before; True when it went out now."""
        sent = False

        async def send() -> str:
            nonlocal sent
            context = await self._publisher.publish(
                fact.message, cause=cause, fact_id=fact.id, lane=fact.lane
            )
            sent = True
            return context.id

        # A fact published here before (young or not) is remembered: no round trip.
        await self._once.run_deduplicated(f"wms-fact:{fact.id}", send, unread=self._is_young(fact))
        if sent:
            log.debug("published %s of %s", fact.stage, fact.message.business_key())
        if self._counter is not None:
            self._count(fact.stage, "published" if sent else "repeat")
        return sent

    def _count(self, stage: str, outcome: str) -> None:
        assert self._counter is not None
        child = self._counted.get((stage, outcome))
        if child is None:
            child = self._counted[stage, outcome] = self._counter.labels(stage, outcome)
        child.inc()

    async def publish_all(
        self, facts: list[WarehouseFact], *, cause: MessageContext | None = None
    ) -> int:
        """Publish ``facts`` in order (oldest stage first); returns how many were new."""
        new = 0
        for fact in facts:
            new += await self.publish(fact, cause=cause)
        return new
