"""What this process knows is out for each recent order, so seeing it again costs no work.

The reconciliation poll reads every order changed in its window, which under
a steady flow is every order the webhooks have just reported; a webhook may
also come twice. Each such sighting used to map the snapshot to the facts of
every stage it reached and ask the ledger about each, only to find them all
published. An order's ``updated_at`` moves with every change the WMS makes,
so a snapshot with the same ``updated_at`` and status as one whose facts are
all out can add nothing: it is passed over.

Each webhook of an order repeats every stage before its own (``packed``
carries accepted and picked), so the stages whose facts are out are kept as
well: a snapshot builds and asks the ledger about its new stages only (issue
18: a shipped order's four webhooks built ten facts, one new in each). A
stage's fact id comes from the order ref and the stage alone, so a stage
noted here names exactly a fact the ledger has published or found recorded.
The WMS sends an order's webhooks as its stages happen, so when the
warehouse is quick they arrive together: each sighting of an order maps and
publishes under :meth:`SettledOrders.hold`, one at a time, and so finds what
the one before it published (before, each built and asked about every stage
it carries, and waited on the others' publishes of the same facts).
Only memory: a restarted bridge maps and asks again (the ledger's records
still keep each fact once).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime

from waybill_runtime.recent import Recent
from waybill_runtime.resilience import KeyedLock
from waybill_wms_bridge.lifecycle import order_stages
from waybill_wms_bridge.wms_wire import WmsOrder

__all__ = ["SETTLED_REMEMBERED", "SettledOrders"]

SETTLED_REMEMBERED = 4096
"""How many orders are remembered (least recently seen forgotten first)."""

_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Settled:
    snapshot: tuple[datetime, str] | None
    """``updated_at`` and status of the latest snapshot whose facts are all out, if any."""
    stages: frozenset[str]
    """The stages whose facts are out."""


class SettledOrders:
    """For each recent order: its latest snapshot whose facts were all published, and the
    stages whose facts are out."""

    def __init__(self, remembered: int = SETTLED_REMEMBERED) -> None:
        self._latest: Recent[str, _Settled] = Recent(remembered)
        self._busy = KeyedLock()

    def hold(self, order_ref: str) -> AbstractAsyncContextManager[None]:
        """Publish the facts of ``order_ref`` under this, one sighting at a time, so each
        sighting finds what the one before it published in :meth:`stages_out`."""
        return self._busy.hold(order_ref)

    def has(self, order: WmsOrder) -> bool:
        """Whether the facts of exactly this snapshot of ``order`` are all out."""
        known = self._latest.get(order.client_order_ref)
        return known is not None and known.snapshot == (order.updated_at, order.status)

    def stages_out(self, order_ref: str) -> frozenset[str]:
        """The stages of ``order_ref`` whose facts are known to be out (none when forgotten)."""
        known = self._latest.get(order_ref)
        return known.stages if known is not None else _NONE

    def add(self, order: WmsOrder) -> None:
        """Every fact of this snapshot of ``order`` is published (or was before)."""
        reached = frozenset(order_stages(order))
        known = self._latest.get(order.client_order_ref)
        stages = reached if known is None or known.stages <= reached else reached | known.stages
        self._latest.put(order.client_order_ref, _Settled((order.updated_at, order.status), stages))

    def add_stage(self, order_ref: str, stage: str) -> None:
        """The fact of ``stage`` of ``order_ref`` is published (or was before), its snapshot
        unknown: the accepted fact of a release, the cancelled fact of a cancel."""
        known = self._latest.get(order_ref)
        if known is None:
            self._latest.put(order_ref, _Settled(None, frozenset((stage,))))
        elif stage not in known.stages:
            self._latest.put(order_ref, _Settled(known.snapshot, known.stages | {stage}))
