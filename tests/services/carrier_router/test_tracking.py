"""Tracking webhooks from both carrier sandboxes become milestones, in order, never backwards."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from aiohttp import web
from nats.aio.client import Client as NatsClient
from prometheus_client import Counter

from tests.services.carrier_router.harness import (
    QUICK_WALK,
    Rig,
    booking,
    carriers_and_router,
    signed,
)
from waybill_carrier_router.milestones import PHASES
from waybill_carrier_router.tracking_book import Expecting
from waybill_contracts.events import MilestoneReached, ShipmentBooked
from waybill_contracts.model import MilestoneCode, ServiceLevel
from waybill_sandboxes.delivery import DeliveryMode, DeliveryPolicy

WALK = [
    MilestoneCode.LABEL_CREATED,
    MilestoneCode.IN_TRANSIT,
    MilestoneCode.OUT_FOR_DELIVERY,
    MilestoneCode.DELIVERED,
]
# Carrier A is the cheaper one for next-day shipments, carrier B for standard ones.
LEVEL_OF = {"carrier-a": ServiceLevel.NEXT_DAY, "carrier-b": ServiceLevel.STANDARD}


def quick(carrier: str, **config: Any) -> dict[str, Any]:
    """Sandbox settings that walk every label to delivered within moments."""
    key = "carrier_a" if carrier == "carrier-a" else "carrier_b"
    return {key: {"tracking_delays_s": QUICK_WALK, **config}}


async def delivered(rig: Rig, shipment_id: str) -> list[MilestoneReached]:
    """Wait for the delivered milestone; returns every milestone of the shipment, in order."""
    return await rig.wait_for(
        MilestoneReached,
        shipment_id,
        until=lambda found: any(m.milestone.code is MilestoneCode.DELIVERED for m in found),
    )


def another_event(body: bytes) -> bytes:
    """``body`` as a webhook of its own: carrier A's Event gets a new id (B's has none)."""
    event = msgspec.json.decode(body)
    if "id" in event:
        event["id"] = f"evt_{uuid.uuid4().hex[:24]}"
    return msgspec.json.encode(event)


def sandbox_of(rig: Rig, carrier: str) -> Any:
    return rig.carrier_a if carrier == "carrier-a" else rig.carrier_b


@pytest.mark.parametrize("carrier", ["carrier-a", "carrier-b"])
async def test_tracking_walk_becomes_milestones_up_to_delivered(
    nc: NatsClient, nats_url: str, nats_prefix: str, carrier: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix, **quick(carrier)) as rig:
        await rig.send(booking("shp-walk", level=LEVEL_OF[carrier]))
        [booked] = await rig.wait_for(ShipmentBooked, "shp-walk")
        assert booked.shipment.carrier == carrier
        milestones = await delivered(rig, "shp-walk")
        assert [m.milestone.code for m in milestones] == WALK
        times = [m.milestone.occurred_at for m in milestones]
        assert times == sorted(times)
        for event in milestones:
            assert (event.order_ref, event.carrier) == ("WH/OUT/shp-walk", carrier)
            assert event.tracking_number == booked.shipment.tracking_number
            assert event.milestone.raw_status  # the carrier's own words are kept
        history = sandbox_of(rig, carrier).timeline.history[booked.shipment.tracking_number]
        assert [m.milestone.occurred_at for m in milestones] == [e.occurred_at for e in history]


@pytest.mark.parametrize("carrier", ["carrier-a", "carrier-b"])
async def test_duplicated_webhooks_make_one_milestone_each(
    nc: NatsClient, nats_url: str, nats_prefix: str, carrier: str
) -> None:
    twice = {"delivery": DeliveryPolicy(mode=DeliveryMode.DUPLICATE)}
    async with carriers_and_router(nc, nats_url, nats_prefix, **quick(carrier, **twice)) as rig:
        await rig.send(booking("shp-dup", level=LEVEL_OF[carrier]))
        await delivered(rig, "shp-dup")
        await sandbox_of(rig, carrier).settle()
        sent = sandbox_of(rig, carrier).sent_webhooks()
        assert sum(record.deliveries for record in sent) >= 2 * len(WALK) - 1  # really doubled
        milestones = await rig.events(MilestoneReached, "shp-dup")
        assert [m.milestone.code for m in milestones] == WALK


@pytest.mark.parametrize("carrier", ["carrier-a", "carrier-b"])
async def test_reordered_webhooks_never_move_a_shipment_backwards(
    nc: NatsClient, nats_url: str, nats_prefix: str, carrier: str
) -> None:
    newest_first = {
        "delivery": DeliveryPolicy(mode=DeliveryMode.REORDER, reorder_window_s=0.3),
    }
    async with carriers_and_router(
        nc, nats_url, nats_prefix, **quick(carrier, **newest_first)
    ) as rig:
        await rig.send(booking("shp-reorder", level=LEVEL_OF[carrier]))
        await delivered(rig, "shp-reorder")
        await sandbox_of(rig, carrier).settle()
        milestones = await rig.events(MilestoneReached, "shp-reorder")
        phases = [PHASES[m.milestone.code] for m in milestones]
        assert phases == sorted(phases)
        assert milestones[-1].milestone.code is MilestoneCode.DELIVERED
        assert len({m.milestone.code for m in milestones}) == len(milestones)


async def test_late_webhook_of_an_earlier_scan_changes_nothing(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix, **quick("carrier-b")) as rig:
        await rig.send(booking("shp-late"))
        await delivered(rig, "shp-late")
        await rig.carrier_b.settle()
        in_transit = next(
            record.body.encode()
            for record in rig.carrier_b.sent_webhooks()
            if b'"status":"TRANSIT"' in record.body.encode().split(b'"tracking_history"')[0]
        )
        status, _, answer = await rig.post_webhook("carrier-b", in_transit)
        assert (status, answer["announced"]) == (200, [])
        milestones = await rig.events(MilestoneReached, "shp-late")
        assert [m.milestone.code for m in milestones] == WALK


async def test_forced_exception_is_announced_and_ends_the_walk(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(
        nc, nats_url, nats_prefix, carrier_b={"tracking_delays_s": [0.3]}
    ) as rig:
        rig.carrier_b.force_tracking_outcome("shp-exc", "exception")
        await rig.send(booking("shp-exc"))
        milestones = await rig.wait_for(
            MilestoneReached,
            "shp-exc",
            until=lambda found: any(m.milestone.code is MilestoneCode.EXCEPTION for m in found),
        )
        assert [m.milestone.code for m in milestones] == [
            MilestoneCode.LABEL_CREATED,
            MilestoneCode.EXCEPTION,
        ]
        assert milestones[-1].milestone.raw_status == "FAILURE"


# -- what the webhook endpoints refuse ------------------------------------------------


async def a_sent_webhook(rig: Rig, carrier: str) -> bytes:
    """The body of a webhook the carrier really sent (after booking one label)."""
    await rig.send(booking("shp-hook", level=LEVEL_OF[carrier]))
    await rig.wait_for(MilestoneReached, "shp-hook")
    first: bytes = sandbox_of(rig, carrier).sent_webhooks()[0].body.encode()
    return first


@pytest.mark.parametrize("carrier", ["carrier-a", "carrier-b"])
async def test_webhook_with_a_bad_signature_is_refused_with_401(
    nc: NatsClient, nats_url: str, nats_prefix: str, carrier: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        body = await a_sent_webhook(rig, carrier)
        before = await rig.events(MilestoneReached)
        forged = body.replace(b"pre_transit", b"delivered").replace(b"PRE_TRANSIT", b"DELIVERED")
        for headers in (signed(carrier, body), {"Content-Type": "application/json"}):
            status, sent_headers, problem = await rig.post_webhook(carrier, forged, headers)
            assert status == 401
            assert sent_headers["Content-Type"].startswith("application/problem+json")
            assert "signature" in problem["detail"] or "header missing" in problem["detail"]
        assert await rig.events(MilestoneReached) == before


async def test_webhook_with_a_stale_timestamp_is_refused_with_401(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        body = await a_sent_webhook(rig, "carrier-b")
        stale = signed("carrier-b", body, timestamp=int(time.time()) - 3600)
        status, _, problem = await rig.post_webhook("carrier-b", body, stale)
        assert status == 401
        assert "old" in problem["detail"]


@pytest.mark.parametrize("carrier", ["carrier-a", "carrier-b"])
async def test_webhook_for_a_tracking_number_not_booked_here_asks_to_retry(
    nc: NatsClient, nats_url: str, nats_prefix: str, carrier: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        body = await a_sent_webhook(rig, carrier)
        stranger = another_event(
            body.replace(b"EZ1000000001", b"EZ1999999999").replace(
                b"9205590175547700000001", b"9205590175547799999999"
            )
        )
        assert stranger != body
        status, headers, problem = await rig.post_webhook(carrier, stranger)
        assert status == 503
        assert int(headers["Retry-After"]) > 0
        assert "not known" in problem["detail"]


@pytest.mark.parametrize("carrier", ["carrier-a", "carrier-b"])
async def test_signed_webhook_that_is_not_tracking_json_is_refused_with_400(
    nc: NatsClient, nats_url: str, nats_prefix: str, carrier: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        for body in (b'{"truncated": ', b'{"event": "track_updated", "data": {"x": 1}}'):
            status, _, problem = await rig.post_webhook(carrier, body)
            assert status == 400
            assert problem["status"] == 400


async def test_signed_webhook_of_another_event_type_is_acknowledged_and_ignored(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        batch = msgspec.json.encode(
            {
                "id": "evt_batch1",
                "description": "batch.created",
                "result": {"id": "b1"},
                "created_at": datetime.now(UTC),
            }
        )
        transaction = msgspec.json.encode({"event": "transaction_created", "data": {}})
        assert (await rig.post_webhook("carrier-a", batch))[::2] == (200, {"status": "ignored"})
        assert (await rig.post_webhook("carrier-b", transaction))[::2] == (
            200,
            {"status": "ignored"},
        )
        assert await rig.events(MilestoneReached) == []


@pytest.mark.parametrize("carrier", ["carrier-a", "carrier-b"])
async def test_a_booking_tells_the_tracking_book_of_its_label_as_soon_as_it_is_bought(
    nc: NatsClient, nats_url: str, nats_prefix: str, carrier: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So the label's first webhook, sent with the purchase's answer, reads nothing."""
    told: list[tuple[str, str]] = []
    tell = Expecting.bought

    def bought(self: Expecting, label_carrier: str, tracking_number: str) -> None:
        told.append((label_carrier, tracking_number))
        tell(self, label_carrier, tracking_number)

    monkeypatch.setattr(Expecting, "bought", bought)
    async with carriers_and_router(nc, nats_url, nats_prefix, **quick(carrier)) as rig:
        await rig.send(booking("shp-told", level=LEVEL_OF[carrier]))
        [booked] = await rig.wait_for(ShipmentBooked, "shp-told")
        milestones = await delivered(rig, "shp-told")
    assert told == [(carrier, booked.shipment.tracking_number)]
    assert [m.milestone.code for m in milestones] == WALK


async def test_webhooks_look_up_each_outcome_counter_once_and_answer_without_stdlib_json(
    nc: NatsClient, nats_url: str, nats_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook's own Python, counted: the labelled child of the webhook counter is
    looked up once per carrier and outcome, and the answer is encoded by msgspec."""
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        body = await a_sent_webhook(rig, "carrier-b")
        lookups: list[tuple[str, ...]] = []
        answers: list[object] = []
        labels, json_response = Counter.labels, web.json_response

        def counted_labels(self: Counter, *values: str) -> Counter:
            lookups.append(values)
            return labels(self, *values)

        def counted_json_response(*args: Any, **kwargs: Any) -> web.Response:
            answers.append(args)
            return json_response(*args, **kwargs)

        monkeypatch.setattr(Counter, "labels", counted_labels)
        monkeypatch.setattr(web, "json_response", counted_json_response)
        for _ in range(3):  # the carrier sending its first webhook again: taken, moves nothing
            status, headers, answer = await rig.post_webhook("carrier-b", body)
            assert status == 200 and answer["status"] == "accepted"
            assert headers["Content-Type"].startswith("application/json")
        # At most the one lookup of ("carrier-b", "accepted"), none if the sandbox's own
        # webhook made it first (before: 3 lookups and 3 answers by the stdlib's json).
        assert lookups.count(("carrier-b", "accepted")) <= 1
        assert answers == []
