"""Warehouse stock adjustments as the control tower shows them: those waiting for an
operator's approval, and the latest applied.

The odoo-gateway holds an adjustment larger than its threshold and announces
``InventoryAdjustmentHeld``; once applied (at once, or after an approval) it
announces ``InventoryAdjustmentApplied``, both keyed by the adjustment's
reference. An adjustment waits while the trail has its latest "held" and no
"applied".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TypeVar

import msgspec

from waybill_auditor.records import StoredMessage
from waybill_auditor.store import AuditStore
from waybill_contracts import SubjectMap
from waybill_contracts.events import InventoryAdjustmentApplied, InventoryAdjustmentHeld

__all__ = ["Adjustments", "adjustments"]

log = logging.getLogger(__name__)

E = TypeVar("E", InventoryAdjustmentHeld, InventoryAdjustmentApplied)


class Adjustments(msgspec.Struct, frozen=True, kw_only=True):
    """What the adjustments page lists."""

    waiting: list[InventoryAdjustmentHeld]
    """Held and not applied, oldest first (the longest waiting on top)."""
    applied: list[InventoryAdjustmentApplied]
    """The latest applied, newest first."""


def _decoded(rows: Sequence[StoredMessage], type_: type[E]) -> list[E]:
    decode = msgspec.json.Decoder(type_).decode
    found = []
    for row in rows:
        try:
            found.append(decode(row.body))
        except msgspec.DecodeError as error:
            # Recorded as sent; a body that breaks the contract cannot be shown.
            log.warning("%s %s cannot be read: %s", type_.__name__, row.id, error)
    return found


async def adjustments(store: AuditStore, subjects: SubjectMap, *, applied: int) -> Adjustments:
    """The adjustments waiting for approval, and the latest ``applied`` applied ones."""
    held = _decoded(
        await store.latest_per_subject(subjects.ce_type_for(InventoryAdjustmentHeld)),
        InventoryAdjustmentHeld,
    )
    done = _decoded(
        await store.latest_per_subject(subjects.ce_type_for(InventoryAdjustmentApplied)),
        InventoryAdjustmentApplied,
    )
    applied_refs = {a.reference for a in done}
    waiting = sorted((h for h in held if h.reference not in applied_refs), key=lambda h: h.held_at)
    done.sort(key=lambda a: a.applied_at, reverse=True)
    return Adjustments(waiting=waiting, applied=done[:applied])
