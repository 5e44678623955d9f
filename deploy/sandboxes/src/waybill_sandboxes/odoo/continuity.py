"""Record ids and references that go on from one local run to the next, as a real Odoo's do.

The sandbox keeps its records in memory, while a local stack keeps the mesh's
memory (JetStream's streams and buckets, the audit trail) in its state folder
from one run to the next. A second run whose pickings started at id 1 and
``WH/OUT/00001`` again would meet the first run's orders under the same keys:
the gateway would take them for released long ago and the second ``make demo``
would wait for ever. A real Odoo never hands out an id or a reference twice.
So, given a counters file, the sandbox starts after the ids and sequence numbers
saved there, and saves them again whenever it creates an order or a delivery.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from waybill_sandboxes.odoo.registry import RecordChange, Registry

__all__ = ["SAVED_ON", "keep_counters"]

SAVED_ON = frozenset({"sale.order", "stock.picking"})
"""Creating one of these saves the counters (every id and sequence, not only theirs)."""


def _load(path: Path) -> dict[str, dict[str, int]]:
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as unreadable:
        raise ValueError(
            f"the counters file {path} cannot be read ({unreadable}): delete it"
        ) from None
    return loaded if isinstance(loaded, dict) else {}


def _save(path: Path, registry: Registry) -> None:
    # Written whole and renamed over, so a crash never leaves half a file; owner only,
    # like everything in the stack's state folder.
    partial = path.with_suffix(".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(json.dumps(registry.counters()))
    os.replace(partial, path)


def keep_counters(registry: Registry, path: Path) -> None:
    """Continue after the counters saved in ``path`` (if any); save them as orders come."""
    registry.continue_from(_load(path))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def saved(change: RecordChange) -> None:
        if change.created and change.model in SAVED_ON:
            _save(path, registry)

    registry.listeners.append(saved)
