"""What freight reconciliation keeps: labels and their quotes, invoices done, watermarks, runs.

- ``freight-label.<carrier>.<carrier id>`` (tracking bucket, expires with the
  tracking records): written at booking, the label a carrier's invoice line
  names by the carrier's own id of the purchase, with the quote it was bought at;
- ``freight-invoice.<carrier>.<invoice id>`` (tracking bucket): an invoice
  already reconciled, so a run that sees it again does nothing again;
- ``freight-watermark.<carrier>`` (watermarks bucket, never expires): where
  the next run starts asking that carrier;
- ``freight-run.latest`` (watermarks bucket): the last run, its deadline and
  outcome, so a run that never finished is seen as stuck.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Literal

import msgspec
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_carrier_router.kv_records import KvRecords
from waybill_contracts.model import Money

__all__ = ["BookedFreight", "FreightBook", "FreightRun", "ReconciledInvoice"]


class BookedFreight(msgspec.Struct, frozen=True, kw_only=True):
    """A label as its carrier's invoice will name it, and what it was quoted."""

    shipment_id: str
    order_ref: str
    carrier: str
    carrier_reference: str
    tracking_number: str
    quoted: Money
    booked_at: datetime


class ReconciledInvoice(msgspec.Struct, frozen=True, kw_only=True):
    """An invoice reconciled once (never again)."""

    reconciliation_id: str
    lines: int
    matched: int
    discrepancies: int
    reconciled_at: datetime


class FreightRun(msgspec.Struct, frozen=True, kw_only=True):
    """One freight reconciliation run."""

    run_id: str
    started_at: datetime
    deadline: datetime
    state: Literal["running", "completed", "failed"] = "running"
    finished_at: datetime | None = None
    invoices: int = 0
    failures: tuple[str, ...] = ()
    """Per carrier that could not be reconciled, why."""

    def stuck(self, now: datetime) -> bool:
        """Still running after its deadline (crashed, or hanging on a carrier)."""
        return self.state == "running" and now > self.deadline


class _Watermark(msgspec.Struct, frozen=True, kw_only=True):
    since: datetime


class FreightBook:
    """Freight records in the tracking bucket (expiring) and the watermarks bucket (kept)."""

    def __init__(self, tracking: KeyValue, watermarks: KeyValue) -> None:
        self._labels = KvRecords(tracking, BookedFreight, prefix="freight-label")
        self._invoices = KvRecords(tracking, ReconciledInvoice, prefix="freight-invoice")
        self._watermarks = KvRecords(watermarks, _Watermark, prefix="freight-watermark")
        self._runs = KvRecords(watermarks, FreightRun, prefix="freight-run")

    async def remember(self, label: BookedFreight) -> None:
        """Keep a booked label for its invoice (writing the same label again keeps the first)."""
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self._labels.put(
                self._labels.key(label.carrier, label.carrier_reference), label, revision=None
            )

    async def label(self, carrier: str, carrier_reference: str) -> BookedFreight | None:
        found = await self._labels.get(self._labels.key(carrier, carrier_reference))
        return found[0] if found else None

    async def reconciled(self, carrier: str, invoice_id: str) -> ReconciledInvoice | None:
        found = await self._invoices.get(self._invoices.key(carrier, invoice_id))
        return found[0] if found else None

    async def mark_reconciled(self, carrier: str, invoice_id: str, done: ReconciledInvoice) -> None:
        with contextlib.suppress(KeyWrongLastSequenceError):  # another replica was first
            await self._invoices.put(self._invoices.key(carrier, invoice_id), done, revision=None)

    async def watermark(self, carrier: str) -> datetime | None:
        found = await self._watermarks.get(self._watermarks.key(carrier))
        return found[0].since if found else None

    async def advance_watermark(self, carrier: str, since: datetime) -> None:
        """Move the carrier's watermark to ``since``, never backwards."""

        def forward(current: _Watermark | None) -> _Watermark | None:
            if current is not None and current.since >= since:
                return None
            return _Watermark(since=since)

        await self._watermarks.change(self._watermarks.key(carrier), forward)

    async def last_run(self) -> FreightRun | None:
        found = await self._runs.get(self._runs.key("latest"))
        return found[0] if found else None

    async def save_run(self, run: FreightRun) -> None:
        await self._runs.change(self._runs.key("latest"), lambda _: run)
