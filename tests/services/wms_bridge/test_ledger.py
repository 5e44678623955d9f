"""The fact ledger: a fact seen again long after JetStream's duplicate window is not re-sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from waybill_contracts import Message, MessageContext, SubjectMap, new_context
from waybill_runtime.bus.provisioning import ensure_bucket
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.idempotency import OnceOnly
from waybill_wms_bridge.ledger import FactLedger
from waybill_wms_bridge.lifecycle import accepted_fact

AT = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


class RecordingPublisher(Publisher):
    """Records what would be published, as (message id, message)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str | None, Message]] = []

    async def publish(
        self,
        message: Message,
        *,
        cause: MessageContext | None = None,
        fact_id: str | None = None,
        correlation_id: str | None = None,
    ) -> MessageContext:
        self.sent.append((fact_id, message))
        return new_context(message, source="wms-bridge", cause=cause, message_id=fact_id)


async def _ledger(nc: NatsClient, prefix: str) -> tuple[FactLedger, RecordingPublisher, Any]:
    kv = await ensure_bucket(nc.jetstream(), SubjectMap(prefix).kv_bucket("idempotency"))
    publisher = RecordingPublisher()
    return FactLedger(publisher, OnceOnly(kv, str)), publisher, kv


async def test_a_fact_published_once_is_not_sent_again_however_late_it_is_seen(
    nc: NatsClient, nats_prefix: str
) -> None:
    ledger, publisher, _kv = await _ledger(nc, nats_prefix)
    fact = accepted_fact("WH/OUT/00080", "OO-1", "WH1", AT)
    first = await ledger.publish(fact)
    again = await ledger.publish(fact)
    other = await ledger.publish(accepted_fact("WH/OUT/00081", "OO-2", "WH1", AT))
    assert (first, again, other) == (True, False, True)
    assert [fact_id for fact_id, _ in publisher.sent] == [
        fact.id,
        accepted_fact("WH/OUT/00081", "OO-2", "WH1", AT).id,
    ]


async def test_a_fact_whose_earlier_attempt_failed_is_sent_under_the_same_id(
    nc: NatsClient, nats_prefix: str
) -> None:
    ledger, publisher, kv = await _ledger(nc, nats_prefix)
    fact = accepted_fact("WH/OUT/00082", "OO-3", "WH1", AT)

    async def nats_away() -> str:
        raise ConnectionError("NATS went away")

    with pytest.raises(ConnectionError):  # the intent stays, as after a crash
        await OnceOnly(kv, str).run(f"wms-fact:{fact.id}", nats_away)
    assert await ledger.publish(fact) is True
    assert await ledger.publish(fact) is False
    assert [fact_id for fact_id, _ in publisher.sent] == [fact.id]
