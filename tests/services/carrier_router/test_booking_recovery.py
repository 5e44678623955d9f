"""What the booker does with purchases an earlier, interrupted attempt left behind.

A crash between recording the intent and recording the result leaves a ledger
entry that says only "a purchase was started here". Fake carriers (the
``Carrier`` protocol) and a real key-value bucket show each way it resolves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.services.carrier_router.harness import booking
from waybill_carrier_router.booking import (
    Booked,
    NotBooked,
    PurchaseInDoubt,
    ShipmentBooker,
    carrier_reference_for,
    purchase_key,
)
from waybill_carrier_router.carriers import LabelPurchase, RateOffer, ShipmentSpec, TrackingReport
from waybill_carrier_router.fleet import CarrierFleet
from waybill_carrier_router.ledger import BookingLedger
from waybill_carrier_router.rules import CarrierRule, RoutingRules
from waybill_contracts.examples import ADDRESS
from waybill_contracts.model import ServiceLevel
from waybill_runtime.idempotency import OnceOnly
from waybill_runtime.resilience import CircuitBreakers, RateLimits, RetryPolicy
from waybill_runtime.testing.counting import CountingKV

STARTED_AT = 1_000.0


class FakeCarrier:
    """A carrier that sells one service at a fixed price and remembers what it sold."""

    def __init__(self, code: str, price: str) -> None:
        self.code = code
        self.price = Decimal(price)
        self.labels: dict[str, LabelPurchase] = {}
        self.bought = 0

    def offer(self) -> RateOffer:
        return RateOffer(
            carrier=self.code,
            rate_id=f"rate-{self.code}",
            carrier_shipment_id=f"shp-{self.code}",
            service="ground",
            amount=self.price,
            currency="EUR",
        )

    def sell(self, reference: str) -> LabelPurchase:
        self.bought += 1
        label = LabelPurchase(
            carrier=self.code,
            carrier_reference=f"{self.code}-purchase-{self.bought}",
            tracking_number=f"{self.code}-{self.bought}",
            label_url=f"https://labels.example/{self.code}/{self.bought}",
            bought_at=datetime(2025, 3, 14, tzinfo=UTC),
        )
        self.labels[reference] = label
        return label

    async def quote(self, spec: ShipmentSpec) -> list[RateOffer]:
        return [self.offer()]

    async def buy(self, offer: RateOffer, spec: ShipmentSpec) -> LabelPurchase:
        return self.sell(spec.reference).completed_with(offer)

    async def find_purchase(self, reference: str) -> LabelPurchase | None:
        return self.labels.get(reference)

    async def void(self, carrier_reference: str) -> None:
        raise NotImplementedError

    async def track(self, tracking_number: str, provider: str | None = None) -> TrackingReport:
        raise NotImplementedError


@dataclass
class Setup:
    cheap: FakeCarrier
    dear: FakeCarrier
    ledger: BookingLedger
    now: list[float]

    def booker(
        self, purchases: OnceOnly[LabelPurchase], *, max_attempts: int = 5
    ) -> ShipmentBooker:
        fleet = CarrierFleet(
            {"carrier-a": self.dear, "carrier-b": self.cheap},
            enabled=("carrier-a", "carrier-b"),
            breakers=CircuitBreakers(),
            purchase_limits=RateLimits(100.0, 10),
            retry=RetryPolicy(attempts=1),
        )
        services: dict[ServiceLevel, tuple[str, ...]] = {ServiceLevel.STANDARD: ("ground",)}
        rules = RoutingRules(
            carriers=(
                CarrierRule(carrier="carrier-a", services=services),
                CarrierRule(carrier="carrier-b", services=services),
            )
        )
        return ShipmentBooker(
            fleet=fleet,
            rules=rules,
            purchases=purchases,
            ledger=self.ledger,
            ship_from=ADDRESS,
            max_attempts=max_attempts,
            in_doubt_s=60.0,
            clock=lambda: self.now[0],
        )


@pytest.fixture
async def setup(
    nc: NatsClient, nats_prefix: str
) -> AsyncIterator[tuple[Setup, OnceOnly[LabelPurchase]]]:
    js = nc.jetstream()
    kv = await js.create_key_value(bucket=f"{nats_prefix}_idempotency")
    now = [STARTED_AT]
    ledger = BookingLedger(kv, clock=lambda: now[0])
    yield (
        Setup(FakeCarrier("carrier-b", "4.90"), FakeCarrier("carrier-a", "5.20"), ledger, now),
        OnceOnly(kv, LabelPurchase),
    )
    await js.delete_key_value(f"{nats_prefix}_idempotency")


async def test_purchase_started_moments_ago_without_a_trace_holds_the_booking(
    setup: tuple[Setup, OnceOnly[LabelPurchase]],
) -> None:
    rig, purchases = setup
    await rig.ledger.started("shp-1", rig.cheap.offer())  # then the worker crashed
    rig.now[0] = STARTED_AT + 10
    with pytest.raises(PurchaseInDoubt) as doubt:
        await rig.booker(purchases).book(booking("shp-1"), attempt=1)
    assert doubt.value.delay_s == pytest.approx(50.0)
    assert (rig.cheap.bought, rig.dear.bought) == (0, 0)


async def test_purchase_started_long_ago_without_a_trace_is_given_up_and_booking_goes_on(
    setup: tuple[Setup, OnceOnly[LabelPurchase]],
) -> None:
    rig, purchases = setup
    await rig.ledger.started("shp-2", rig.cheap.offer())
    rig.now[0] = STARTED_AT + 61
    outcome = await rig.booker(purchases).book(booking("shp-2"), attempt=1)
    assert isinstance(outcome, Booked)
    assert outcome.purchase.carrier == "carrier-b"
    assert (rig.cheap.bought, rig.dear.bought) == (1, 0)


async def test_label_an_interrupted_attempt_bought_is_the_booking(
    setup: tuple[Setup, OnceOnly[LabelPurchase]],
) -> None:
    rig, purchases = setup
    await rig.ledger.started("shp-3", rig.dear.offer())
    sold = rig.dear.sell(carrier_reference_for("shp-3"))  # bought, then the worker crashed
    rig.now[0] = STARTED_AT + 1
    outcome = await rig.booker(purchases).book(booking("shp-3"), attempt=1)
    assert isinstance(outcome, Booked)
    assert outcome.purchase.tracking_number == sold.tracking_number
    assert (outcome.purchase.service, outcome.purchase.cost) == ("ground", rig.dear.offer().cost)
    assert (rig.cheap.bought, rig.dear.bought) == (0, 1)  # nothing bought at the cheaper B
    again = await rig.booker(purchases).book(booking("shp-3"), attempt=1)
    assert again == outcome  # now remembered as done


async def test_purchase_still_in_doubt_at_the_last_attempt_is_a_retryable_failure(
    setup: tuple[Setup, OnceOnly[LabelPurchase]],
) -> None:
    rig, purchases = setup
    await rig.ledger.started("shp-4", rig.cheap.offer())
    outcome = await rig.booker(purchases, max_attempts=3).book(booking("shp-4"), attempt=3)
    assert isinstance(outcome, NotBooked)
    assert outcome.retryable is True
    assert outcome.carriers_tried == ("carrier-b",)
    assert "may still be under way" in outcome.reason
    assert (rig.cheap.bought, rig.dear.bought) == (0, 0)


async def _counted(
    nc: NatsClient, nats_prefix: str, rig: Setup
) -> tuple[CountingKV, OnceOnly[LabelPurchase]]:
    """The rig's ledger and purchases on one bucket whose reads and writes are counted."""
    kv = await nc.jetstream().key_value(f"{nats_prefix}_idempotency")
    counting = CountingKV(kv)
    rig.ledger = BookingLedger(counting, clock=lambda: rig.now[0])  # type: ignore[arg-type]
    purchases: OnceOnly[LabelPurchase] = OnceOnly(counting, LabelPurchase)  # type: ignore[arg-type]
    return counting, purchases


async def test_a_first_booking_costs_no_ledger_read_and_two_writes(
    nc: NatsClient, nats_prefix: str, setup: tuple[Setup, OnceOnly[LabelPurchase]]
) -> None:
    rig, _ = setup
    counting, purchases = await _counted(nc, nats_prefix, rig)
    outcome = await rig.booker(purchases).book(booking("shp-5"), attempt=1)
    assert isinstance(outcome, Booked)
    # Its "started" entry, created only if there is no ledger (so nothing is read),
    # and the label recorded in it. Before: the ledger read first (1 read), and
    # before 2026-12-07 an effect-once record's intent and result too (3 writes).
    assert (counting.reads, counting.writes) == (0, 2)
    [entry] = await rig.ledger.attempts("shp-5")
    assert entry.purchase == outcome.purchase
    assert entry.state == "started"  # what a router before 2026-12-07 looks up, never skips


@pytest.mark.parametrize("attempt", [1, 2])
async def test_a_label_an_older_router_recorded_is_the_booking(
    nc: NatsClient, nats_prefix: str, setup: tuple[Setup, OnceOnly[LabelPurchase]], attempt: int
) -> None:
    """Also on a first delivery (a new command for the shipment), which reads no ledger
    before its purchase: creating the purchase's intent finds the older one's entry."""
    rig, purchases = setup
    # As routers before 2026-12-07 left it: the entry, and the label in an effect-once
    # record (the entry marked settled, as they did before 7f59a77).
    await rig.ledger.started("shp-9", rig.dear.offer())
    sold = rig.dear.sell(carrier_reference_for("shp-9"))

    async def bought() -> LabelPurchase:
        return sold

    await purchases.run(purchase_key("shp-9", "carrier-a"), bought)
    await rig.ledger.settled("shp-9", "carrier-a")
    rig.now[0] = STARTED_AT + 3600
    kv = await nc.jetstream().key_value(f"{nats_prefix}_idempotency")
    outcome = await rig.booker(OnceOnly(kv, LabelPurchase)).book(booking("shp-9"), attempt=attempt)
    assert isinstance(outcome, Booked)
    assert outcome.purchase.tracking_number == sold.tracking_number
    assert (rig.cheap.bought, rig.dear.bought) == (0, 1)  # nothing bought again


async def test_a_redelivery_after_the_label_was_bought_and_recorded_buys_nothing(
    nc: NatsClient, nats_prefix: str, setup: tuple[Setup, OnceOnly[LabelPurchase]]
) -> None:
    rig, purchases = setup
    first = await rig.booker(purchases).book(booking("shp-6"), attempt=1)
    assert isinstance(first, Booked)
    # The ledger entry stays "started": another replica (nothing in memory), long
    # after any in-doubt wait, finds the recorded purchase and asks no carrier.
    rig.now[0] = STARTED_AT + 3600
    kv = await nc.jetstream().key_value(f"{nats_prefix}_idempotency")
    other_replica = rig.booker(OnceOnly(kv, LabelPurchase))
    again = await other_replica.book(booking("shp-6"), attempt=2)
    assert again == first
    assert (rig.cheap.bought, rig.dear.bought) == (1, 0)


async def test_a_bought_label_whose_record_is_gone_is_found_at_its_carrier_not_bought_again(
    nc: NatsClient, nats_prefix: str, setup: tuple[Setup, OnceOnly[LabelPurchase]]
) -> None:
    rig, purchases = setup
    first = await rig.booker(purchases).book(booking("shp-7"), attempt=1)
    assert isinstance(first, Booked)
    # Its label lost from the ledger's entry (a crash before it was recorded).
    [entry] = await rig.ledger.attempts("shp-7")
    kv = await nc.jetstream().key_value(f"{nats_prefix}_idempotency")
    await kv.put(
        "booking.shp-7",
        msgspec.json.encode({"attempts": [msgspec.structs.replace(entry, purchase=None)]}),
    )
    rig.now[0] = STARTED_AT + 3600
    again = await rig.booker(OnceOnly(kv, LabelPurchase)).book(booking("shp-7"), attempt=2)
    assert isinstance(again, Booked)
    assert again.purchase.tracking_number == first.purchase.tracking_number
    assert (rig.cheap.bought, rig.dear.bought) == (1, 0)  # looked up, not bought anywhere


async def test_a_redelivery_reads_the_ledger_first(
    nc: NatsClient, nats_prefix: str, setup: tuple[Setup, OnceOnly[LabelPurchase]]
) -> None:
    rig, _ = setup
    counting, purchases = await _counted(nc, nats_prefix, rig)
    outcome = await rig.booker(purchases).book(booking("shp-11"), attempt=2)
    assert isinstance(outcome, Booked)
    assert (counting.reads, counting.writes) == (1, 2)


async def test_a_new_command_no_carrier_may_carry_still_finds_the_label_bought_before(
    setup: tuple[Setup, OnceOnly[LabelPurchase]],
) -> None:
    """A first delivery that buys nothing reads the ledger before saying so: a label an
    earlier command of the shipment bought is the booking, whatever the rules say now."""
    rig, purchases = setup
    first = await rig.booker(purchases).book(booking("shp-12"), attempt=1)
    assert isinstance(first, Booked)
    rig.now[0] = STARTED_AT + 3600
    again = await rig.booker(purchases).book(
        booking("shp-12", excluded=("carrier-a", "carrier-b")), attempt=1
    )
    assert again == first
    assert (rig.cheap.bought, rig.dear.bought) == (1, 0)


@pytest.mark.parametrize("elsewhere", ["carrier-a", "carrier-b"])
async def test_a_purchase_another_attempt_started_after_this_one_read_the_ledger_stops_it(
    setup: tuple[Setup, OnceOnly[LabelPurchase]], elsewhere: str
) -> None:
    """Two deliveries of one booking on two replicas: the second to start a purchase
    buys no second label, at another carrier (they ranked the carriers differently) or
    at the same one (the ledger's entry is its only guard: no effect-once intent)."""
    rig, purchases = setup
    quote = rig.cheap.quote
    other = rig.dear if elsewhere == "carrier-a" else rig.cheap

    async def meanwhile(spec: ShipmentSpec) -> list[RateOffer]:
        # While this attempt asks for quotes (its ledger read, empty), the other one
        # starts buying.
        await rig.ledger.started("shp-8", other.offer())
        return await quote(spec)

    rig.cheap.quote = meanwhile  # type: ignore[method-assign]
    with pytest.raises(PurchaseInDoubt) as stopped:
        await rig.booker(purchases).book(booking("shp-8"), attempt=1)
    assert stopped.value.carrier == elsewhere
    # Before (carrier A): the ledger's compare-and-set failed, the entry was added next
    # to the other's on a fresh read, and carrier B sold a second label.
    assert (rig.cheap.bought, rig.dear.bought) == (0, 0)
    assert [a.carrier for a in await rig.ledger.attempts("shp-8")] == [elsewhere]


async def test_a_purchase_another_attempt_started_anew_is_not_settled_by_this_one(
    setup: tuple[Setup, OnceOnly[LabelPurchase]],
) -> None:
    """Two attempts settle the same abandoned entry; the quicker one starts buying at
    that carrier again: the slower one must not settle that new purchase and buy too."""
    rig, purchases = setup
    await rig.ledger.started("shp-10", rig.cheap.offer())  # abandoned long ago
    rig.now[0] = STARTED_AT + 3600
    find = rig.cheap.find_purchase

    async def meanwhile(reference: str) -> LabelPurchase | None:
        # While this attempt looks the abandoned purchase up, the other one settles it
        # and starts a new purchase at the same carrier.
        found = await find(reference)
        await rig.ledger.settled("shp-10", "carrier-b")
        rig.now[0] += 1
        await rig.ledger.started("shp-10", rig.cheap.offer())
        return found

    rig.cheap.find_purchase = meanwhile  # type: ignore[method-assign]
    with pytest.raises(PurchaseInDoubt):
        await rig.booker(purchases).book(booking("shp-10"), attempt=1)
    # Before: the settling re-read the ledger and settled the other's new entry too,
    # and this attempt bought at carrier B beside it.
    assert (rig.cheap.bought, rig.dear.bought) == (0, 0)
    [entry] = await rig.ledger.attempts("shp-10")
    assert entry.state == "started" and entry.started_at == STARTED_AT + 3601


async def test_a_label_recorded_while_this_attempt_settles_its_entry_is_not_bought_again(
    setup: tuple[Setup, OnceOnly[LabelPurchase]],
) -> None:
    """A purchase past the in-doubt wait (its worker slow, not crashed) completes just after
    this attempt's lookup found nothing, and that worker records its label before this
    attempt's settling: the settling's fresh read shows the label, so nothing is settled
    and no second label is bought."""
    rig, purchases = setup
    await rig.ledger.started("shp-13", rig.cheap.offer())  # the slow worker's purchase
    rig.now[0] = STARTED_AT + 3600
    find = rig.cheap.find_purchase
    recorded: list[LabelPurchase] = []

    async def meanwhile(reference: str) -> LabelPurchase | None:
        found = await find(reference)
        if not recorded:
            # Not sold yet when asked; sold and recorded by the slow worker right after.
            sold = rig.cheap.sell(reference).completed_with(rig.cheap.offer())
            await rig.ledger.bought("shp-13", rig.cheap.offer(), sold)
            recorded.append(sold)
        return found

    rig.cheap.find_purchase = meanwhile  # type: ignore[method-assign]
    try:
        outcome = await rig.booker(purchases).book(booking("shp-13"), attempt=2)
    except PurchaseInDoubt:
        outcome = None
    # Before: the settling's compare-and-set lost to the label's record, and on the fresh
    # read it settled the entry anyway (label and all); the cheaper carrier B came first
    # again, its new entry replaced the one holding the label, and B sold a second one.
    assert (rig.cheap.bought, rig.dear.bought) == (1, 0)
    assert outcome is None or (
        isinstance(outcome, Booked)
        and outcome.purchase.tracking_number == recorded[0].tracking_number
    )
    [entry] = await rig.ledger.attempts("shp-13")
    assert entry.purchase == recorded[0]
    again = await rig.booker(purchases).book(booking("shp-13"), attempt=3)
    assert isinstance(again, Booked)
    assert again.purchase.tracking_number == recorded[0].tracking_number
