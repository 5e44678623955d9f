"""Partners' circuit breakers as the control tower shows them: the latest announcement of each.

Each service instance announces its breakers' transitions
(``PartnerCircuitChanged``, one per transition, keyed
``<service>/<instance>/<partner>``); the latest one recorded for a key is that
breaker's state. A breaker never announced is closed (every breaker starts
closed), so the tower lists only breakers that have moved at least once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from waybill_auditor.store import AuditStore
from waybill_contracts import SubjectMap
from waybill_contracts.events import PartnerCircuitChanged

__all__ = ["BreakerState", "breaker_states", "of_service"]

log = logging.getLogger(__name__)

_decode = msgspec.json.Decoder(PartnerCircuitChanged).decode


class BreakerState(msgspec.Struct, frozen=True, kw_only=True):
    """Where one instance's breaker for one partner stands, since when and why."""

    service: str
    instance: str
    partner: str
    state: str
    previous_state: str
    since: datetime
    reason: str

    @property
    def troubled(self) -> bool:
        """Open or half-open: calls to the partner fail at once, or only trials pass."""
        return self.state != "closed"

    @property
    def label(self) -> str:
        """The state in words (``half-open``)."""
        return self.state.replace("_", "-")


async def breaker_states(store: AuditStore, subjects: SubjectMap) -> list[BreakerState]:
    """Every announced breaker's latest state, troubled ones first, then by service and partner."""
    found = []
    for row in await store.latest_per_subject(subjects.ce_type_for(PartnerCircuitChanged)):
        try:
            news = _decode(row.body)
        except msgspec.DecodeError as error:
            # Recorded as sent; a body that breaks the contract cannot say a state.
            log.warning("circuit breaker news %s cannot be read: %s", row.id, error)
            continue
        found.append(
            BreakerState(
                service=news.service,
                instance=news.instance,
                partner=news.partner,
                state=news.state,
                previous_state=news.previous_state,
                since=news.changed_at.astimezone(UTC),
                reason=news.reason,
            )
        )
    return sorted(found, key=lambda b: (not b.troubled, b.service, b.partner, b.instance))


def of_service(states: Sequence[BreakerState], service: str) -> list[BreakerState]:
    """The breakers of one service's instances."""
    return [state for state in states if state.service == service]
