"""The stages the orchestrator moves an order through, from the contracts' one vocabulary.

The stages themselves are :class:`waybill_contracts.OrderStage` (the auditor
and every reader of ``OrderStatusResponse.stage`` use the same words); ``Stage``
is the short name this service uses for it. The orchestrator walks the main
line without the auditor's finer steps (``released``, ``packed``, ``booked``:
it moves on from those at once, with a command), forward only, which is what
makes late and repeated events harmless. Three stages sit beside the line:
``held`` (waiting for a person), ``cancelling`` (compensations sent,
confirmations awaited) and ``cancelled``.
"""

from __future__ import annotations

from waybill_contracts import stages as order_stages
from waybill_contracts.stages import FINAL, OrderStage, is_before, rank

__all__ = ["FINAL", "MAIN_LINE", "Stage", "handed_to_carrier", "is_before", "rank"]

Stage = OrderStage

_OBSERVED_ONLY = frozenset({Stage.RELEASED, Stage.PACKED, Stage.BOOKED})
"""Main-line stages only an observer names: the orchestrator passes them within one step."""

MAIN_LINE: tuple[Stage, ...] = tuple(
    stage for stage in order_stages.MAIN_LINE if stage not in _OBSERVED_ONLY
)
"""The happy path the orchestrator walks, in order."""


def handed_to_carrier(stage: Stage) -> bool:
    """True once the parcel has left: too late to cancel."""
    return stage in MAIN_LINE and not is_before(stage, Stage.SHIPPED)
