"""Operator actions from the control tower's pages (each a command on the bus)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from waybill_auditor.views import OrderView, TimelineEntry
from waybill_contracts import SubjectMap


def order_actions(
    order: OrderView | None, entries: Sequence[TimelineEntry], subjects: SubjectMap
) -> list[dict[str, Any]]:
    """The actions an operator may take on this order now (none yet)."""
    return []
