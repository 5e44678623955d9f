"""Tracking reconciliation: asking the carrier about shipments whose milestones stopped coming.

Carriers push milestones by webhook, and a webhook can be lost: answered 503
while NATS was down until the carrier gave up, dropped by a proxy, never sent.
Every ``tracking_reconcile_interval_s`` the router visits the shipments not yet
at a final milestone (the tracking book's open index, never every shipment
ever) and asks the carrier for the tracking of each that has been quiet for
``tracking_quiet_after_s``: the answer goes through the same path as a webhook
(:meth:`TrackingBook.record`), so a scan already known adds nothing and a new
one is announced once. A shipment is asked about at most once per quiet period
by each replica, and a round makes at most ``tracking_reconcile_batch`` calls.
Finished records are dropped from the index, after announcing a stored
milestone whose announcement was lost (a crash or an outage between storing it
and publishing it; for a final milestone nothing else would). A record that is
gone (expired, or never written after a crash) is dropped once it has been
missing for :data:`MISSING_FOR_S`: a label's index entry is written a moment
before its record, and a round that lists and reads in between must not drop
a shipment being registered (it would never be reconciled).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from waybill_carrier_router.announcements import milestone_announcer
from waybill_carrier_router.config import CarrierRouterSettings
from waybill_carrier_router.fleet import CarrierFleet
from waybill_carrier_router.router import ROUTER
from waybill_carrier_router.tracking_book import Announce, TrackingBook
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.periodic import every
from waybill_runtime.recent import Recent
from waybill_runtime.service import Runtime

__all__ = ["ReconciliationRound", "TrackingReconciler", "reconciling_tracking"]

log = logging.getLogger("waybill.carrier_router.reconciliation")

_REMEMBERED = 100_000
"""Open shipments each of the reconciler's memories keeps (when asked, when found missing)."""

MISSING_FOR_S = 60.0
"""How long an open shipment's record must have been found missing before its index
entry is dropped: far longer than the one write between the two at registration."""


@dataclass
class ReconciliationRound:
    """What one round did."""

    open: int = 0
    asked: int = 0
    announced: int = 0
    closed: int = 0
    failed: int = 0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TrackingReconciler:
    """Asks carriers about quiet shipments and records what they answer."""

    def __init__(
        self,
        *,
        book: TrackingBook,
        fleet: CarrierFleet,
        announce: Announce,
        quiet_after_s: float,
        batch: int,
        metrics: MetricsRegistry | None = None,
        clock: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._book = book
        self._fleet = fleet
        self._announce = announce
        self._quiet_after_s = quiet_after_s
        self._batch = batch
        self._clock = clock
        self._monotonic = monotonic
        self._asked: Recent[str, float] = Recent(_REMEMBERED)
        # Open shipments whose record was missing, and when that was first seen.
        self._missing: Recent[str, float] = Recent(_REMEMBERED)
        self._recovered = (
            metrics.counter(
                "waybill_tracking_reconciled_milestones_total",
                "Milestones found by asking a carrier, not by its webhook, by carrier.",
                ("carrier",),
            )
            if metrics is not None
            else None
        )
        self._rounds = (
            metrics.counter(
                "waybill_tracking_reconciliation_rounds_total",
                "Tracking reconciliation rounds run (each visits the open shipments).",
            )
            if metrics is not None
            else None
        )

    def _missing_long_enough(self, key: str) -> bool:
        now = self._monotonic()
        since = self._missing.get(key)
        if since is None:
            self._missing.put(key, now)
            return False
        return now - since >= MISSING_FOR_S

    async def run_once(self) -> ReconciliationRound:
        """One round over the open shipments."""
        done = ReconciliationRound()
        keys = await self._book.open_keys()
        done.open = len(keys)
        for key in keys:
            if done.asked >= self._batch:
                break
            tracked = await self._book.read(key)
            if tracked is not None and not tracked.announced:
                # Stored, then its announcement lost (a crash, NATS away): said now, or
                # an order whose final milestone it was would wait for ever.
                try:
                    pending = await self._book.announce_pending(key, self._announce)
                except Exception as error:
                    done.failed += 1
                    log.warning(
                        "could not announce the stored milestone of %s: %s: %s",
                        tracked.shipment_id,
                        type(error).__name__,
                        error,
                    )
                    continue
                if pending is not None:
                    done.announced += 1
            if tracked is None:
                if self._missing_long_enough(key):
                    await self._book.close(key)  # expired, or never written
                    self._missing.forget(key)
                    done.closed += 1
                continue
            self._missing.forget(key)
            if tracked.finished:
                await self._book.close(key)  # finished by a report meanwhile
                done.closed += 1
                continue
            if not self._is_quiet(key, tracked.last_heard()):
                continue
            self._asked.put(key, self._monotonic())
            done.asked += 1
            try:
                report = await self._fleet.track(
                    tracked.carrier, tracked.tracking_number, tracked.provider
                )
                outcome = await self._book.record(tracked.carrier, report, self._announce)
            except Exception as error:  # one carrier down must not stop the round
                done.failed += 1
                log.warning(
                    "could not reconcile the tracking of %s (%s %s): %s: %s",
                    tracked.shipment_id,
                    tracked.carrier,
                    tracked.tracking_number,
                    type(error).__name__,
                    error,
                )
                continue
            if outcome.announced:
                done.announced += len(outcome.announced)
                if self._recovered is not None:
                    self._recovered.labels(tracked.carrier).inc(len(outcome.announced))
                log.info(
                    "shipment %s: %d milestone(s) found by asking %s, its webhook never came",
                    tracked.shipment_id,
                    len(outcome.announced),
                    tracked.carrier,
                )
        if self._rounds is not None:
            self._rounds.inc()
        if done.asked or done.closed or done.failed:
            log.info(
                "tracking reconciliation: %d open, %d asked, %d milestone(s) found, "
                "%d closed, %d failed",
                done.open,
                done.asked,
                done.announced,
                done.closed,
                done.failed,
            )
        return done

    def _is_quiet(self, key: str, last_heard: datetime | None) -> bool:
        asked_at = self._asked.get(key)
        if asked_at is not None and self._monotonic() - asked_at < self._quiet_after_s:
            return False
        if last_heard is None:
            return True  # registered before its booking time was kept
        return (self._clock() - last_heard).total_seconds() >= self._quiet_after_s


@contextlib.asynccontextmanager
async def reconciling_tracking(runtime: Runtime[CarrierRouterSettings]) -> AsyncIterator[None]:
    """Run a reconciliation round every ``WAYBILL_TRACKING_RECONCILE_INTERVAL_S`` seconds."""
    settings = runtime.settings
    router = runtime.resource(ROUTER)
    reconciler = TrackingReconciler(
        book=router.tracking,
        fleet=router.fleet,
        announce=milestone_announcer(runtime.publisher),
        quiet_after_s=settings.tracking_quiet_after_s,
        batch=settings.tracking_reconcile_batch,
        metrics=runtime.metrics,
    )
    async with every(
        settings.tracking_reconcile_interval_s,
        reconciler.run_once,
        name="tracking reconciliation",
    ):
        yield
