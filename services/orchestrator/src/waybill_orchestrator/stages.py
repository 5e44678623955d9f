"""The stages of an order on its way from Odoo to the customer, and their order.

The main line runs forward only: a stage is left for a later one, never for an
earlier one, which is what makes late and repeated events harmless. Three
stages sit beside the line: ``held`` (waiting for a person), ``cancelling``
(compensations sent, confirmations awaited) and ``cancelled``.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Where an order is; each main-line stage names what the order waits for."""

    IN_WAREHOUSE = "in_warehouse"
    """Released in Odoo; ReleaseToWarehouse sent, the warehouse has not accepted yet."""
    ACCEPTED = "accepted"
    """The warehouse has the order; picking has not finished."""
    PICKED = "picked"
    """Picked in full; packing has not finished."""
    BOOKING = "booking"
    """Packed; BookShipment sent, no label yet."""
    RECORDING = "recording"
    """Label bought; RecordShipmentInOdoo sent, Odoo has not confirmed."""
    SHIPPED = "shipped"
    """Odoo holds the tracking number and the picking is done; the parcel travels."""
    RECORDING_DELIVERY = "recording_delivery"
    """The carrier delivered; RecordDeliveryInOdoo sent, Odoo has not confirmed."""
    DELIVERED = "delivered"
    """Delivered, and Odoo knows: the process is complete."""
    HELD = "held"
    """Waiting for a person (short pick, no carrier, a deadline passed twice)."""
    CANCELLING = "cancelling"
    """Cancelled in Odoo; warehouse cancel and label void sent, confirmations awaited."""
    CANCELLED = "cancelled"
    """Cancelled and compensated."""


MAIN_LINE: tuple[Stage, ...] = (
    Stage.IN_WAREHOUSE,
    Stage.ACCEPTED,
    Stage.PICKED,
    Stage.BOOKING,
    Stage.RECORDING,
    Stage.SHIPPED,
    Stage.RECORDING_DELIVERY,
    Stage.DELIVERED,
)
"""The happy path, in order."""

_RANK = {stage: rank for rank, stage in enumerate(MAIN_LINE)}

FINAL: frozenset[Stage] = frozenset({Stage.DELIVERED, Stage.CANCELLED})
"""Stages nothing moves an order out of."""


def rank(stage: Stage) -> int:
    """Position of a main-line stage (IN_WAREHOUSE is 0); off-line stages have none."""
    try:
        return _RANK[stage]
    except KeyError:
        raise ValueError(f"stage {stage} is not on the main line") from None


def is_before(stage: Stage, other: Stage) -> bool:
    """True when main-line ``stage`` comes before main-line ``other``."""
    return rank(stage) < rank(other)


def handed_to_carrier(stage: Stage) -> bool:
    """True once the parcel has left: too late to cancel."""
    return stage in MAIN_LINE and not is_before(stage, Stage.SHIPPED)
