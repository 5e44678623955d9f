"""The booking ledger: which carriers a shipment's label purchase was started with,
and the label bought.

Carrier APIs have no idempotency key, and a retry must never buy at carrier B
while an earlier attempt may have bought at carrier A. Before a purchase
starts, the carrier and the offer are written here (the purchase's intent);
the label bought is recorded in that entry, and a purchase surely not made
settles it. A later attempt first resolves every unsettled entry at its
carrier before buying anywhere.

An entry still ``started`` may belong to a worker that is buying right now (or
crashed while buying); one that ``ended`` belongs to a call that is over, whose
outcome a lookup at the carrier can settle at once. An entry holding its label
stays ``started`` (:meth:`BookingLedger.bought`). Routers before 2026-12-07
kept the label in an effect-once record (``label:<shipment>:<carrier>``)
instead, which a later attempt still asks for an entry without its label.

An attempt passes the :class:`LedgerState` it read or wrote last to its next
change, which decides on it without reading again (the write is checked by
compare-and-set; another writer meanwhile makes it read and decide again).

An attempt starts a purchase only when no entry is unsettled (its own earlier
entries it settled, or it stopped): finding one when it comes to start means
another attempt (a duplicate delivery on another replica) started a purchase
after this one read the ledger, and buying here could buy a second label
(:class:`StartedElsewhere`). That makes the entry the purchase's only guard,
at one carrier as across carriers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import msgspec
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_carrier_router.carriers.model import LabelPurchase, RateOffer
from waybill_carrier_router.kv_records import KvRecords
from waybill_runtime.outcomes import RetryLater

__all__ = ["BookingLedger", "CarrierAttempt", "LedgerFound", "LedgerState", "StartedElsewhere"]


class StartedElsewhere(RetryLater):
    """Another attempt started a purchase at ``carrier`` meanwhile: buy nowhere else now."""

    def __init__(self, carrier: str) -> None:
        super().__init__(f"another attempt started a purchase at {carrier} meanwhile")
        self.carrier = carrier


class LedgerFound(Exception):
    """A first purchase (:meth:`BookingLedger.started` with ``unread``) found a ledger
    there after all: read it and decide on what earlier attempts did."""


class CarrierAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One carrier a purchase was started with."""

    carrier: str
    offer: RateOffer
    """What was being bought (a lookup may not repeat the service and price)."""
    started_at: float
    """Unix seconds."""
    state: Literal["started", "ended", "settled"] = "started"
    """started: the purchase call may be running; ended: it is over, outcome unknown;
    settled: it is known whether a label was bought."""
    purchase: LabelPurchase | None = None
    """The label bought (the entry stays ``started``, see :meth:`BookingLedger.bought`)."""


class _Record(msgspec.Struct, frozen=True, kw_only=True):
    attempts: tuple[CarrierAttempt, ...] = ()


@dataclass(frozen=True)
class LedgerState:
    """A shipment's ledger as this attempt last read or wrote it."""

    found: tuple[_Record, int] | tuple[None, None]
    """The record and its revision; ``(None, None)``: there was none."""

    @property
    def attempts(self) -> tuple[CarrierAttempt, ...]:
        """The carriers started with so far, in the order they were first tried."""
        record = self.found[0]
        return record.attempts if record is not None else ()


_NONE = LedgerState((None, None))


class BookingLedger:
    """The ledger of every shipment, in a key-value bucket."""

    def __init__(self, kv: KeyValue, *, clock: Callable[[], float] = time.time) -> None:
        self._records = KvRecords(kv, _Record, prefix="booking")
        self._clock = clock

    async def read(self, shipment_id: str) -> LedgerState:
        """The shipment's ledger as stored now."""
        found = await self._records.get(self._records.key(shipment_id))
        return LedgerState(found) if found is not None else _NONE

    async def attempts(self, shipment_id: str) -> tuple[CarrierAttempt, ...]:
        """The carriers started with so far, in the order they were first tried."""
        return (await self.read(shipment_id)).attempts

    async def started(
        self,
        shipment_id: str,
        offer: RateOffer,
        *,
        known: LedgerState | None = None,
        unread: bool = False,
    ) -> LedgerState:
        """Note that a purchase of ``offer`` is about to be made (before the call).

        ``known``: the ledger as the caller last read or wrote it (None: read it).
        Raises :class:`StartedElsewhere` when another carrier's purchase is unsettled.
        ``unread``: the caller has not read the ledger and takes it to be empty; the
        entry is created only if there is no ledger yet (one write, no read), else
        :class:`LedgerFound` is raised and nothing is written.
        """
        entry = CarrierAttempt(carrier=offer.carrier, offer=offer, started_at=self._clock())
        if unread:
            first = _Record(attempts=(entry,))
            try:
                revision = await self._records.put(
                    self._records.key(shipment_id), first, revision=None
                )
            except KeyWrongLastSequenceError:
                raise LedgerFound(shipment_id) from None
            return LedgerState((first, revision))

        def add(record: _Record | None) -> _Record:
            kept = record.attempts if record else ()
            for other in kept:
                # This attempt settled its own entries or stopped: an unsettled one is
                # another attempt's, at this carrier or another.
                if other.state != "settled":
                    raise StartedElsewhere(other.carrier)
            if any(a.carrier == offer.carrier for a in kept):
                kept = tuple(entry if a.carrier == offer.carrier else a for a in kept)
            else:
                kept = (*kept, entry)
            return _Record(attempts=kept)

        written = await self._records.change(
            self._records.key(shipment_id), add, known=known.found if known else None
        )
        assert written is not None  # add always writes
        return LedgerState(written)

    async def bought(
        self,
        shipment_id: str,
        offer: RateOffer,
        purchase: LabelPurchase,
        *,
        known: LedgerState | None = None,
    ) -> LedgerState:
        """Record the label bought with ``offer``: a later attempt returns it.

        The entry stays ``started``: a router from before 2026-12-07 reading it (a
        rolling upgrade) knows no ``purchase`` and looks the label up at the carrier,
        where ``settled`` would have sent it to buy elsewhere.
        """

        def record_it(record: _Record | None) -> _Record:
            kept = record.attempts if record else ()
            if any(a.carrier == offer.carrier for a in kept):
                return _Record(
                    attempts=tuple(
                        msgspec.structs.replace(a, state="started", purchase=purchase)
                        if a.carrier == offer.carrier
                        else a
                        for a in kept
                    )
                )
            # The entry is gone (expired, or removed by hand): the label is what counts.
            entry = CarrierAttempt(
                carrier=offer.carrier, offer=offer, started_at=self._clock(), purchase=purchase
            )
            return _Record(attempts=(*kept, entry))

        written = await self._records.change(
            self._records.key(shipment_id), record_it, known=known.found if known else None
        )
        assert written is not None  # record_it always writes
        return LedgerState(written)

    async def ended(
        self, shipment_id: str, carrier: str, *, known: LedgerState | None = None
    ) -> LedgerState | None:
        """Note that the purchase call at ``carrier`` is over, its outcome still unknown.

        Returns the ledger as written, or None when it was left alone (read it again).
        """
        return await self._mark(shipment_id, carrier, "ended", known)

    async def settled(
        self, shipment_id: str, carrier: str, *, known: LedgerState | None = None
    ) -> LedgerState | None:
        """Note that the purchase at ``carrier`` is known to have bought, or not bought.

        Returns the ledger as written, or None when it was left alone (read it again).
        """
        return await self._mark(shipment_id, carrier, "settled", known)

    async def _mark(
        self,
        shipment_id: str,
        carrier: str,
        state: Literal["ended", "settled"],
        known: LedgerState | None,
    ) -> LedgerState | None:
        # The entry the caller decided about, as it saw it: on a fresh read after a
        # compare-and-set lost to another attempt, an entry that attempt started anew
        # at this carrier (another started_at) is theirs, and is left alone; so is one
        # whose label was recorded meanwhile (by a purchase slower than the in-doubt
        # wait): settled, a later purchase at that carrier would replace it, label and all.
        seen = {a.started_at for a in known.attempts if a.carrier == carrier} if known else None

        def decided_about(a: CarrierAttempt) -> bool:
            return (
                a.carrier == carrier
                and a.state != "settled"
                and a.purchase is None
                and (seen is None or a.started_at in seen)
            )

        def mark(record: _Record | None) -> _Record | None:
            # Only the entry checked here is marked (one entry per carrier: see ``started``).
            if record is None or not any(decided_about(a) for a in record.attempts):
                return None
            return _Record(
                attempts=tuple(
                    msgspec.structs.replace(a, state=state) if decided_about(a) else a
                    for a in record.attempts
                )
            )

        written = await self._records.change(
            self._records.key(shipment_id), mark, known=known.found if known else None
        )
        return LedgerState(written) if written is not None else None
