"""The stages of an order on its way from Odoo to the customer: one vocabulary for the mesh.

The orchestrator moves each order through these stages (and answers
``OrderStatusResponse.stage`` with them); the auditor derives the same stages
from the messages it sees. The auditor also names three finer steps between a
fact and the command that follows it (``released``, ``packed``, ``booked``)
and ``unknown``; the orchestrator never reports those.

On the wire a stage travels as its plain string (``OrderStatusResponse.stage``,
``ExceptionRaised.stage``), and readers must accept stages they do not know:
a later minor version may add one. The enum is therefore not part of any
message's schema, and adding a member is not a breaking change.

The main line runs forward only; ``held``, ``cancelling``, ``cancelled`` and
``unknown`` sit beside it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FINAL", "MAIN_LINE", "OrderStage", "is_before", "rank"]


class OrderStage(StrEnum):
    """Where an order is; each main-line stage names what the order waits for."""

    RELEASED = "released"
    """Released in Odoo; not sent to the warehouse yet (seen by the auditor only)."""
    IN_WAREHOUSE = "in_warehouse"
    """ReleaseToWarehouse sent; the warehouse has not accepted the order yet."""
    ACCEPTED = "accepted"
    """The warehouse has the order; picking has not finished."""
    PICKED = "picked"
    """Picked in full; packing has not finished."""
    PACKED = "packed"
    """Packed; no BookShipment sent yet (seen by the auditor only)."""
    BOOKING = "booking"
    """BookShipment sent; no label yet."""
    BOOKED = "booked"
    """A label was bought; Odoo not asked to record it yet (seen by the auditor only)."""
    RECORDING = "recording"
    """RecordShipmentInOdoo sent; Odoo has not confirmed."""
    SHIPPED = "shipped"
    """Odoo holds the tracking number and the picking is done; the parcel travels."""
    RECORDING_DELIVERY = "recording_delivery"
    """The carrier delivered; RecordDeliveryInOdoo sent, Odoo has not confirmed."""
    DELIVERED = "delivered"
    """Delivered, and Odoo knows: the process is complete (final)."""
    HELD = "held"
    """Waiting for a person (short pick, no carrier, a deadline passed twice, a refusal)."""
    CANCELLING = "cancelling"
    """Cancelled in Odoo; warehouse cancel and label void sent, confirmations awaited."""
    CANCELLED = "cancelled"
    """Cancelled and compensated (final)."""
    UNKNOWN = "unknown"
    """Messages mention the order, but none places it on its way (seen by the auditor only)."""


MAIN_LINE: tuple[OrderStage, ...] = (
    OrderStage.RELEASED,
    OrderStage.IN_WAREHOUSE,
    OrderStage.ACCEPTED,
    OrderStage.PICKED,
    OrderStage.PACKED,
    OrderStage.BOOKING,
    OrderStage.BOOKED,
    OrderStage.RECORDING,
    OrderStage.SHIPPED,
    OrderStage.RECORDING_DELIVERY,
    OrderStage.DELIVERED,
)
"""The happy path, in order: an order only ever moves to the right on it."""

FINAL: frozenset[OrderStage] = frozenset({OrderStage.DELIVERED, OrderStage.CANCELLED})
"""Stages an order never leaves."""

_RANK = {stage: position for position, stage in enumerate(MAIN_LINE)}


def rank(stage: OrderStage) -> int:
    """Position of a main-line stage (``released`` is 0); ValueError for the others."""
    try:
        return _RANK[stage]
    except KeyError:
        raise ValueError(f"stage {stage} is not on the main line") from None


def is_before(stage: OrderStage, other: OrderStage) -> bool:
    """True when main-line ``stage`` comes before main-line ``other``."""
    return rank(stage) < rank(other)
