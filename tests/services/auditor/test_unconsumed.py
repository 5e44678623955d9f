"""The auditor on a real nats-server reports messages no service consumes: the timeline entry is
flagged and a metric counts them, judged by the durable consumers actually on the bus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.services.auditor.test_service import auditor, timeline
from waybill_contracts import SubjectMap, encode, new_context
from waybill_contracts.events import (
    Event,
    InventoryReconciled,
    OrderCancelled,
    OrderReleased,
    PartnerCircuitChanged,
)
from waybill_contracts.examples import example_of
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.service import Service
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.waiting import eventually

REF = "WH/OUT/404"


async def test_a_message_no_service_consumes_is_flagged_and_counted(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    subjects = SubjectMap(nats_prefix)
    notifier = Service("notifier")

    @notifier.handles(OrderReleased)
    async def released(event: OrderReleased, ctx: HandlerContext[Any]) -> None:
        return None

    released_event = example_of(OrderReleased)
    released_event = msgspec.structs.replace(
        released_event, order=msgspec.structs.replace(released_event.order, ref=REF)
    )
    cancelled = msgspec.structs.replace(example_of(OrderCancelled), order_ref=REF)
    settings: dict[str, Any] = {"nats_url": nats_url, "subject_prefix": nats_prefix}
    audit_db = str(tmp_path / "audit.sqlite")
    async with (
        running_service(notifier, **settings),
        auditor(nats_url, nats_prefix, audit_db=audit_db) as http,
    ):
        for message in (released_event, cancelled):
            encoded = encode(message, new_context(message, source="odoo-gateway"), subjects)
            await nc.jetstream().publish(
                encoded.subject, encoded.body, headers=dict(encoded.headers)
            )

        async def trail() -> dict[str, Any]:
            return await timeline(http, REF)

        body = await eventually(trail, until=lambda t: len(t["entries"]) == 2, what="2 entries")
        flags = {entry["type"]: entry["unconsumed"] for entry in body["entries"]}
        assert flags == {
            subjects.ce_type_for(OrderReleased): False,
            subjects.ce_type_for(OrderCancelled): True,
        }
        async with http.get("/metrics") as response:
            metrics = await response.text()
        cancelled_type = subjects.ce_type_for(OrderCancelled)
        assert f'waybill_audit_unconsumed_total{{type="{cancelled_type}"}} 1.0' in metrics
        assert f'type="{subjects.ce_type_for(OrderReleased)}"' not in metrics


@pytest.mark.parametrize("kind", [PartnerCircuitChanged, InventoryReconciled])
async def test_what_the_control_tower_shows_is_read_by_it_so_never_flagged_unconsumed(
    kind: type[Event], nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    """Breaker news and reconciliation reports: the control tower is their reader."""
    subjects = SubjectMap(nats_prefix)
    news = example_of(kind)
    audit_db = str(tmp_path / "audit.sqlite")
    async with auditor(nats_url, nats_prefix, audit_db=audit_db) as http:
        encoded = encode(news, new_context(news, source="wms-bridge"), subjects)
        await nc.jetstream().publish(encoded.subject, encoded.body, headers=dict(encoded.headers))

        async def recorded_events() -> str:
            async with http.get("/metrics") as response:
                return await response.text()

        metrics = await eventually(
            recorded_events,
            until=lambda text: 'waybill_audit_rows{kind="event"} 1.0' in text,
            what="the news in the trail",
        )
    assert "waybill_audit_unconsumed_total{" not in metrics


async def test_messages_on_a_subject_outside_the_contracts_reach_the_trail_not_left_unread(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    subjects = SubjectMap(nats_prefix)
    unknown = f"{nats_prefix}.evt.order.exploded.v1"
    audit_db = str(tmp_path / "audit.sqlite")
    async with auditor(nats_url, nats_prefix, audit_db=audit_db) as http:
        # A well-formed event on a subject no consumer's filter names: in the trail, flagged.
        cancelled = msgspec.structs.replace(example_of(OrderCancelled), order_ref=REF)
        encoded = encode(cancelled, new_context(cancelled, source="odoo-gateway"), subjects)
        await nc.jetstream().publish(unknown, encoded.body, headers=dict(encoded.headers))
        # Something that is no Waybill message at all: dead-lettered by the auditor.
        await nc.jetstream().publish(unknown, b"garbage", headers={"ce-correlationid": REF})

        [letter] = await eventually(
            lambda: dead_letters(nc, subjects), until=lambda d: len(d) == 1, what="a letter"
        )
        assert (letter.service, letter.reason) == ("auditor", "invalid message")
        assert (letter.original_subject, letter.original_body) == (unknown, b"garbage")

        async def trail() -> dict[str, Any]:
            return await timeline(http, REF)

        body = await eventually(
            trail,
            until=lambda t: len(t["entries"]) == 1 and len(t.get("dead_letters", [])) == 1,
            what="the event and the dead letter in the trail",
        )
        [entry] = body["entries"]
        assert (entry["id"], entry["unconsumed"]) == (encoded.headers["ce-id"], True)
