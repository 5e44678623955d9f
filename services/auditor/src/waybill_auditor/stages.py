"""The stages the auditor reports for an order, their order and how long each may last.

The names follow the orchestrator's stages so that ops read the same word in
both places; the auditor adds three finer steps it can see on the bus
(``released``, ``packed``, ``booked``: the moment between a fact and the
command the orchestrator sends for it) and ``unknown`` for an order it has
only seen messages about that place it nowhere (a notification, say).
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType

HOUR_S = 3_600.0
DAY_S = 24 * HOUR_S


class Stage(StrEnum):
    """Where an order stands, as the messages on the bus show it."""

    RELEASED = "released"
    """Released in Odoo; the orchestrator has not sent it to the warehouse yet."""
    IN_WAREHOUSE = "in_warehouse"
    """ReleaseToWarehouse sent; the warehouse has not accepted it yet."""
    ACCEPTED = "accepted"
    """The warehouse has the order; picking has not finished."""
    PICKED = "picked"
    """Picked in full; packing has not finished."""
    PACKED = "packed"
    """Packed; no BookShipment sent yet."""
    BOOKING = "booking"
    """BookShipment sent; no label yet."""
    BOOKED = "booked"
    """A label was bought; Odoo has not been asked to record it yet."""
    RECORDING = "recording"
    """RecordShipmentInOdoo sent; Odoo has not confirmed."""
    SHIPPED = "shipped"
    """Odoo holds the tracking number; the parcel travels."""
    RECORDING_DELIVERY = "recording_delivery"
    """The carrier delivered; Odoo has not confirmed the delivery yet."""
    DELIVERED = "delivered"
    """Delivered, and Odoo knows (final)."""
    HELD = "held"
    """The orchestrator held the order for a person (an exception with order_held)."""
    CANCELLING = "cancelling"
    """Cancelled in Odoo; the warehouse cancel (and label void) not all confirmed."""
    CANCELLED = "cancelled"
    """Cancelled and compensated (final)."""
    UNKNOWN = "unknown"
    """Messages mention the order, but none places it on the way to the customer."""


MAIN_LINE: tuple[Stage, ...] = (
    Stage.RELEASED,
    Stage.IN_WAREHOUSE,
    Stage.ACCEPTED,
    Stage.PICKED,
    Stage.PACKED,
    Stage.BOOKING,
    Stage.BOOKED,
    Stage.RECORDING,
    Stage.SHIPPED,
    Stage.RECORDING_DELIVERY,
    Stage.DELIVERED,
)
"""The happy path, in order: an order only ever moves to the right on it."""

FINAL: frozenset[Stage] = frozenset({Stage.DELIVERED, Stage.CANCELLED})
"""Stages an order never leaves."""

_RANK = {stage: rank for rank, stage in enumerate(MAIN_LINE)}


def rank(stage: Stage) -> int:
    """Position of a main-line stage (``released`` is 0); a clear error for the others."""
    try:
        return _RANK[stage]
    except KeyError:
        raise ValueError(f"stage {stage} is not on the main line") from None


DEFAULT_STUCK_AFTER_S: MappingProxyType[Stage, float] = MappingProxyType(
    {
        Stage.RELEASED: 5 * 60.0,
        Stage.IN_WAREHOUSE: 30 * 60.0,
        Stage.ACCEPTED: 4 * HOUR_S,
        Stage.PICKED: 2 * HOUR_S,
        Stage.PACKED: 10 * 60.0,
        Stage.BOOKING: 10 * 60.0,
        Stage.BOOKED: 10 * 60.0,
        Stage.RECORDING: 10 * 60.0,
        Stage.SHIPPED: 14 * DAY_S,
        Stage.RECORDING_DELIVERY: 10 * 60.0,
        Stage.HELD: 4 * HOUR_S,
        Stage.CANCELLING: 30 * 60.0,
        Stage.UNKNOWN: DAY_S,
    }
)
"""How long an order may stay in each stage before it counts as stuck.

Final stages have no deadline: an order cannot be stuck in them.
"""
