"""Waybill's orchestrator: the order-to-ship process, one state machine per order.

:mod:`~waybill_orchestrator.process` is the pure state machine;
:mod:`~waybill_orchestrator.workflow` keeps its states in the workflow bucket
with compare-and-set and sends what it decides; :mod:`~waybill_orchestrator.app`
is the service.
"""

from waybill_orchestrator.changes import DeadlineCheck, Decision, NotYet, Observed, Policy
from waybill_orchestrator.process import HANDLED_EVENTS, order_ref_of, transition
from waybill_orchestrator.stages import Stage
from waybill_orchestrator.state import OrderState

__all__ = [
    "HANDLED_EVENTS",
    "DeadlineCheck",
    "Decision",
    "NotYet",
    "Observed",
    "OrderState",
    "Policy",
    "Stage",
    "order_ref_of",
    "transition",
]
