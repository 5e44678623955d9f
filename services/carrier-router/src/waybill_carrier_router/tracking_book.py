"""Where each tracked shipment stands, keyed by carrier and tracking number.

Written when a label is booked (the tracking number → shipment and order
link a webhook needs) and moved forward by tracking reports, with
compare-and-set so two replicas never move a shipment backwards. A milestone
is announced first and stored after, so a publish that failed leaves the
record where it was and the next report (or the reconciliation) announces
it again (the message id, derived from the scan, keeps the bus from storing
it twice). Records stored and never announced by older routers (the
``announced`` flag false) are announced on their next report.

Shipments not yet at a final milestone (delivered, returned, cancelled) are
also members of an index (``tracking-open.<carrier>.<tracking number>``, the
runtime's :class:`~waybill_runtime.bus.key_index.KeyIndex`), so the tracking
reconciliation visits those only (:mod:`waybill_carrier_router.reconciliation`).

A carrier reports a label's scans moments apart (label created, picked up, ...),
and each report would read the record the report before it just wrote. The book
recalls the record and revision it last read or wrote for a label for
:data:`RECALL_S` seconds and decides on that instead: a move decided on it is
written with compare-and-set (a replica that wrote meanwhile makes the write
fail, and the scan is decided again on a fresh read), and a report that moves
nothing on it is decided again on a fresh read, so nothing is left unannounced
because of it. The trade, with several replicas: a move decided on a record
another replica moved on meanwhile is published before its write fails. Such a
scan was announced by that replica less than :data:`RECALL_S` ago, under the
same message id, so the stream drops the repeat (its duplicate window is two
minutes); or it was never announced, being older than that replica's milestone,
and goes out late, which two replicas announcing at once could already do.

A carrier's first webhook (label created) often arrives while the label's
booking is still being stored. While this process books labels
(:meth:`TrackingBook.expecting`), a report for a label not tracked yet waits up
to :data:`REGISTRATION_WAIT_S` for its registration here, rather than being
answered "unknown" and sent again by the carrier. A label the booking has
already bought (the carrier answered; :class:`Expecting`) is not even read:
its report waits for the registration and decides on what it stored. And while
labels are being booked here, the legacy bucket is looked at only once that
wait is over, since a report that beat its registration is by far the likelier.

A return label (customer to warehouse) is registered too, marked
``returning`` and left out of the index: carriers send its scans to the same
webhook, and no contract carries a return parcel's milestones yet, so its
reports are taken (known, nothing announced, nothing written) instead of being
answered "unknown" until the carrier gives up on them.

The records live in the ``tracking`` bucket, whose entries expire (see the
contracts' ``KV_TTL_S``). Up to contracts 1.0 they lived in ``watermarks``,
which never expires: a label registered there before the upgrade is moved
over the first time it is looked up, so its webhooks keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import msgspec
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_carrier_router.carriers.model import LabelPurchase, TrackingReport
from waybill_carrier_router.kv_records import KvRecords
from waybill_carrier_router.milestones import TERMINAL_PHASE, Progress, advance
from waybill_contracts.model import Milestone
from waybill_runtime.bus.key_index import KeyIndex
from waybill_runtime.outcomes import TransientError
from waybill_runtime.recent import Recent
from waybill_runtime.resilience import KeyedLock

__all__ = [
    "OPEN_PREFIX",
    "RECALL_S",
    "REGISTRATION_WAIT_S",
    "Announce",
    "Expecting",
    "TrackedShipment",
    "TrackingBook",
    "TrackingOutcome",
]

_PREFIX = "tracking"

_CAS_ATTEMPTS = 10
"""Compare-and-set attempts per scan before the report is tried again later."""

OPEN_PREFIX = "tracking-open."
"""The index of shipments not yet at a final milestone: ``tracking-open.<carrier>.<number>``."""

RECALL_S = 10.0
"""How long a record read or written here is decided on without reading it again: well
inside the stream's two-minute duplicate window, so a milestone announced again on a
record another replica moved on meanwhile is dropped as a repeat."""

RECALLED = 4096
"""How many labels' records are recalled at most (the least recently used forgotten first)."""

REGISTRATION_WAIT_S = 1.0
"""Longest wait of a report for a label this process may be registering right now (less
than the carriers' webhook timeouts; the sandboxes' is 2 s)."""


def _open_name(key: str) -> str:
    return key.removeprefix(_PREFIX + ".")


class TrackedShipment(msgspec.Struct, frozen=True, kw_only=True):
    """A booked label and how far its shipment has come."""

    shipment_id: str
    order_ref: str
    carrier: str
    tracking_number: str
    carrier_reference: str | None = None
    provider: str | None = None
    progress: Progress | None = None
    announced: bool = True
    """False between storing a new milestone and publishing it, as routers before 2026-12-07
    stored them; milestones are now published first and stored announced."""
    registered_at: datetime | None = None
    """When the label was booked (None: registered before this was kept)."""
    returning: bool = False
    """A return label: its scans are taken and not announced (see the module's docstring)."""

    @classmethod
    def bought(
        cls, shipment_id: str, order_ref: str, purchase: LabelPurchase, *, returning: bool = False
    ) -> TrackedShipment:
        """The label ``purchase`` bought for a shipment (``returning``: a return label's
        label id), as it is registered."""
        return cls(
            shipment_id=shipment_id,
            order_ref=order_ref,
            carrier=purchase.carrier,
            tracking_number=purchase.tracking_number,
            carrier_reference=purchase.carrier_reference,
            provider=purchase.provider,
            registered_at=purchase.bought_at,
            returning=returning,
        )

    @property
    def finished(self) -> bool:
        """Whether the shipment reached a final milestone (nothing more will come)."""
        return self.progress is not None and self.progress.phase >= TERMINAL_PHASE

    def last_heard(self) -> datetime | None:
        """The latest of its booking and its latest milestone: how long it has been quiet."""
        times = [
            t
            for t in (self.registered_at, self.progress and self.progress.milestone.occurred_at)
            if t
        ]
        return max(times) if times else None


Announce = Callable[[TrackedShipment, Milestone], Awaitable[None]]
"""Publishes one milestone of a tracked shipment."""


class Expecting:
    """One booking under way (:meth:`TrackingBook.expecting`): the labels it bought."""

    def __init__(self, book: TrackingBook) -> None:
        self._book = book
        self.keys: list[str] = []

    def bought(self, carrier: str, tracking_number: str) -> None:
        """The carrier sold this label: its reports wait for its registration, reading nothing."""
        key = self._book._key(carrier, tracking_number)
        self.keys.append(key)
        self._book._expect(key)


@dataclass(frozen=True)
class TrackingOutcome:
    """What one tracking report changed."""

    known: bool
    """False when the tracking number belongs to no shipment the router booked."""
    announced: tuple[Milestone, ...] = ()
    returning: bool = False
    """The label is a return label: its scans were taken, none announced."""


_RETURN_LABEL = TrackingOutcome(known=True, returning=True)


class TrackingBook:
    """Tracked shipments in a key-value bucket."""

    def __init__(
        self,
        kv: KeyValue,
        *,
        legacy: KeyValue | None = None,
        recall_s: float = RECALL_S,
        registration_wait_s: float = REGISTRATION_WAIT_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._records = KvRecords(kv, TrackedShipment, prefix=_PREFIX)
        self._legacy = KvRecords(legacy, TrackedShipment, prefix=_PREFIX) if legacy else None
        self._open = KeyIndex(kv, OPEN_PREFIX)
        self._locks = KeyedLock()
        self._registration_wait_s = registration_wait_s
        # key -> (record, revision) read or written here, recalled for recall_s
        self._recalled: Recent[str, tuple[TrackedShipment, int]] = Recent(
            RECALLED, max_age_s=recall_s, clock=monotonic
        )
        self._bookings = 0
        self._registered: dict[str, asyncio.Future[None]] = {}

    def _note(self, key: str, found: tuple[TrackedShipment, int] | None) -> None:
        """Recall ``found`` as the record under ``key`` now (None: forget it)."""
        if found is None:
            self._recalled.forget(key)
        else:
            self._recalled.put(key, found)

    @contextlib.contextmanager
    def expecting(self) -> Iterator[Expecting]:
        """Around a booking, up to its label's registration: reports for labels not
        tracked yet wait a moment for it (see :data:`REGISTRATION_WAIT_S`), and those of
        a label the booking says it bought (:meth:`Expecting.bought`) read nothing first."""
        self._bookings += 1
        expecting = Expecting(self)
        try:
            yield expecting
        finally:
            self._bookings -= 1
            # A label bought and never registered (the booking failed after its
            # purchase): its waiting reports read the bucket now.
            for key in expecting.keys:
                self._registered_now(key)

    def _expect(self, key: str) -> None:
        if key not in self._registered:
            self._registered[key] = asyncio.get_running_loop().create_future()

    def _registered_now(self, key: str) -> None:
        waiting = self._registered.pop(key, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def _registration(self, key: str) -> bool:
        """Wait for ``key`` to be registered here, if a booking is under way; whether it was."""
        if not self._bookings or self._registration_wait_s <= 0:
            return False
        waiting = self._registered.get(key)
        if waiting is None:
            waiting = self._registered[key] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(waiting), self._registration_wait_s)
        except TimeoutError:
            return False
        finally:
            if self._registered.get(key) is waiting and not waiting.done():
                # Nobody registered it in time: the next report starts its own wait.
                del self._registered[key]
        return True

    def _key(self, carrier: str, tracking_number: str) -> str:
        return self._records.key(carrier, tracking_number)

    async def register(self, shipment: TrackedShipment) -> None:
        """Start tracking a booked label (a second registration keeps the first)."""
        key = self._key(shipment.carrier, shipment.tracking_number)
        if not shipment.returning:
            # Indexed first: a crash in between leaves an index entry with no record,
            # which the reconciliation drops, never an open shipment out of the index.
            # A return label is not: there is nothing to reconcile it for.
            await self._open.add(_open_name(key))
        # A second registration (a redelivered booking) finds the first and keeps it.
        with contextlib.suppress(KeyWrongLastSequenceError):
            revision = await self._records.put(key, shipment, revision=None)
            self._note(key, (shipment, revision))
        self._registered_now(key)

    async def open_keys(self) -> list[str]:
        """The record keys of the shipments not known to be finished."""
        return [_PREFIX + "." + name for name in await self._open.members()]

    async def read(self, key: str) -> TrackedShipment | None:
        """The record under ``key`` (as listed by :meth:`open_keys`)."""
        found = await self._records.get(key)
        self._note(key, found)
        return found[0] if found else None

    async def close(self, key: str) -> None:
        """Take the shipment out of the open index (finished, voided, or its record gone)."""
        await self._open.remove(_open_name(key))

    async def stop_tracking(self, carrier: str, tracking_number: str) -> None:
        """Nothing more is expected for this label (it was voided)."""
        await self.close(self._key(carrier, tracking_number))

    async def find(self, carrier: str, tracking_number: str) -> TrackedShipment | None:
        """The tracked shipment of a label, if the router booked it."""
        found = await self._find(self._key(carrier, tracking_number))
        return found[0] if found else None

    async def _find(self, key: str, *, legacy: bool = True) -> tuple[TrackedShipment, int] | None:
        found = await self._records.get(key)
        if found is None and legacy:
            found = await self._move_from_legacy(key)
        self._note(key, found)
        return found

    async def _move_from_legacy(self, key: str) -> tuple[TrackedShipment, int] | None:
        if self._legacy is None:
            return None
        old = await self._legacy.get(key)
        if old is None:
            return None
        if not old[0].finished:
            # 1.0 kept no open index: indexed as registration does, or the tracking
            # reconciliation would never visit the label.
            await self._open.add(_open_name(key))
        # Another replica moving it at the same time wrote the same record: keep theirs.
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self._records.put(key, old[0], revision=None)
        await self._legacy.delete(key)
        return await self._records.get(key)

    async def record(
        self, carrier: str, report: TrackingReport, announce: Announce
    ) -> TrackingOutcome:
        """Move the shipment forward by ``report``'s scans, oldest first, announcing each step.

        A report repeats the scans of the ones before it; each is decided on the
        record as recalled, read at the start or last written here, so only a scan
        that moves the shipment costs round trips: its publish, then its write
        (checked by compare-and-set). A report that moves nothing on a recalled
        record is decided again on a fresh read.
        """
        key = self._key(carrier, report.tracking_number)
        waited = False
        if key in self._registered and self._recalled.get(key) is None:
            # Bought here and being stored right now (or another report is waiting for
            # it): what the registration stores is recalled, so wait rather than read.
            await self._registration(key)
            # Once: a second wait below, after finding nothing, would take the report
            # past REGISTRATION_WAIT_S (and the carrier's webhook timeout).
            waited = True
        # While labels are booked here, an unknown label is far likelier one whose
        # registration is a moment away than one stored by contracts 1.0.
        legacy_first = not self._bookings
        outcome = await self._record(key, report, announce, legacy=legacy_first)
        if outcome is None and not waited and await self._registration(key):
            # Registered meanwhile by this process's booking of the label.
            outcome = await self._record(key, report, announce)
        elif outcome is None and not legacy_first:
            outcome = await self._record(key, report, announce)
        return outcome if outcome is not None else TrackingOutcome(known=False)

    async def _record(
        self, key: str, report: TrackingReport, announce: Announce, *, legacy: bool = True
    ) -> TrackingOutcome | None:
        """:meth:`record` on the label's record as it is now; None when there is none."""
        # Within one process, reports for one label are applied one at a time, in
        # arrival order; compare-and-set covers other replicas.
        async with self._locks.hold(key):
            recalled = self._recalled.get(key)
            if recalled is not None:
                if recalled[0].returning:
                    return _RETURN_LABEL
                announced = await self._apply(key, report, recalled, announce)
                if announced:
                    return TrackingOutcome(known=True, announced=announced)
                # Nothing moved on what this process recalls: decide on the bucket's copy.
            found = await self._find(key, legacy=legacy)
            if found is None:
                return None
            if found[0].returning:
                return _RETURN_LABEL
            return TrackingOutcome(
                known=True, announced=await self._apply(key, report, found, announce)
            )

    async def _apply(
        self,
        key: str,
        report: TrackingReport,
        found: tuple[TrackedShipment, int] | None,
        announce: Announce,
    ) -> tuple[Milestone, ...]:
        """Announce and store each of ``report``'s scans that moves the record (``found``)."""
        if found is not None and found[0].progress is not None and not found[0].announced:
            # Stored and not announced: left so by a router before 2026-12-07.
            _, found = await self._announce(key, found, announce)
        announced: list[Milestone] = []
        for event in sorted(report.events, key=lambda e: e.occurred_at):
            milestone, found = await self._announce_and_store(key, event, found, announce)
            if milestone is not None:
                announced.append(milestone)
                if found is not None and found[0].finished:
                    await self.close(key)
        return tuple(announced)

    async def _announce_and_store(
        self,
        key: str,
        event: Milestone,
        known: tuple[TrackedShipment, int] | None,
        announce: Announce,
    ) -> tuple[Milestone | None, tuple[TrackedShipment, int] | None]:
        """Announce ``event`` if it moves the shipment, then store it (compare-and-set).

        Published first, stored after: one write per milestone (storing it first
        took a second, to mark it announced). A crash or a failed publish leaves the
        record where it was, so the scan is decided again when it comes back (every
        report repeats the scans before it, and the reconciliation asks the carrier
        about a shipment gone quiet) and published again under the same message id
        (derived from the scan), which the stream drops within its duplicate window;
        a crash between a publish and its write was already so. A write that loses
        to another replica decides again on what that one stored: the milestone may
        then have gone out although a later one was stored first, which two
        replicas announcing at once could already do (consumers take milestones
        newest-wins). Returns the milestone (None when the scan moves nothing) and
        the record as last read or written here, for the next scan to decide on.
        """
        for _ in range(_CAS_ATTEMPTS):
            if known is not None:
                found: tuple[TrackedShipment, int] | None = known
                known = None
            else:
                found = await self._records.get(key)
                self._note(key, found)
            if found is None:
                return None, None
            progress = advance(found[0].progress, event)
            if progress is None:
                return None, found
            moved = msgspec.structs.replace(found[0], progress=progress, announced=True)
            await announce(moved, progress.milestone)
            try:
                revision = await self._records.put(key, moved, revision=found[1])
            except KeyWrongLastSequenceError:
                continue
            self._note(key, (moved, revision))
            return progress.milestone, (moved, revision)
        raise TransientError(f"{key} kept changing under concurrent writers; try again later")

    async def announce_pending(self, key: str, announce: Announce) -> Milestone | None:
        """Announce the record's milestone if it was stored and never announced.

        A crash or a lost connection between storing a milestone and publishing
        it leaves the record so; when that milestone is the final one, no report
        will ever come to repeat it, so the reconciliation says it here. None
        when nothing was pending.
        """
        async with self._locks.hold(key):
            found = await self._records.get(key)
            self._note(key, found)
            if found is None or found[0].progress is None or found[0].announced:
                return None
            milestone, _ = await self._announce(key, found, announce)
            return milestone

    async def _announce(
        self, key: str, entry: tuple[TrackedShipment, int], announce: Announce
    ) -> tuple[Milestone, tuple[TrackedShipment, int] | None]:
        """Publish the entry's milestone, then mark it announced; returns the record as now."""
        tracked = entry[0]
        assert tracked.progress is not None
        milestone = tracked.progress.milestone
        await announce(tracked, milestone)

        def mark(current: TrackedShipment | None) -> TrackedShipment | None:
            if (
                current is None
                or current.announced
                or current.progress is None
                or current.progress.milestone != milestone
            ):
                return None  # someone moved it on meanwhile; their milestone is theirs to announce
            return msgspec.structs.replace(current, announced=True)

        # None: moved on elsewhere, so the next scan reads the record afresh.
        marked = await self._records.change(key, mark, known=entry)
        if marked is None:
            self._note(key, None)
        else:
            self._note(key, marked)
        return milestone, marked
