"""An order's stage from the messages seen about it, whatever order they arrive in.

Pure: no clock, no I/O. Each message is reduced to an :class:`Observation`;
observations are merged into the order's :class:`OrderFacts` with operations
that do not care about arrival order (the furthest stage, the earliest or
latest time of a fact); the stage is then derived from the facts alone. A
late or repeated message therefore never moves an order backwards: the
auditor consumes events and commands from two streams at once, so a command
often arrives before the event that caused it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from waybill_auditor.stages import FINAL, Stage, rank
from waybill_contracts import Message
from waybill_contracts.commands import (
    BookShipment,
    RecordDeliveryInOdoo,
    RecordShipmentInOdoo,
    ReleaseToWarehouse,
)
from waybill_contracts.events import (
    DeliveryRecordedInOdoo,
    ExceptionRaised,
    MilestoneReached,
    OrderCancelled,
    OrderReleased,
    ShipmentBooked,
    ShipmentRecordedInOdoo,
    ShipmentVoided,
    WarehouseOrderAccepted,
    WarehouseOrderCancelled,
    WarehouseOrderPacked,
    WarehouseOrderPicked,
)
from waybill_contracts.model import MilestoneCode
from waybill_contracts.operations import ReleaseHeldOrder

REACHES: dict[type[Message], Stage] = {
    OrderReleased: Stage.RELEASED,
    ReleaseToWarehouse: Stage.IN_WAREHOUSE,
    WarehouseOrderAccepted: Stage.ACCEPTED,
    WarehouseOrderPicked: Stage.PICKED,
    WarehouseOrderPacked: Stage.PACKED,
    BookShipment: Stage.BOOKING,
    ShipmentBooked: Stage.BOOKED,
    RecordShipmentInOdoo: Stage.RECORDING,
    ShipmentRecordedInOdoo: Stage.SHIPPED,
    RecordDeliveryInOdoo: Stage.RECORDING_DELIVERY,
    DeliveryRecordedInOdoo: Stage.DELIVERED,
}
"""The main-line stage a message shows its order has reached (milestones aside)."""


class Observation(msgspec.Struct, frozen=True, kw_only=True):
    """What one message says about its order's progress."""

    at: datetime
    reached: Stage | None = None
    held: bool = False
    resumed: bool = False
    """An operator released the held order (the control tower's ``ReleaseHeldOrder``)."""
    cancel_requested: bool = False
    warehouse_cancelled: bool = False
    booked_shipment: str | None = None
    voided_shipment: str | None = None


class OrderFacts(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the auditor knows about an order's progress; merged, never overwritten."""

    first_seen_at: datetime | None = None
    furthest: Stage | None = None
    furthest_at: datetime | None = None
    held_at: datetime | None = None
    resumed_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    warehouse_cancelled_at: datetime | None = None
    booked: dict[str, datetime] = {}
    voided: dict[str, datetime] = {}


Observer = Callable[[Any, datetime], Observation]
"""What a message of one type says about progress: made once per type, called per message."""


def _observer_for(message_type: type[Message]) -> Observer:
    """The observer of ``message_type``: the stage the type reaches, and the one field the
    types that say more carry (a message type is at most one of them)."""
    reached = REACHES.get(message_type)
    if issubclass(message_type, MilestoneReached):
        # Delivered: the carrier delivered, and the orchestrator now asks Odoo to record it.
        return lambda m, at: Observation(
            at=at,
            reached=Stage.RECORDING_DELIVERY
            if m.milestone.code is MilestoneCode.DELIVERED
            else reached,
        )
    if issubclass(message_type, ExceptionRaised):
        return lambda m, at: Observation(at=at, reached=reached, held=m.order_held)
    if issubclass(message_type, ReleaseHeldOrder):
        return lambda m, at: Observation(at=at, reached=reached, resumed=True)
    if issubclass(message_type, OrderCancelled):
        return lambda m, at: Observation(at=at, reached=reached, cancel_requested=True)
    if issubclass(message_type, WarehouseOrderCancelled):
        return lambda m, at: Observation(at=at, reached=reached, warehouse_cancelled=True)
    if issubclass(message_type, ShipmentBooked):
        return lambda m, at: Observation(
            at=at, reached=reached, booked_shipment=m.shipment.shipment_id
        )
    if issubclass(message_type, ShipmentVoided):
        return lambda m, at: Observation(at=at, reached=reached, voided_shipment=m.shipment_id)
    return lambda m, at: Observation(at=at, reached=reached)


_OBSERVERS: dict[type[Message], Observer] = {}
"""Each message type's observer, chosen at its first message (the contracts' types: a bound)."""


def observe(message: Message, at: datetime) -> Observation:
    """Reduce ``message`` (made at ``at``, its ce-time) to what it says about progress.

    The type decides which of its fields matter, once: a chain of ``isinstance``
    per message asked seven questions of every one (155 calls an order).
    """
    observer = _OBSERVERS.get(type(message))
    if observer is None:
        observer = _OBSERVERS[type(message)] = _observer_for(type(message))
    return observer(message, at)


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < current else current


def _latest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


def _with_earliest(
    times: dict[str, datetime], key: str | None, at: datetime
) -> dict[str, datetime]:
    if key is None:
        return times
    return {**times, key: _earliest(times.get(key), at)}


def merge(facts: OrderFacts, seen: Observation) -> OrderFacts:
    """``facts`` with ``seen`` added; merging in any order gives the same facts."""
    furthest, furthest_at = facts.furthest, facts.furthest_at
    if seen.reached is not None:
        if furthest is None or rank(seen.reached) > rank(furthest):
            furthest, furthest_at = seen.reached, seen.at
        elif seen.reached == furthest:
            # The stage was entered when it was first seen; a re-sent command does not reset it.
            furthest_at = _earliest(furthest_at, seen.at)
    return OrderFacts(
        first_seen_at=_earliest(facts.first_seen_at, seen.at),
        furthest=furthest,
        furthest_at=furthest_at,
        held_at=_latest(facts.held_at, seen.at) if seen.held else facts.held_at,
        resumed_at=_latest(facts.resumed_at, seen.at) if seen.resumed else facts.resumed_at,
        cancel_requested_at=(
            _earliest(facts.cancel_requested_at, seen.at)
            if seen.cancel_requested
            else facts.cancel_requested_at
        ),
        warehouse_cancelled_at=(
            _earliest(facts.warehouse_cancelled_at, seen.at)
            if seen.warehouse_cancelled
            else facts.warehouse_cancelled_at
        ),
        booked=_with_earliest(facts.booked, seen.booked_shipment, seen.at),
        voided=_with_earliest(facts.voided, seen.voided_shipment, seen.at),
    )


def derive(facts: OrderFacts) -> tuple[Stage, datetime | None]:
    """The stage ``facts`` put the order in, and since when (a ce-time)."""
    furthest, furthest_at = facts.furthest, facts.furthest_at
    if furthest is Stage.DELIVERED:
        return Stage.DELIVERED, furthest_at
    cancel_at = facts.cancel_requested_at
    too_late_to_cancel = furthest is not None and rank(furthest) >= rank(Stage.SHIPPED)
    if cancel_at is not None and not too_late_to_cancel:
        # Held after the cancellation: a compensation was refused (the goods left,
        # the label was scanned), so the cancellation waits for a person.
        if facts.held_at is not None and facts.held_at >= cancel_at:
            return Stage.HELD, facts.held_at
        return _cancellation(facts, cancel_at)
    # Held after the order last moved on: a person must act. A later step
    # forward (the awaited fact came after all) means the order resumed.
    if facts.held_at is not None and (furthest_at is None or facts.held_at >= furthest_at):
        resumed_at = facts.resumed_at
        if resumed_at is None or resumed_at < facts.held_at:
            return Stage.HELD, facts.held_at
        # An operator released it: back where it stopped, the clock restarted.
        if furthest is not None:
            return furthest, resumed_at
    if furthest is not None:
        return furthest, furthest_at
    return Stage.UNKNOWN, facts.first_seen_at


def _cancellation(facts: OrderFacts, cancel_at: datetime) -> tuple[Stage, datetime]:
    furthest = facts.furthest
    reached_warehouse = furthest is not None and rank(furthest) >= rank(Stage.IN_WAREHOUSE)
    warehouse_done = facts.warehouse_cancelled_at is not None or not reached_warehouse
    labels_voided = set(facts.booked) <= set(facts.voided)
    if not (warehouse_done and labels_voided):
        return Stage.CANCELLING, cancel_at
    done_at = max(
        [cancel_at, *facts.voided.values()]
        + ([facts.warehouse_cancelled_at] if facts.warehouse_cancelled_at is not None else [])
    )
    return Stage.CANCELLED, done_at


def settle(
    previous: Stage | None, previous_since: datetime | None, facts: OrderFacts
) -> tuple[Stage, datetime | None]:
    """The stage to record now: derived from ``facts``, except that final stages stay."""
    if previous is not None and previous in FINAL:
        return previous, previous_since
    return derive(facts)
