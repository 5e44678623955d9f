"""Waybill's auditor: every event, command and dead letter on the record, each order's stage.

:mod:`~waybill_auditor.progress` derives an order's stage from the messages
seen about it (pure, arrival-order safe); :mod:`~waybill_auditor.causal`
orders a timeline by causation; :mod:`~waybill_auditor.store` keeps the trail
in SQLite; :mod:`~waybill_auditor.api` serves it; :mod:`~waybill_auditor.app`
is the service.
"""

from waybill_auditor.causal import causal_order
from waybill_auditor.progress import Observation, OrderFacts, derive, merge, observe
from waybill_auditor.stages import DEFAULT_STUCK_AFTER_S, FINAL, MAIN_LINE, Stage

__all__ = [
    "DEFAULT_STUCK_AFTER_S",
    "FINAL",
    "MAIN_LINE",
    "Observation",
    "OrderFacts",
    "Stage",
    "causal_order",
    "derive",
    "merge",
    "observe",
]
