"""The receiving dock for returns: expected returns, receipt, inspection, and their webhooks.

No HTTP and no timing here, as in :mod:`.warehouse`: the dock moves only when
told to (a parcel arrives when a test or an integrator says it did, since the
sandboxes do not talk to each other), and reports each change through
``emit(event_type, data)``: ``return.received``, ``return.inspected``,
``return.cancelled``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from waybill_sandboxes.wms.return_records import (
    ExpectedReturnRequest,
    InboundReturn,
    InspectionPlan,
    ReturnLine,
    ReturnStatus,
)
from waybill_sandboxes.wms.warehouse import Warehouse

__all__ = ["ReturnConflict", "ReturnNotReady", "ReturnsDock", "UnknownReturn"]

Emit = Callable[[str, Any], None]


class UnknownReturn(LookupError):
    """No return with that id, client return ref or tracking number."""


class ReturnConflict(ValueError):
    """A create reused a client return ref with different content."""


class ReturnNotReady(ValueError):
    """The return is not in the state the step needs (e.g. received twice, cancelled late)."""


class ReturnsDock:
    """Expected returns of one warehouse and what the dock did with each.

    ``reject_all`` judges every received unit damaged unless a return has its
    own :class:`InspectionPlan`; plans may be set before the return exists.
    """

    def __init__(self, *, warehouse: Warehouse, emit: Emit, reject_all: bool = False) -> None:
        self.warehouse = warehouse
        self.reject_all = reject_all
        self.returns: dict[str, InboundReturn] = {}
        self.creations: Counter[str] = Counter()
        """Create calls per client return ref, replays included."""
        self._emit = emit
        self._by_ref: dict[str, str] = {}
        self._requests: dict[str, ExpectedReturnRequest] = {}
        self._plans: dict[str, InspectionPlan] = {}
        self._numbers = itertools.count(1)

    # -- expecting ----------------------------------------------------------------

    def expect(self, request: ExpectedReturnRequest) -> tuple[InboundReturn, bool]:
        """Record an expected return, or give back the one a replay names: ``(return, created)``.

        Raises :class:`ReturnConflict` when the ref is already used by a different request.
        """
        ref = request.client_return_ref
        self.creations[ref] += 1
        if ref in self._by_ref:
            if self._requests[ref] != request:
                raise ReturnConflict(
                    f"client return ref {ref!r} is already used by return "
                    f"{self._by_ref[ref]} with different content: use a new ref"
                )
            return self.returns[self._by_ref[ref]], False
        now = self.warehouse.now()
        expected = InboundReturn(
            return_id=f"RA-{next(self._numbers):06d}",
            client_return_ref=ref,
            warehouse=request.warehouse,
            status=ReturnStatus.EXPECTED,
            lines=[
                ReturnLine(
                    line_no=line.line_no or n, sku=line.sku, uom=line.uom, qty_expected=line.qty
                )
                for n, line in enumerate(request.lines, start=1)
            ],
            created_at=now,
            updated_at=now,
            tracking_number=request.tracking_number,
            carrier=request.carrier,
            original_order_ref=request.original_order_ref,
            reason=request.reason,
        )
        self.returns[expected.return_id] = expected
        self._by_ref[ref] = expected.return_id
        self._requests[ref] = request
        return expected, True

    def get(self, return_id: str) -> InboundReturn:
        """The return with that WMS id, or :class:`UnknownReturn`."""
        try:
            return self.returns[return_id]
        except KeyError:
            raise UnknownReturn(f"no return {return_id!r}") from None

    def find(self, key: str) -> InboundReturn:
        """The return with that id, client return ref or return tracking number.

        A tracking number can name several returns (one cancelled, then announced
        again under a new ref): the one still expected wins, else the newest.
        """
        found = [
            candidate
            for candidate in self.returns.values()
            if key in (candidate.return_id, candidate.client_return_ref, candidate.tracking_number)
        ]
        if not found:
            raise UnknownReturn(f"no return with id, client return ref or tracking number {key!r}")
        waiting = [r for r in found if r.status is ReturnStatus.EXPECTED]
        return (waiting or found)[-1]

    def updated_since(self, since: datetime | None) -> list[InboundReturn]:
        """Returns changed at or after ``since`` (all when None), oldest change first."""
        found = [r for r in self.returns.values() if since is None or r.updated_at >= since]
        return sorted(found, key=lambda r: r.updated_at)

    def cancel(self, return_id: str) -> InboundReturn:
        """Call off a return whose parcel has not arrived; a second cancel is a no-op."""
        found = self.get(return_id)
        if found.status is ReturnStatus.CANCELLED:
            return found
        if found.status is not ReturnStatus.EXPECTED:
            raise ReturnNotReady(
                f"return {found.client_return_ref!r} is already {found.status}: "
                "the goods are in the warehouse, it can no longer be cancelled"
            )
        found.status = ReturnStatus.CANCELLED
        found.cancelled_at = found.updated_at = self.warehouse.now()
        self._emit("return.cancelled", found)
        return found

    # -- steering the dock (tests, integrators) -------------------------------------

    def plan_inspection(self, client_return_ref: str, plan: InspectionPlan) -> None:
        """Decide what the dock will find in that return (damaged or missing units, or all bad)."""
        self._plans[client_return_ref] = plan

    def receive(self, key: str) -> InboundReturn:
        """The parcel arrived: count it (units the plan says are missing are not in the box)."""
        found = self.find(key)
        if found.status is not ReturnStatus.EXPECTED:
            raise ReturnNotReady(
                f"return {found.client_return_ref!r} is {found.status}: only an expected "
                "return can be received"
            )
        missing = {f.sku: f.missing for f in self._plan(found).lines}
        for line in found.lines:
            line.qty_missing = min(line.qty_expected, missing.get(line.sku, 0.0))
            line.qty_received = line.qty_expected - line.qty_missing
        found.status = ReturnStatus.RECEIVED
        found.received_at = found.updated_at = self.warehouse.now()
        self._emit("return.received", found)
        return found

    def inspect(self, key: str) -> InboundReturn:
        """Judge every received unit; resellable units go back on the shelf."""
        found = self.find(key)
        if found.status is not ReturnStatus.RECEIVED:
            raise ReturnNotReady(
                f"return {found.client_return_ref!r} is {found.status}: only a received "
                "return can be inspected"
            )
        plan = self._plan(found)
        damaged = {f.sku: f.damaged for f in plan.lines}
        for line in found.lines:
            bad = line.qty_received if plan.reject_all else damaged.get(line.sku, 0.0)
            line.qty_damaged = min(line.qty_received, bad)
            line.qty_resellable = line.qty_received - line.qty_damaged
            self.warehouse.put_away(line.sku, line.qty_resellable)
        found.status = ReturnStatus.INSPECTED
        found.inspected_at = found.updated_at = self.warehouse.now()
        self._emit("return.inspected", found)
        return found

    def _plan(self, found: InboundReturn) -> InspectionPlan:
        default = InspectionPlan(reject_all=self.reject_all)
        return self._plans.get(found.client_return_ref, default)
