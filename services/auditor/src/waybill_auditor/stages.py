"""The stages the auditor reports for an order, and how long each may last.

The stages are the contracts' one vocabulary, :class:`waybill_contracts.OrderStage`
(``Stage`` here for short), so ops read the same word in the orchestrator's
status answers and here. The auditor names every main-line stage, including
three finer steps it can see on the bus that the orchestrator passes within
one step (``released``, ``packed``, ``booked``: the moment between a fact and
the command the orchestrator sends for it), and ``unknown`` for an order it
has only seen messages about that place it nowhere (a notification, say).
"""

from __future__ import annotations

from types import MappingProxyType

from waybill_contracts.stages import FINAL, MAIN_LINE, OrderStage, rank

__all__ = ["DEFAULT_STUCK_AFTER_S", "FINAL", "MAIN_LINE", "Stage", "rank"]

HOUR_S = 3_600.0
DAY_S = 24 * HOUR_S

Stage = OrderStage

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
