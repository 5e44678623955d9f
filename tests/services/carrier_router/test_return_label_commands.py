"""BookReturnLabel and VoidReturnLabel against both carrier sandboxes: one return label per
label id, from the customer to the warehouse, at the delivering carrier first; voided once;
every carrier refusing is announced, a refused void is a dead letter that says why."""

from __future__ import annotations

import msgspec
from nats.aio.client import Client as NatsClient

from tests.services.carrier_router.harness import QUICK_WALK, carriers_and_router
from waybill_carrier_router.tracking_book import TrackingBook
from waybill_contracts.events import (
    MilestoneReached,
    ReturnLabelBooked,
    ReturnLabelBookingFailed,
    ReturnLabelVoided,
)
from waybill_contracts.examples import example_of
from waybill_contracts.model import Shipment
from waybill_contracts.return_commands import BookReturnLabel, VoidReturnLabel


def return_label(label_id: str, carrier: str | None = "carrier-a") -> BookReturnLabel:
    return msgspec.structs.replace(
        example_of(BookReturnLabel), label_id=label_id, return_id=f"RMA-{label_id}", carrier=carrier
    )


def void_of(label: Shipment, return_id: str) -> VoidReturnLabel:
    return VoidReturnLabel(
        return_id=return_id,
        label_id=label.shipment_id,
        order_ref=label.order_ref,
        carrier=label.carrier,
        tracking_number=label.tracking_number,
        carrier_reference=label.carrier_reference,
        reason="the return was cancelled",
    )


async def test_one_return_label_is_bought_at_the_delivering_carrier_however_often_asked(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        for carrier in ("carrier-a", "carrier-b"):
            command = return_label(f"ret-{carrier}-1", carrier)
            await rig.send(command)
            await rig.send(command)  # redelivered, or re-sent by a deadline
            [booked] = await rig.wait_for(ReturnLabelBooked, command.return_id)
            await rig.commands_settled()
            assert rig.purchases(command.label_id) == {carrier: 1}
            sandbox = rig.carrier_a if carrier == "carrier-a" else rig.carrier_b
            [purchase] = sandbox.purchases_for(command.label_id)
            assert purchase.is_return
            label = booked.label
            assert (label.shipment_id, label.carrier) == (command.label_id, carrier)
            assert label.tracking_number == purchase.tracking_number
            assert label.cost.amount > 0
        assert len(await rig.events(ReturnLabelBooked)) == 2


async def test_a_refusing_carrier_is_skipped_and_all_refusing_is_announced(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(
        nc, nats_url, nats_prefix, carrier_a_enabled=False, carrier_b_enabled=False
    ) as rig:
        command = return_label("ret-nobody-1")
        await rig.send(command)
        [failed] = await rig.wait_for(ReturnLabelBookingFailed, command.return_id)
        assert failed.label_id == command.label_id
        assert "no carrier is enabled" in failed.reason
        assert rig.purchases(command.label_id) == {}


async def test_an_unused_return_label_is_voided_once_and_a_scanned_one_is_a_dead_letter(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    # Carrier A scans a parcel handed in at once, so its label can no longer be voided.
    quick = {"tracking_delays_s": QUICK_WALK}
    async with carriers_and_router(nc, nats_url, nats_prefix, carrier_a=quick) as rig:
        unused = return_label("ret-void-1", "carrier-b")
        await rig.send(unused)
        [booked] = await rig.wait_for(ReturnLabelBooked, unused.return_id)
        await rig.send(void_of(booked.label, unused.return_id))
        await rig.send(void_of(booked.label, unused.return_id))
        [voided] = await rig.wait_for(ReturnLabelVoided, unused.return_id)
        assert (voided.label_id, voided.order_ref) == (unused.label_id, unused.order_ref)
        assert rig.carrier_b.purchases_for(unused.label_id)[0].voided

        scanned = return_label("ret-void-2", "carrier-a")
        await rig.send(scanned)
        [booked] = await rig.wait_for(ReturnLabelBooked, scanned.return_id)
        rig.carrier_a.drop_off_return(booked.label.tracking_number)
        await rig.carrier_a.settle()
        await rig.send(void_of(booked.label, scanned.return_id))
        [letter] = await rig.wait_for_dead_letters()
        assert "refused to void return label" in letter.error_message
        assert not rig.carrier_a.purchases_for(scanned.label_id)[0].voided
        await rig.commands_settled()
        assert len(await rig.events(ReturnLabelVoided)) == 1


async def test_a_return_labels_tracking_webhooks_are_taken_and_announce_nothing(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    # Carriers send a return parcel's scans to the router's webhook like any label's; no
    # contract carries them, so they are taken (2xx) rather than refused until the carrier
    # gives up, and nothing is published or reconciled for them.
    quick = {"tracking_delays_s": QUICK_WALK}
    async with carriers_and_router(
        nc, nats_url, nats_prefix, carrier_a=quick, carrier_b=quick
    ) as rig:
        for carrier, sandbox in (("carrier-a", rig.carrier_a), ("carrier-b", rig.carrier_b)):
            command = return_label(f"ret-track-{carrier}", carrier)
            await rig.send(command)
            [booked] = await rig.wait_for(ReturnLabelBooked, command.return_id)
            tracking_number = booked.label.tracking_number
            sandbox.drop_off_return(tracking_number)
            await sandbox.settle()
            sent = [w for w in sandbox.sent_webhooks() if tracking_number in w.body]
            assert len(sent) >= 2, sent  # label created, then the scans back to the warehouse
            assert [w.outcome for w in sent] == ["delivered"] * len(sent)
        assert await rig.events(MilestoneReached) == []
        kv = await nc.jetstream().key_value(rig.subjects.kv_bucket("tracking"))
        assert await TrackingBook(kv).open_keys() == []
