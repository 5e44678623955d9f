"""The commands the carrier-router executes: book a shipment, void one.

Booked, voided and void-refused facts carry ids derived from the shipment, so
a redelivered command that finds its work done announces the same fact again
and JetStream keeps one copy. A booking failure is one fact per command message: a later
BookShipment for the same shipment (the orchestrator trying again) may fail
anew and say so.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from waybill_carrier_router.booking import NotBooked, shipment_of
from waybill_carrier_router.config import CarrierRouterSettings
from waybill_carrier_router.freight_book import BookedFreight
from waybill_carrier_router.return_labels import ReturnNotBooked, return_label_of
from waybill_carrier_router.router import ROUTER
from waybill_carrier_router.tracking_book import TrackedShipment
from waybill_carrier_router.voiding import LabelToVoid, VoidRefusal
from waybill_contracts import fact_id
from waybill_contracts.commands import BookShipment, VoidShipment
from waybill_contracts.events import (
    ReturnLabelBooked,
    ReturnLabelBookingFailed,
    ReturnLabelVoided,
    ShipmentBooked,
    ShipmentBookingFailed,
    ShipmentVoided,
    ShipmentVoidRefused,
)
from waybill_contracts.return_commands import BookReturnLabel, VoidReturnLabel
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.outcomes import PermanentError

__all__ = ["book_return_label", "book_shipment", "void_return_label", "void_shipment"]

log = logging.getLogger("waybill.carrier_router")


async def book_shipment(command: BookShipment, ctx: HandlerContext[CarrierRouterSettings]) -> None:
    """Buy one label for the shipment, or say why none could be bought."""
    router = ctx.resource(ROUTER)
    bookings = router.metrics.counter(
        "waybill_carrier_bookings_total", "Booking outcomes by carrier.", ("carrier", "outcome")
    )
    # From the purchase to the label's registration its first tracking webhooks
    # may already be here: they wait for the registration rather than fail.
    booked: ShipmentBooked | None = None
    with router.tracking.expecting() as expecting:
        outcome = await router.booker.book(command, attempt=ctx.attempt, bought=expecting.bought)
        if not isinstance(outcome, NotBooked):
            booked = ShipmentBooked(
                shipment=shipment_of(command, outcome.purchase),
                booked_at=outcome.purchase.bought_at,
            )
            # Registered before it is announced, so the label's tracking webhooks find
            # their order.
            await router.tracking.register(
                TrackedShipment.bought(command.shipment_id, command.order_ref, outcome.purchase)
            )
    if isinstance(outcome, NotBooked):
        failed = ShipmentBookingFailed(
            shipment_id=command.shipment_id,
            order_ref=command.order_ref,
            carriers_tried=outcome.carriers_tried,
            reason=outcome.reason,
            retryable=outcome.retryable,
            failed_at=datetime.now(UTC),
        )
        await ctx.publish(
            failed, fact_id=fact_id("shipment.booking_failed", command.shipment_id, ctx.message_id)
        )
        bookings.labels("none", "failed").inc()
        return
    assert booked is not None  # made with the registration above
    purchase = outcome.purchase
    if purchase.cost is not None:
        # What the carrier's invoice will name it by, and the quote to hold the bill to.
        await router.freight.remember(
            BookedFreight(
                shipment_id=command.shipment_id,
                order_ref=command.order_ref,
                carrier=purchase.carrier,
                carrier_reference=purchase.carrier_reference,
                tracking_number=purchase.tracking_number,
                quoted=purchase.cost,
                booked_at=purchase.bought_at,
            )
        )
    await ctx.publish(booked, fact_id=fact_id("shipment.booked", command.shipment_id))
    bookings.labels(purchase.carrier, "booked").inc()


async def void_shipment(command: VoidShipment, ctx: HandlerContext[CarrierRouterSettings]) -> None:
    """Void the shipment's label with its carrier; a refusal is announced, not dead-lettered."""
    router = ctx.resource(ROUTER)
    receipt = await router.voider.void(command)
    if isinstance(receipt, VoidRefusal):
        log.warning(
            "%s refused to void %s (shipment %s): %s",
            command.carrier,
            command.tracking_number,
            command.shipment_id,
            receipt.reason,
        )
        refused = ShipmentVoidRefused(
            shipment_id=command.shipment_id,
            order_ref=command.order_ref,
            carrier=command.carrier,
            tracking_number=command.tracking_number,
            reason=receipt.reason,
            refused_at=receipt.refused_at,
        )
        await ctx.publish(refused, fact_id=fact_id("shipment.void_refused", command.shipment_id))
        return
    voided = ShipmentVoided(
        shipment_id=command.shipment_id,
        order_ref=command.order_ref,
        carrier=command.carrier,
        tracking_number=command.tracking_number,
        voided_at=receipt.voided_at,
    )
    await ctx.publish(voided, fact_id=fact_id("shipment.voided", command.shipment_id))


async def book_return_label(
    command: BookReturnLabel, ctx: HandlerContext[CarrierRouterSettings]
) -> None:
    """Buy the return label once; every carrier refusing is announced, not dead-lettered."""
    router = ctx.resource(ROUTER)
    # The label's first tracking webhook (label created) may come before its registration.
    with router.tracking.expecting():
        outcome = await router.returns.book(command)
        if not isinstance(outcome, ReturnNotBooked):
            # Carriers send a return label's scans to the same webhook as any label's:
            # registered, they are taken rather than answered "unknown" for ever.
            await router.tracking.register(
                TrackedShipment.bought(command.label_id, command.order_ref, outcome, returning=True)
            )
    if isinstance(outcome, ReturnNotBooked):
        failed = ReturnLabelBookingFailed(
            return_id=command.return_id,
            order_ref=command.order_ref,
            label_id=command.label_id,
            reason=outcome.reason,
            failed_at=datetime.now(UTC),
        )
        await ctx.publish(
            failed, fact_id=fact_id("return.label_failed", command.label_id, ctx.message_id)
        )
        return
    booked = ReturnLabelBooked(
        return_id=command.return_id,
        order_ref=command.order_ref,
        label=return_label_of(command, outcome),
        booked_at=outcome.bought_at,
    )
    await ctx.publish(booked, fact_id=fact_id("return.label_booked", command.label_id))


async def void_return_label(
    command: VoidReturnLabel, ctx: HandlerContext[CarrierRouterSettings]
) -> None:
    """Void an unused return label; a carrier's refusal (the parcel is scanned: it is on its
    way back) is a dead letter saying so, for a person to look at."""
    router = ctx.resource(ROUTER)
    label = LabelToVoid(
        shipment_id=command.label_id,
        carrier=command.carrier,
        tracking_number=command.tracking_number,
        carrier_reference=command.carrier_reference,
    )
    receipt = await router.voider.void_label(label)
    if isinstance(receipt, VoidRefusal):
        raise PermanentError(
            f"{command.carrier} refused to void return label {command.tracking_number} "
            f"({command.label_id}, return {command.return_id}): {receipt.reason}"
        )
    voided = ReturnLabelVoided(
        return_id=command.return_id,
        order_ref=command.order_ref,
        label_id=command.label_id,
        voided_at=receipt.voided_at,
    )
    await ctx.publish(voided, fact_id=fact_id("return.label_voided", command.label_id))
