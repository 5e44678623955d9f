"""Which orders are stuck, as metrics: open orders, stuck ones and the oldest, by stage.

The deadline sweep reads every open order anyway; what it sees is kept here
and published as gauges after each sweep. An order is stuck when its stage's
deadline has passed or it is held for a person. Every stage has a series from
the start (0), so an alert on it needs no ``absent()``. Each instance sweeps
every order: dashboards and alerts take the ``max`` over instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from waybill_orchestrator.stages import FINAL, Stage
from waybill_orchestrator.state import OrderState
from waybill_runtime.metrics import MetricsRegistry

__all__ = ["OPEN_STAGES", "StageCensus", "StuckOrderGauges"]

OPEN_STAGES: tuple[Stage, ...] = tuple(stage for stage in Stage if stage not in FINAL)


@dataclass
class StageCensus:
    """Open orders counted during one sweep."""

    open: dict[str, int] = field(default_factory=dict)
    stuck: dict[str, int] = field(default_factory=dict)
    oldest_s: dict[str, float] = field(default_factory=dict)

    def count(self, state: OrderState, now: datetime) -> None:
        stage = str(state.stage)
        self.open[stage] = self.open.get(stage, 0) + 1
        overdue = state.deadline_at is not None and now >= state.deadline_at
        if overdue or state.stage == Stage.HELD:
            self.stuck[stage] = self.stuck.get(stage, 0) + 1
        age_s = max(0.0, (now - state.stage_since).total_seconds())
        self.oldest_s[stage] = max(self.oldest_s.get(stage, 0.0), age_s)


class StuckOrderGauges:
    """The orchestrator's order gauges; :meth:`publish` sets them from a sweep's census."""

    def __init__(self, metrics: MetricsRegistry) -> None:
        self._open = metrics.gauge(
            "waybill_orders_open", "Open orders by stage (seen by the deadline sweep).", ("stage",)
        )
        self._stuck = metrics.gauge(
            "waybill_orders_stuck",
            "Open orders past their stage's deadline or held for a person, by stage.",
            ("stage",),
        )
        self._oldest = metrics.gauge(
            "waybill_orders_oldest_in_stage_seconds",
            "How long the oldest open order of each stage has been in it.",
            ("stage",),
        )
        self.publish(StageCensus())

    def publish(self, census: StageCensus) -> None:
        for stage in OPEN_STAGES:
            self._open.labels(str(stage)).set(census.open.get(str(stage), 0))
            self._stuck.labels(str(stage)).set(census.stuck.get(str(stage), 0))
            self._oldest.labels(str(stage)).set(census.oldest_s.get(str(stage), 0.0))
