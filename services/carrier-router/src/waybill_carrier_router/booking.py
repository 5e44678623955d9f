"""Booking a shipment: choose carriers, buy one label, never two, whatever is retried.

One attempt (one delivery of ``BookShipment``):

1. Settle earlier attempts. Every carrier a purchase was started with (the
   ledger) is asked, by Waybill's reference, whether it sold a label. A label
   found is the booking. A purchase that cannot be checked, or that another
   worker may still be making, stops the attempt ("retry later"): buying
   elsewhere then could buy twice. A command's first delivery skips this
   unless a ledger turns up (see :meth:`ShipmentBooker._book`).
2. Screen the carriers by the rules and their health, ask the healthy ones for
   quotes (at the same time), keep each one's cheapest fitting offer, and rank.
3. Buy from the first offer; the intent is the ledger's entry, written before
   the call, and the label bought is recorded in it. A purchase whose answer is lost (timeout, 5xx,
   dropped connection) or that is refused is looked up by reference before
   anything else happens. A carrier that did not sell a label → the next one.
4. Nothing bought: if any carrier was only unwell, retry later, up to
   ``max_attempts`` deliveries; then (or if every carrier said no) the booking
   failed, ``retryable`` telling the orchestrator whether a later try may work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from waybill_carrier_router.carrier_failures import CarrierFailures
from waybill_carrier_router.carriers.model import (
    CarrierRefused,
    CarrierUnavailable,
    LabelFormat,
    LabelPurchase,
    RateOffer,
    ShipmentSpec,
)
from waybill_carrier_router.fleet import CarrierFleet
from waybill_carrier_router.ledger import (
    BookingLedger,
    LedgerFound,
    LedgerState,
    StartedElsewhere,
)
from waybill_carrier_router.rules import RoutingRules
from waybill_carrier_router.selection import ShipmentFacts, fitting_offer, rank, screen
from waybill_contracts import fact_id
from waybill_contracts.commands import BookShipment
from waybill_contracts.model import Address, ServiceLevel, Shipment
from waybill_runtime.idempotency import OnceOnly
from waybill_runtime.outcomes import PermanentError, RetryLater, TransientError
from waybill_runtime.resilience import KeyedLock

__all__ = [
    "Booked",
    "Bought",
    "NotBooked",
    "PurchaseInDoubt",
    "ShipmentBooker",
    "bought_label",
    "carrier_reference_for",
    "purchase_key",
    "shipment_of",
]

_PLAIN_REFERENCE_MAX = 64


@dataclass(frozen=True)
class Booked:
    """A label was bought (now or by an earlier attempt)."""

    purchase: LabelPurchase


@dataclass(frozen=True)
class NotBooked:
    """No label could be bought; ``retryable`` says whether a later try may succeed."""

    carriers_tried: tuple[str, ...]
    reason: str
    retryable: bool


class PurchaseInDoubt(RetryLater):
    """A label may have been bought at ``carrier`` and nobody can tell yet: buy nowhere else."""

    def __init__(self, carrier: str, reason: str, *, delay_s: float | None = None) -> None:
        super().__init__(f"{carrier}: {reason}", delay_s=delay_s)
        self.carrier = carrier


Bought = Callable[[str, str], None]
"""Told a label's carrier and tracking number the moment the carrier sells it."""


@dataclass
class _Attempt:
    """What one attempt knows of its shipment's ledger: as it last read or wrote it
    (None: read it again), so each change of the ledger costs its write only."""

    ledger: LedgerState | None = None
    bought: Bought | None = None
    unread: bool = False
    """The ledger was not read: taken to be empty until the purchase's intent is created
    (which fails if there is one) or, without a purchase, until it is read after all."""


class _NotBought(Exception):
    """The purchase failed and the lookup by reference confirmed no label was sold."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def carrier_reference_for(shipment_id: str) -> str:
    """Waybill's reference stamped on a purchase: the shipment id, or a digest if it is long."""
    if len(shipment_id) <= _PLAIN_REFERENCE_MAX and shipment_id.isprintable():
        return shipment_id
    return "wb-" + fact_id(shipment_id)


def purchase_key(shipment_id: str, carrier: str) -> str:
    """The effect-once key of buying ``shipment_id``'s label at ``carrier``."""
    return f"label:{shipment_id}:{carrier}"


def shipment_of(command: BookShipment, purchase: LabelPurchase) -> Shipment:
    """The booked shipment as the contracts describe it."""
    return bought_label(command.shipment_id, command.order_ref, purchase)


def bought_label(shipment_id: str, order_ref: str, purchase: LabelPurchase) -> Shipment:
    """A bought label (an outbound shipment's or a return label) as the contracts describe it."""
    if purchase.service is None or purchase.cost is None:
        raise PermanentError(f"purchase {purchase.carrier_reference} lacks its service or cost")
    return Shipment(
        shipment_id=shipment_id,
        order_ref=order_ref,
        carrier=purchase.carrier,
        service=purchase.service,
        tracking_number=purchase.tracking_number,
        tracking_url=purchase.tracking_url,
        label_ref=purchase.label_url,
        carrier_reference=purchase.carrier_reference,
        cost=purchase.cost,
    )


class ShipmentBooker:
    """Books shipments with the fleet, by the rules, buying at most one label each."""

    def __init__(
        self,
        *,
        fleet: CarrierFleet,
        rules: RoutingRules,
        purchases: OnceOnly[LabelPurchase],
        ledger: BookingLedger,
        ship_from: Address,
        label_format: LabelFormat = "PDF",
        max_attempts: int = 5,
        in_doubt_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fleet = fleet
        self._rules = rules
        self._purchases = purchases
        self._ledger = ledger
        self._ship_from = ship_from
        self._label_format = label_format
        self._max_attempts = max_attempts
        self._in_doubt_s = in_doubt_s
        self._clock = clock
        self._locks = KeyedLock()

    def spec_for(self, command: BookShipment) -> ShipmentSpec:
        """What the carriers are asked to rate and label."""
        return ShipmentSpec(
            reference=carrier_reference_for(command.shipment_id),
            ship_from=self._ship_from,
            ship_to=command.ship_to,
            recipient=command.recipient,
            parcels=command.parcels,
            label_format=self._label_format,
        )

    async def book(
        self, command: BookShipment, *, attempt: int, bought: Bought | None = None
    ) -> Booked | NotBooked:
        """Book ``command``'s shipment; ``attempt`` counts its deliveries (from 1).

        ``bought`` is told of the label as soon as the carrier sells it, before it is
        recorded (its first tracking webhook may come with the carrier's answer).
        Raises :class:`RetryLater` while a retry may still succeed.
        """
        # One booking of a shipment at a time in this process; the ledger and
        # compare-and-set guard against other replicas.
        async with self._locks.hold(command.shipment_id):
            try:
                return await self._book(command, attempt, bought)
            except RetryLater as later:
                # A purchase in doubt, or one another worker is making: at the bound,
                # say so rather than let the bus dead-letter the command silently.
                if attempt < self._max_attempts:
                    raise
                carrier = later.carrier if isinstance(later, PurchaseInDoubt) else None
                return NotBooked((carrier,) if carrier else (), str(later), retryable=True)

    async def _book(
        self, command: BookShipment, attempt: int, bought: Bought | None
    ) -> Booked | NotBooked:
        if attempt == 1:
            # A command's first delivery almost never finds a ledger: the orchestrator
            # books each attempt of an order under a shipment id of its own, and a
            # redelivery counts as attempt 2. So it is taken to be empty, unread: the
            # purchase's intent is created only if there is no ledger (one write, no
            # read), and an attempt that buys nothing reads it before saying so. Either
            # finding one means an earlier command of this shipment left it: the
            # booking starts over, deciding on it first as a redelivery does (its
            # quotes asked again).
            with contextlib.suppress(LedgerFound):
                return await self._book_with(command, attempt, _Attempt(bought=bought, unread=True))
        return await self._book_with(command, attempt, _Attempt(bought=bought))

    async def _book_with(
        self, command: BookShipment, attempt: int, attempt_here: _Attempt
    ) -> Booked | NotBooked:
        spec = self.spec_for(command)
        if not attempt_here.unread:
            earlier = await self._earlier_purchase(
                command.shipment_id, spec.reference, attempt_here
            )
            if earlier is not None:
                return Booked(earlier)
        facts = ShipmentFacts.of(command, self._rules)
        screening = screen(
            self._rules,
            facts,
            enabled=self._fleet.enabled,
            circuit_open=self._fleet.circuit_open,
        )
        if screening.nobody_allowed:
            await self._no_ledger_unread(command.shipment_id, attempt_here)
            return NotBooked((), f"no carrier may carry it: {screening.explain()}", False)
        failures = CarrierFailures()
        for carrier in screening.circuit_open:
            failures.unavailable(
                carrier,
                "circuit open after repeated failures",
                retry_after_s=self._fleet.circuit_wait_s(carrier),
            )
        offers = await self._best_offers(screening.candidates, spec, facts.service_level, failures)
        for offer in rank(offers, self._rules):
            purchase = await self._buy(command.shipment_id, offer, spec, failures, attempt_here)
            if purchase is not None:
                return Booked(purchase)
        await self._no_ledger_unread(command.shipment_id, attempt_here)
        if not failures.worth_retrying:
            return NotBooked(tuple(failures.tried), failures.summary(), retryable=False)
        if attempt < self._max_attempts:
            raise RetryLater(
                f"no carrier could book it yet: {failures.summary()}",
                delay_s=failures.shortest_wait_s(),
            )
        return NotBooked(tuple(failures.tried), failures.summary(), retryable=True)

    # -- step 1: what earlier attempts did ------------------------------------------------

    async def _no_ledger_unread(self, shipment_id: str, attempt: _Attempt) -> None:
        """Before an attempt that bought nothing says so: if it never read the ledger,
        read it now, and raise :class:`LedgerFound` if an earlier attempt left one (it
        may hold a label bought then)."""
        if attempt.unread:
            attempt.unread = False
            if (await self._ledger.read(shipment_id)).found[0] is not None:
                raise LedgerFound(shipment_id)

    async def _earlier_purchase(
        self, shipment_id: str, reference: str, attempt: _Attempt
    ) -> LabelPurchase | None:
        attempt.ledger = await self._ledger.read(shipment_id)
        for entry in attempt.ledger.attempts:
            if entry.purchase is not None:
                return entry.purchase.completed_with(entry.offer)
            # Routers before 2026-12-07 kept the label in an effect-once record (and
            # marked the entry settled when it bought, before 2026-12-07 too).
            done = await self._purchases.result_of(purchase_key(shipment_id, entry.carrier))
            if done is not None:
                return done.completed_with(entry.offer)
            if entry.state == "settled":
                continue
            found = await self._look_up(entry.offer, reference)
            if found is not None:
                attempt.ledger = await self._ledger.bought(
                    shipment_id, entry.offer, found, known=attempt.ledger
                )
                return found
            waited = self._clock() - entry.started_at
            if entry.state == "started" and waited < self._in_doubt_s:
                raise PurchaseInDoubt(
                    entry.carrier,
                    f"a purchase started {waited:.0f} s ago has left no trace yet; "
                    "it may still be under way",
                    delay_s=self._in_doubt_s - waited,
                )
            attempt.ledger = await self._ledger.settled(
                shipment_id, entry.carrier, known=attempt.ledger
            )
        return None

    # -- step 2: quotes ------------------------------------------------------------------

    async def _best_offers(
        self,
        carriers: tuple[str, ...],
        spec: ShipmentSpec,
        level: ServiceLevel,
        failures: CarrierFailures,
    ) -> list[RateOffer]:
        async def quote(carrier: str) -> list[RateOffer] | Exception:
            try:
                return await self._fleet.quote(spec, carrier)
            except (TransientError, PermanentError) as error:
                return error

        answers = await asyncio.gather(*(quote(carrier) for carrier in carriers))
        best: list[RateOffer] = []
        for carrier, answer in zip(carriers, answers, strict=True):
            if isinstance(answer, Exception):
                failures.record(carrier, answer)
                continue
            rule = self._rules.rule_for(carrier)
            offer = fitting_offer(rule, level, answer) if rule is not None else None
            if offer is None:
                quoted = ", ".join(sorted({o.service for o in answer})) or "nothing"
                failures.refused(carrier, f"quoted no service fit for {level.value} ({quoted})")
            else:
                best.append(offer)
        return best

    # -- step 3: buying ------------------------------------------------------------------

    async def _buy(
        self,
        shipment_id: str,
        offer: RateOffer,
        spec: ShipmentSpec,
        failures: CarrierFailures,
        attempt: _Attempt,
    ) -> LabelPurchase | None:
        try:
            attempt.ledger = await self._ledger.started(
                shipment_id, offer, known=attempt.ledger, unread=attempt.unread
            )
            attempt.unread = False  # created, so there was none; or written on a read
        except StartedElsewhere as elsewhere:
            # A duplicate delivery elsewhere started there after this attempt read the
            # ledger: the next delivery settles that purchase before buying anywhere.
            raise PurchaseInDoubt(elsewhere.carrier, str(elsewhere)) from elsewhere
        try:
            # The ledger's entry is the purchase's intent: written before the call, the
            # only unsettled one (see BookingLedger.started), and the label is recorded
            # in it (one write; an effect-once record took two more).
            purchase = (await self._buy_or_find(offer, spec, attempt.bought)).completed_with(offer)
        except PurchaseInDoubt:
            await self._ledger.ended(shipment_id, offer.carrier, known=attempt.ledger)
            raise
        except _NotBought as not_bought:
            attempt.ledger = await self._ledger.settled(
                shipment_id, offer.carrier, known=attempt.ledger
            )
            failures.record(offer.carrier, not_bought.error)
            return None
        except TransientError as error:
            # Only errors after which no label can exist get here (429, could not
            # connect, circuit open): the fleet never retries the others blindly.
            attempt.ledger = await self._ledger.settled(
                shipment_id, offer.carrier, known=attempt.ledger
            )
            failures.record(offer.carrier, error)
            return None
        # Bought: recorded in the entry, which stays "started" (see BookingLedger.bought).
        # A crash before this write leaves the entry without its label: the next attempt
        # finds the label at the carrier by reference, never buys elsewhere.
        attempt.ledger = await self._ledger.bought(
            shipment_id, offer, purchase, known=attempt.ledger
        )
        return purchase

    async def _buy_or_find(
        self, offer: RateOffer, spec: ShipmentSpec, bought: Bought | None = None
    ) -> LabelPurchase:
        try:
            purchase = await self._fleet.buy(offer, spec)
            if bought is not None:
                bought(purchase.carrier, purchase.tracking_number)
            return purchase
        except CarrierUnavailable as error:
            if not error.in_doubt:
                raise
            failure: Exception = error
        except CarrierRefused as error:
            # A refusal can hide an earlier success ("this shipment already has a
            # label"): the lookup tells.
            failure = error
        found = await self._look_up(offer, spec.reference)
        if found is not None:
            return found
        raise _NotBought(failure) from failure

    async def _look_up(self, offer: RateOffer, reference: str) -> LabelPurchase | None:
        try:
            found = await self._fleet.find_purchase(offer.carrier, reference)
        except (TransientError, PermanentError) as error:
            raise PurchaseInDoubt(
                offer.carrier, f"cannot check whether a label was bought ({error})"
            ) from error
        return found.completed_with(offer) if found is not None else None
