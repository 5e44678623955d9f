"""The auditor on a real nats-server: what services publish lands in timelines and stages,
once; dead letters with their reason; stuck orders found; the trail survives a restart."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig

from tests.fixtures import v1_dead_letters
from tests.services.auditor.journey import Journey, for_order, milestone, publish
from waybill_auditor.app import build_service
from waybill_contracts import MessageContext, SubjectMap, encode
from waybill_contracts.commands import (
    BookShipment,
    RecordShipmentInOdoo,
    ReleaseToWarehouse,
)
from waybill_contracts.events import (
    DeliveryRecordedInOdoo,
    MilestoneReached,
    OrderReleased,
    ShipmentBooked,
    ShipmentRecordedInOdoo,
    WarehouseOrderAccepted,
    WarehouseOrderPacked,
    WarehouseOrderPicked,
)
from waybill_contracts.model import MilestoneCode
from waybill_runtime.bus.dead_letters import DeadLetter, now_utc, write_dead_letter
from waybill_runtime.local.ports import free_port
from waybill_runtime.queries.discovery import PingResponse
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import settled
from waybill_runtime.testing.tokens import bearer, temporary_api_keys, trusting
from waybill_runtime.testing.waiting import eventually


@contextlib.asynccontextmanager
async def auditor(
    nats_url: str, prefix: str, **settings: Any
) -> AsyncIterator[aiohttp.ClientSession]:
    """A running auditor and an HTTP session on its port, calling as a viewer."""
    port = free_port()
    with temporary_api_keys() as keys:
        async with (
            running_service(
                build_service(),
                nats_url=nats_url,
                subject_prefix=prefix,
                http_port=port,
                **{**trusting(keys), **settings},
            ),
            aiohttp.ClientSession(
                f"http://127.0.0.1:{port}", headers=bearer(keys, "viewer")
            ) as http,
        ):
            yield http


async def get(http: aiohttp.ClientSession, path: str, **params: str) -> tuple[int, Any]:
    async with http.get(path, params=params) as response:
        return response.status, await response.json(content_type=None)


async def timeline(http: aiohttp.ClientSession, ref: str) -> dict[str, Any]:
    status, body = await get(http, f"/orders/{ref}/timeline")
    return body if status == 200 else {"entries": [], "status": status}


async def wait_for_entries(http: aiohttp.ClientSession, ref: str, count: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        return await timeline(http, ref)

    return await eventually(
        probe, until=lambda body: len(body["entries"]) >= count, what=f"{count} entries of {ref}"
    )


def full_journey(ref: str, start: datetime) -> Journey:
    """An order from release to Odoo recording the shipment, each step caused by the last,
    with clocks that disagree: every other service's clock runs a minute slow."""
    journey = Journey(ref)
    steps = [
        for_order(OrderReleased, ref),
        for_order(ReleaseToWarehouse, ref),
        for_order(WarehouseOrderAccepted, ref),
        for_order(WarehouseOrderPicked, ref),
        for_order(WarehouseOrderPacked, ref),
        for_order(BookShipment, ref),
        for_order(ShipmentBooked, ref),
        for_order(RecordShipmentInOdoo, ref),
        for_order(ShipmentRecordedInOdoo, ref),
    ]
    cause: MessageContext | None = None
    for n, message in enumerate(steps):
        skew = -1.5 if n % 2 else 0.0
        cause = journey.add(message, cause=cause, minutes=n * 0.5 + skew, start=start)
    return journey


async def publish_all(
    nc: NatsClient, subjects: SubjectMap, journey: Journey, *, shuffle: int | None = None
) -> None:
    sent = list(journey.sent)
    if shuffle is not None:
        random.Random(shuffle).shuffle(sent)
    for message, context in sent:
        await publish(nc, subjects, message, context)


async def test_every_event_and_command_of_an_order_is_in_its_timeline_in_causal_order(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    subjects = SubjectMap(nats_prefix)
    ref = "WH/OUT/00042"
    journey = full_journey(ref, datetime.now(UTC))
    async with auditor(nats_url, nats_prefix, audit_db=str(tmp_path / "audit.sqlite")) as http:
        # The command owners keep their own durables on the command stream beside the auditor's.
        await nc.jetstream().add_consumer(
            subjects.commands_stream.name,
            ConsumerConfig(
                durable_name=subjects.durable("wms-bridge", "commands"),
                ack_policy=AckPolicy.EXPLICIT,
                filter_subject=subjects.subject_for(ReleaseToWarehouse),
            ),
        )
        await publish_all(nc, subjects, journey, shuffle=7)

        body = await wait_for_entries(http, ref, len(journey.sent))

    entries = body["entries"]
    assert [e["id"] for e in entries] == journey.ids()
    assert [(e["correlation_id"], e["causation_id"]) for e in entries] == [
        (context.correlation_id, context.causation_id) for _, context in journey.sent
    ]
    assert all(e["correlation_id"] == ref for e in entries)
    assert [e["kind"] for e in entries].count("command") == 3
    assert [e["source"] for e in entries[:3]] == [
        "waybill/odoo-gateway",
        "waybill/orchestrator",
        "waybill/wms-bridge",
    ]
    assert body["order"]["stage"] == "shipped"
    assert body["order"]["messages"] == len(journey.sent)


async def test_a_message_delivered_twice_is_stored_once(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    subjects = SubjectMap(nats_prefix)
    ref = "WH/OUT/twice"
    journey = Journey(ref)
    message = for_order(OrderReleased, ref)
    context = journey.add(message, start=datetime.now(UTC))
    async with auditor(nats_url, nats_prefix, audit_db=str(tmp_path / "audit.sqlite")) as http:
        await publish(nc, subjects, message, context)
        # The same message again, past JetStream's duplicate window (as a replay would be).
        await publish(nc, subjects, message, context, nats_msg_id=f"{context.id}:replay")
        await settled(nc, subjects, "auditor", "events")
        body = await timeline(http, ref)
        async with http.get("/metrics") as response:
            metrics = await response.text()

    assert [e["id"] for e in body["entries"]] == [context.id]
    assert 'waybill_audit_duplicates_total{kind="event"} 1.0' in metrics
    assert 'waybill_audit_rows{kind="event"} 1.0' in metrics


async def test_dead_letters_are_recorded_with_their_reason(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    subjects = SubjectMap(nats_prefix)
    ref = "WH/OUT/dead"
    picked = for_order(WarehouseOrderPicked, ref)
    context = Journey(ref).add(picked, start=datetime.now(UTC))
    encoded = encode(picked, context, subjects)
    async with auditor(nats_url, nats_prefix, audit_db=str(tmp_path / "audit.sqlite")) as http:
        # Another service gave up on a message...
        await write_dead_letter(
            nc.jetstream(),
            subjects,
            DeadLetter(
                service="orchestrator",
                consumer=subjects.durable("orchestrator", "events"),
                reason="retries exhausted",
                error_type="StateKeptChanging",
                error_message="order changed under every attempt",
                attempts=8,
                failed_at=now_utc(),
                original_subject=encoded.subject,
                original_headers=encoded.headers,
                original_body=encoded.body,
                original_stream=subjects.events_stream.name,
                original_sequence=1,
            ),
        )
        # ...and a message no service can read: the auditor dead-letters it itself.
        broken = dict(encoded.headers, **{"ce-id": "broken-1", "Nats-Msg-Id": "broken-1"})
        await nc.jetstream().publish(encoded.subject, b'{"order_ref": 42}', headers=broken)

        async def letters() -> list[dict[str, Any]]:
            _, body = await get(http, "/dead-letters")
            return list(body["dead_letters"])

        found = await eventually(letters, until=lambda found: len(found) == 2, what="2 letters")
        by_order = await timeline(http, ref)

    reasons = {(d["service"], d["reason"], d["original_id"]) for d in found}
    assert reasons == {
        ("orchestrator", "retries exhausted", context.id),
        ("auditor", "invalid message", "broken-1"),
    }
    mine = next(d for d in found if d["service"] == "auditor")
    assert mine["error_type"] == "MalformedBody"
    assert mine["data"] == {"order_ref": 42}
    assert {d["service"] for d in by_order["dead_letters"]} == {"orchestrator", "auditor"}


async def test_dead_letters_of_v1_and_of_odd_originals_are_recorded_alike(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    subjects = SubjectMap(nats_prefix)
    ref = "SO/2024 Müller"
    picked = for_order(WarehouseOrderPicked, ref)
    context = Journey(ref).add(picked, start=datetime.now(UTC))
    encoded = encode(
        picked, msgspec.structs.replace(context, correlation_id=f"{ref} 100%"), subjects
    )
    shouting = {name.upper(): value for name, value in encoded.headers.items()}
    structured = msgspec.json.encode(
        {
            "specversion": "1.0",
            "id": "structured-1",
            "source": "urn:partner:oms",
            "type": context.type,
            "time": context.time.isoformat(),
            "correlationid": "order 7",
            "data": msgspec.to_builtins(picked),
        }
    )
    originals = [
        (shouting, encoded.body),
        ({"content-type": "application/cloudevents+json"}, structured),
    ]
    async with auditor(nats_url, nats_prefix, audit_db=str(tmp_path / "audit.sqlite")) as http:
        js = nc.jetstream()
        for recorded in v1_dead_letters():
            await js.publish(
                subjects.dlq_subject("wms-bridge"),
                recorded["body"].encode(),
                headers=recorded["headers"],
            )
        for sequence, (headers, body) in enumerate(originals, start=1):
            letter = DeadLetter(
                service="orchestrator",
                consumer=subjects.durable("orchestrator", "events"),
                reason="permanent error",
                error_type="PermanentError",
                error_message="no",
                attempts=1,
                failed_at=now_utc(),
                original_subject=encoded.subject,
                original_headers=headers,
                original_body=body,
                original_stream=subjects.events_stream.name,
                original_sequence=sequence,
            )
            await write_dead_letter(js, subjects, letter)

        async def letters() -> list[dict[str, Any]]:
            _, body = await get(http, "/dead-letters")
            return list(body["dead_letters"])

        found = await eventually(letters, until=lambda found: len(found) == 4, what="4 letters")
    by_id = {d["original_id"]: d for d in found}
    v1_permanent = v1_dead_letters()[0]
    old = by_id[json.loads(v1_permanent["body"])["original_headers"]["ce-id"]]
    # v1 wrote header values raw: they are recorded as written.
    assert (old["service"], old["reason"]) == ("wms-bridge", "permanent error")
    assert (old["subject"], old["order_ref"]) == (ref, "WH/OUT/00042")
    assert old["type"] == ReleaseToWarehouse.ce_type()
    garbage = by_id["garbage-1"]
    assert (garbage["reason"], garbage["source"]) == ("invalid message", "waybill/orchestrator")
    # Header names of any case, values percent-encoded: read as the binding says.
    odd = by_id[context.id]
    assert (odd["subject"], odd["correlation_id"]) == (ref, f"{ref} 100%")
    assert odd["order_ref"] == ref
    assert odd["type"] == WarehouseOrderPicked.ce_type()
    # A structured original: its attributes come from its body.
    partner = by_id["structured-1"]
    assert (partner["source"], partner["correlation_id"]) == ("urn:partner:oms", "order 7")
    assert partner["order_ref"] == ref


async def test_stages_only_move_forward_and_orders_past_their_deadline_are_stuck(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    subjects = SubjectMap(nats_prefix)
    now = datetime.now(UTC)
    waiting, delivered, picking = (
        Journey("WH/OUT/wait"),
        Journey("WH/OUT/done"),
        Journey("WH/OUT/pick"),
    )
    cause = waiting.add(for_order(OrderReleased, "WH/OUT/wait"), start=now)
    waiting.add(for_order(WarehouseOrderAccepted, "WH/OUT/wait"), cause=cause, start=now)
    cause = picking.add(for_order(OrderReleased, "WH/OUT/pick"), start=now)
    picking.add(for_order(WarehouseOrderPicked, "WH/OUT/pick"), cause=cause, start=now)
    ref = "WH/OUT/done"
    for minutes, message in enumerate(
        [
            for_order(OrderReleased, ref),
            for_order(ShipmentRecordedInOdoo, ref),
            for_order(MilestoneReached, ref, milestone=milestone(MilestoneCode.DELIVERED)),
            for_order(DeliveryRecordedInOdoo, ref),
        ]
    ):
        delivered.add(message, minutes=minutes, start=now - timedelta(hours=1))
    late = for_order(WarehouseOrderAccepted, ref)  # from long before, arriving last
    late_context = delivered.add(late, start=now - timedelta(hours=2))
    deadlines = {"accepted": 0.2, "released": 0.2}

    async with auditor(
        nats_url, nats_prefix, audit_db=str(tmp_path / "audit.sqlite"), stuck_after_s=deadlines
    ) as http:
        for journey in (waiting, picking):
            await publish_all(nc, subjects, journey)
        for earlier, context in delivered.sent[:-1]:
            await publish(nc, subjects, earlier, context)
        await wait_for_entries(http, ref, 4)
        await publish(nc, subjects, late, late_context)
        done = await wait_for_entries(http, ref, 5)

        async def stuck() -> list[str]:
            _, body = await get(http, "/orders", stuck="true")
            return [order["order_ref"] for order in body["orders"]]

        stuck_refs = await eventually(stuck, until=lambda refs: "WH/OUT/wait" in refs)
        _, accepted = await get(http, "/orders", stage="accepted", stuck="true")

    assert done["order"]["stage"] == "delivered"
    # Recorded (first in time: it was made two hours ago), yet no step back.
    assert done["entries"][0]["id"] == late_context.id
    assert stuck_refs == ["WH/OUT/wait"]  # picked has hours left; delivered is final
    [order] = accepted["orders"]
    assert (order["order_ref"], order["stuck"], order["stuck_after_s"]) == (
        "WH/OUT/wait",
        True,
        0.2,
    )


async def test_a_restarted_auditor_keeps_its_trail_in_the_state_folder(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    subjects = SubjectMap(nats_prefix)
    ref = "WH/OUT/again"
    journey = full_journey(ref, datetime.now(UTC))
    first_half, second_half = journey.sent[:4], journey.sent[4:]
    async with auditor(nats_url, nats_prefix, state_dir=str(tmp_path)) as http:
        for message, context in first_half:
            await publish(nc, subjects, message, context)
        await wait_for_entries(http, ref, len(first_half))

    database = tmp_path / "auditor" / "audit.sqlite"
    assert database.is_file()
    async with auditor(nats_url, nats_prefix, state_dir=str(tmp_path)) as http:
        before = await timeline(http, ref)
        for message, context in second_half:
            await publish(nc, subjects, message, context)
        after = await wait_for_entries(http, ref, len(journey.sent))
        async with http.get("/metrics") as response:
            metrics = await response.text()

    assert [e["id"] for e in before["entries"]] == [c.id for _, c in first_half]
    assert [e["id"] for e in after["entries"]] == journey.ids()
    assert after["order"]["stage"] == "shipped"
    rows = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("waybill_audit_rows{")
    )
    assert rows == len(journey.sent)  # counted from the database, not from this run only


async def test_the_auditor_answers_ping_is_ready_and_rejects_bad_queries(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    subjects = SubjectMap(nats_prefix)
    async with auditor(
        nats_url, nats_prefix, audit_db=str(tmp_path / "audit.sqlite"), version="7.1.2"
    ) as http:
        name = subjects.query_service_name("auditor")
        reply = await nc.request(f"$SRV.PING.{name}", b"", timeout=5)
        ready_status, ready = await get(http, "/readyz")
        missing_status, missing = await get(http, "/orders/WH%2FOUT%2F404/timeline")
        bad_status, bad = await get(http, "/orders", stuck="sometimes")

    ping = msgspec.json.decode(reply.data, type=PingResponse)
    assert (ping.name, ping.version) == (name, "7.1.2")
    assert ready_status == 200, ready
    assert {check["name"]: check["ok"] for check in ready["checks"]}["audit-db"] is True
    assert (missing_status, missing["order_ref"]) == (404, "WH/OUT/404")
    assert (bad_status, bad["invalid_params"][0]["name"]) == (400, "stuck")
