"""Publishing warehouse facts so each is stored once, however often and however late it is seen.

Two layers, because each covers what the other cannot:

* the message id is derived from the fact (:func:`~waybill_wms_bridge.lifecycle.stage_fact_id`),
  so JetStream drops a second copy published within its duplicate window
  (two minutes), e.g. a webhook and a poll racing each other;
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
"""

from __future__ import annotations

import logging

from waybill_contracts import MessageContext
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.idempotency import OnceOnly
from waybill_runtime.metrics import MetricsRegistry
from waybill_wms_bridge.lifecycle import WarehouseFact

__all__ = ["FactLedger"]

log = logging.getLogger("waybill.wms_bridge.facts")


class FactLedger:
    """Publishes :class:`WarehouseFact` s once each."""

    def __init__(
        self, publisher: Publisher, once: OnceOnly[str], metrics: MetricsRegistry | None = None
    ) -> None:
        self._publisher = publisher
        self._once = once
        self._counter = (
            metrics.counter(
                "waybill_wms_facts_total",
                "Warehouse facts seen, by stage and whether they were new or a repeat.",
                ("stage", "outcome"),
            )
            if metrics is not None
            else None
        )

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

        await self._once.run_deduplicated(f"wms-fact:{fact.id}", send)
        if sent:
            log.debug("published %s of %s", fact.stage, fact.message.business_key())
        if self._counter is not None:
            self._counter.labels(fact.stage, "published" if sent else "repeat").inc()
        return sent

    async def publish_all(
        self, facts: list[WarehouseFact], *, cause: MessageContext | None = None
    ) -> int:
        """Publish ``facts`` in order (oldest stage first); returns how many were new."""
        new = 0
        for fact in facts:
            new += await self.publish(fact, cause=cause)
        return new
