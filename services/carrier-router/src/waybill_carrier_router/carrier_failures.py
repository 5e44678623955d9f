"""What went wrong with each carrier during one booking attempt, and what that means.

A booking fails for good only when every carrier said no (refused the
shipment, sells no fitting service); when any of them was merely unwell
(down, slow, rate limited, circuit open) trying again later may succeed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from waybill_runtime.outcomes import TransientError

__all__ = ["CarrierFailures"]


@dataclass
class CarrierFailures:
    """The carriers tried in one attempt, in order, with why each did not book."""

    tried: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    unwell: set[str] = field(default_factory=set)
    waits_s: list[float] = field(default_factory=list)

    def refused(self, carrier: str, reason: str) -> None:
        """``carrier`` answered, and cannot carry this shipment."""
        self._note(carrier, reason)

    def unavailable(self, carrier: str, reason: str, *, retry_after_s: float | None = None) -> None:
        """``carrier`` could not be asked now; it may work later."""
        self._note(carrier, reason)
        self.unwell.add(carrier)
        if retry_after_s is not None:
            self.waits_s.append(retry_after_s)

    def record(self, carrier: str, error: BaseException) -> None:
        """Sort a carrier call's error into refused or unavailable."""
        if isinstance(error, TransientError):
            self.unavailable(carrier, str(error), retry_after_s=error.retry_after_s)
        else:
            self.refused(carrier, str(error))

    @property
    def worth_retrying(self) -> bool:
        """True when some carrier was only unwell, so a later attempt may book."""
        return bool(self.unwell)

    def shortest_wait_s(self) -> float | None:
        """The soonest any carrier asked to be called again, if any did."""
        return min(self.waits_s) if self.waits_s else None

    def summary(self) -> str:
        """One line naming each carrier and why it did not book."""
        if not self.tried:
            return "no carrier was tried"
        return "; ".join(self.reasons[carrier] for carrier in self.tried)

    def _note(self, carrier: str, reason: str) -> None:
        if carrier not in self.tried:
            self.tried.append(carrier)
        prefix = f"{carrier}: "
        self.reasons[carrier] = reason if reason.startswith(prefix) else prefix + reason
