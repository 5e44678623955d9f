"""Governance of the contracts: export them, and check changes against a baseline.

``waybill contracts export|check|snapshot`` is a thin front end to these functions.
"""

from __future__ import annotations

from pathlib import Path

from waybill_contracts.governance.compat import CompatReport, compare
from waybill_contracts.governance.export import asyncapi_document, export, message_schemas
from waybill_contracts.governance.snapshot import (
    BASELINE_PATH,
    BaselineError,
    Snapshot,
    load_baseline,
    snapshot_json,
    take_snapshot,
    write_baseline,
)

__all__ = [
    "BASELINE_PATH",
    "BaselineError",
    "CompatReport",
    "Snapshot",
    "asyncapi_document",
    "check",
    "compare",
    "export",
    "load_baseline",
    "message_schemas",
    "snapshot_json",
    "take_snapshot",
    "write_baseline",
]


def check(baseline_path: Path = BASELINE_PATH) -> CompatReport:
    """Compare the contracts as they are now with the baseline at ``baseline_path``."""
    return compare(load_baseline(baseline_path), take_snapshot())
