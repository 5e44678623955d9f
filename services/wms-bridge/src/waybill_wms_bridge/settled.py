"""Order snapshots whose facts are all published, so seeing one again costs no work.

The reconciliation poll reads every order changed in its window, which under
a steady flow is every order the webhooks have just reported; a webhook may
also come twice. Each such sighting used to map the snapshot to the facts of
every stage it reached and ask the ledger about each, only to find them all
published. An order's ``updated_at`` moves with every change the WMS makes,
so a snapshot with the same ``updated_at`` and status as one whose facts are
all out can add nothing: it is passed over. Only memory: a restarted bridge
maps and asks again (the ledger's records still keep each fact once).
"""

from __future__ import annotations

from datetime import datetime

from waybill_runtime.recent import Recent
from waybill_wms_bridge.wms_wire import WmsOrder

__all__ = ["SETTLED_REMEMBERED", "SettledOrders"]

SETTLED_REMEMBERED = 4096
"""How many orders' latest settled snapshots are kept (least recently seen forgotten first)."""


class SettledOrders:
    """The latest snapshot of each recent order whose facts were all published."""

    def __init__(self, remembered: int = SETTLED_REMEMBERED) -> None:
        self._latest: Recent[str, tuple[datetime, str]] = Recent(remembered)

    def has(self, order: WmsOrder) -> bool:
        """Whether the facts of exactly this snapshot of ``order`` are all out."""
        return self._latest.get(order.client_order_ref) == (order.updated_at, order.status)

    def add(self, order: WmsOrder) -> None:
        """Every fact of this snapshot of ``order`` is published (or was before)."""
        self._latest.put(order.client_order_ref, (order.updated_at, order.status))
