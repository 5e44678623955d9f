"""Freight reconciliation: the carriers' invoices matched to the labels booked and their quotes.

Every ``freight_reconcile_interval_s`` (0: never) a run asks each carrier for
the invoices billed since its watermark, matches every line to the label it
names (:mod:`waybill_carrier_router.freight_matching`) and announces one
``FreightInvoiceReconciled`` per invoice, with the lines over the tolerance,
for unknown labels or unreadable. An invoice reconciled once is remembered and
never reconciled again, so the overlap between runs (carrier A's reports count
whole days) costs nothing but a read. A carrier whose billing API fails (after
the fleet's retries) fails the run with its reason; its watermark stays, so the
next run asks again. Each run is recorded with a deadline: a run still
``running`` past it (a crashed or hanging replica) is reported stuck by the next.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

from waybill_carrier_router.carriers.invoices import CarrierInvoice
from waybill_carrier_router.config import CarrierRouterSettings
from waybill_carrier_router.fleet import CarrierFleet
from waybill_carrier_router.freight_book import (
    BookedFreight,
    FreightBook,
    FreightRun,
    ReconciledInvoice,
)
from waybill_carrier_router.freight_matching import (
    FreightTolerance,
    in_pages,
    reconcile_invoice,
)
from waybill_carrier_router.router import ROUTER
from waybill_contracts import fact_id
from waybill_contracts.events import FreightInvoiceReconciled
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.periodic import every
from waybill_runtime.service import Runtime

__all__ = ["FreightReconciler", "reconciling_freight"]

log = logging.getLogger("waybill.carrier_router.freight")

_OVERLAP = timedelta(days=1)
"""How far before the last run's start the next one asks again (late-posted invoices)."""

_LINES_PER_PAGE = 500
"""Invoice lines per FreightInvoiceReconciled: well under NATS's 1 MB message limit."""

Publish = Callable[[FreightInvoiceReconciled], Awaitable[None]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FreightReconciler:
    """One run over every carrier's new invoices."""

    def __init__(
        self,
        *,
        book: FreightBook,
        fleet: CarrierFleet,
        publish: Publish,
        tolerance: FreightTolerance,
        deadline_s: float,
        first_lookback: timedelta,
        metrics: MetricsRegistry,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._book = book
        self._fleet = fleet
        self._publish = publish
        self._tolerance = tolerance
        self._deadline = timedelta(seconds=deadline_s)
        self._first_lookback = first_lookback
        self._clock = clock
        self._runs = metrics.counter(
            "waybill_freight_runs_total", "Freight reconciliation runs, by outcome.", ("outcome",)
        )
        self._lines = metrics.counter(
            "waybill_freight_invoice_lines_total",
            "Freight invoice lines reconciled, by carrier and outcome.",
            ("carrier", "outcome"),
        )

    async def run_once(self) -> FreightRun:
        """Reconcile every carrier's invoices not reconciled yet; the run's record."""
        started = self._clock()
        previous = await self._book.last_run()
        if previous is not None and previous.stuck(started):
            self._runs.labels("stuck").inc()
            log.error(
                "freight reconciliation run %s started %s missed its deadline %s and never "
                "finished: reported stuck",
                previous.run_id,
                previous.started_at.isoformat(),
                previous.deadline.isoformat(),
            )
        run = FreightRun(
            run_id=uuid.uuid4().hex, started_at=started, deadline=started + self._deadline
        )
        await self._book.save_run(run)
        invoices = 0
        failures: list[str] = []
        for carrier in self._fleet.codes:
            try:
                invoices += await self._reconcile_carrier(carrier, started)
            except Exception as error:  # one carrier's billing down must not stop the others
                failures.append(f"{carrier}: {type(error).__name__}: {error}")
                log.warning(
                    "freight reconciliation of %s failed: %s: %s",
                    carrier,
                    type(error).__name__,
                    error,
                )
        finished = FreightRun(
            run_id=run.run_id,
            started_at=started,
            deadline=run.deadline,
            state="failed" if failures else "completed",
            finished_at=self._clock(),
            invoices=invoices,
            failures=tuple(failures),
        )
        await self._book.save_run(finished)
        self._runs.labels(finished.state).inc()
        return finished

    async def _reconcile_carrier(self, carrier: str, started: datetime) -> int:
        since = await self._book.watermark(carrier) or started - self._first_lookback
        done = 0
        for invoice in await self._fleet.invoices(carrier, since, started):
            if await self._book.reconciled(carrier, invoice.invoice_id) is not None:
                continue
            await self._reconcile(invoice)
            done += 1
        await self._book.advance_watermark(carrier, started - _OVERLAP)
        return done

    async def _reconcile(self, invoice: CarrierInvoice) -> None:
        booked: dict[str, BookedFreight] = {}
        for line in invoice.lines:
            if line.carrier_reference and line.carrier_reference not in booked:
                label = await self._book.label(invoice.carrier, line.carrier_reference)
                if label is not None:
                    booked[line.carrier_reference] = label
        report = reconcile_invoice(invoice, booked, self._tolerance, reconciled_at=self._clock())
        # Announced before it is marked done: a crash in between announces it again,
        # with the same ids, which the bus keeps once.
        for page in in_pages(report, _LINES_PER_PAGE):
            await self._publish(page)
        await self._book.mark_reconciled(
            invoice.carrier,
            invoice.invoice_id,
            ReconciledInvoice(
                reconciliation_id=report.reconciliation_id,
                lines=report.lines,
                matched=report.matched,
                discrepancies=len(report.discrepancies),
                reconciled_at=report.reconciled_at,
            ),
        )
        self._lines.labels(invoice.carrier, "matched").inc(report.matched)
        for found in report.discrepancies:
            self._lines.labels(invoice.carrier, found.kind).inc()
            log.warning(
                "freight invoice %s of %s, line %s: %s: %s",
                invoice.invoice_id,
                invoice.carrier,
                found.line_id,
                found.kind,
                found.reason,
            )
        log.info(
            "freight invoice %s of %s reconciled: %d line(s), %d matched, %d discrepancies",
            invoice.invoice_id,
            invoice.carrier,
            report.lines,
            report.matched,
            len(report.discrepancies),
        )


@contextlib.asynccontextmanager
async def reconciling_freight(runtime: Runtime[CarrierRouterSettings]) -> AsyncIterator[None]:
    """A run every ``WAYBILL_FREIGHT_RECONCILE_INTERVAL_S`` seconds (0: none)."""
    settings = runtime.settings
    if settings.freight_reconcile_interval_s <= 0:
        yield
        return
    router = runtime.resource(ROUTER)

    async def publish(report: FreightInvoiceReconciled) -> None:
        await runtime.publisher.publish(
            report,
            fact_id=fact_id(
                "freight.invoice_reconciled", report.carrier, report.invoice_id, str(report.page)
            ),
        )

    reconciler = FreightReconciler(
        book=router.freight,
        fleet=router.fleet,
        publish=publish,
        tolerance=settings.tolerance(),
        deadline_s=settings.freight_run_deadline_s,
        first_lookback=timedelta(days=settings.freight_first_lookback_days),
        metrics=runtime.metrics,
    )
    async with every(
        settings.freight_reconcile_interval_s, reconciler.run_once, name="freight reconciliation"
    ):
        yield
