"""Helpers for the auditor's tests: one order's messages, with envelopes chained by causation.

``for_order`` re-keys the contracts' example messages to another order ref;
``Journey`` builds the envelopes the services would give them (each message
caused by the one before it in the flow) with chosen ce-times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client as NatsClient

from waybill_contracts import Message, MessageContext, SubjectMap, encode, new_context
from waybill_contracts.examples import example_of
from waybill_contracts.model import Milestone, MilestoneCode

M = TypeVar("M", bound=Message)

T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def shipment_id_of(order_ref: str) -> str:
    return "shp-" + order_ref.replace("/", "-") + "-1"


def for_order(message_type: type[M], order_ref: str, /, **changes: Any) -> M:
    """The example ``message_type`` about ``order_ref`` (with ``changes`` to its fields)."""
    message = example_of(message_type)
    replaced: dict[str, Any] = {}
    fields = msgspec.structs.asdict(message)
    if "order" in fields:
        replaced["order"] = msgspec.structs.replace(fields["order"], ref=order_ref)
    if "shipment" in fields:
        replaced["shipment"] = msgspec.structs.replace(
            fields["shipment"], order_ref=order_ref, shipment_id=shipment_id_of(order_ref)
        )
    if "order_ref" in fields:
        replaced["order_ref"] = order_ref
    if "shipment_id" in fields:
        replaced["shipment_id"] = shipment_id_of(order_ref)
    replaced.update(changes)
    return msgspec.structs.replace(message, **replaced)


def milestone(code: MilestoneCode) -> Milestone:
    from waybill_contracts.examples import MILESTONE

    return msgspec.structs.replace(MILESTONE, code=code, raw_status=code.value)


SOURCES = {
    "OrderReleased": "odoo-gateway",
    "OrderCancelled": "odoo-gateway",
    "ShipmentRecordedInOdoo": "odoo-gateway",
    "DeliveryRecordedInOdoo": "odoo-gateway",
    "WarehouseOrderAccepted": "wms-bridge",
    "WarehouseOrderPicked": "wms-bridge",
    "WarehouseOrderShortPicked": "wms-bridge",
    "WarehouseOrderPacked": "wms-bridge",
    "WarehouseOrderCancelled": "wms-bridge",
    "ShipmentBooked": "carrier-router",
    "ShipmentBookingFailed": "carrier-router",
    "ShipmentVoided": "carrier-router",
    "MilestoneReached": "carrier-router",
}


def source_of(message: Message) -> str:
    """The service that sends ``message``: events their adapter, commands the orchestrator."""
    return SOURCES.get(type(message).__name__, "orchestrator")


@dataclass
class Journey:
    """Messages of one order with envelopes; each step may name its cause."""

    order_ref: str
    sent: list[tuple[Message, MessageContext]] = field(default_factory=list)

    def add(
        self,
        message: Message,
        *,
        cause: MessageContext | None = None,
        minutes: float = 0.0,
        start: datetime = T0,
    ) -> MessageContext:
        """Give ``message`` an envelope caused by ``cause`` at ``start + minutes``."""
        context = new_context(
            message,
            source=source_of(message),
            cause=cause,
            correlation_id=None if cause is not None else self.order_ref,
            time=start + timedelta(minutes=minutes),
        )
        self.sent.append((message, context))
        return context

    def ids(self) -> list[str]:
        return [context.id for _, context in self.sent]


async def publish(
    nc: NatsClient,
    subjects: SubjectMap,
    message: Message,
    context: MessageContext,
    *,
    nats_msg_id: str | None = None,
) -> None:
    """Publish ``message`` with ``context`` as its service would (optionally another Nats-Msg-Id,
    to get a second copy past JetStream's duplicate window)."""
    encoded = encode(message, context, subjects)
    headers = dict(encoded.headers)
    if nats_msg_id is not None:
        headers["Nats-Msg-Id"] = nats_msg_id
    await nc.jetstream().publish(encoded.subject, encoded.body, headers=headers)
