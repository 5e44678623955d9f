"""The JSON API over a real audit database: timelines, orders by stage and stuck, dead letters,
and a problem for every bad request."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.services.auditor.databases import store_of
from tests.services.auditor.journey import T0, Journey, for_order
from tests.services.auditor.rows import SUBJECTS, dead_letter, record_of
from waybill_auditor.api import AuditApi, encode_cursor
from waybill_auditor.records import dead_letter_record
from waybill_auditor.stages import DEFAULT_STUCK_AFTER_S, Stage
from waybill_auditor.store import AuditStore
from waybill_contracts import MessageContext, new_context
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.events import OrderReleased, WarehouseOrderAccepted
from waybill_contracts.events.returns import RETURN_EVENT_TYPES
from waybill_contracts.examples import ORDER_REF, RETURN_ID, example_of
from waybill_contracts.return_commands import RETURN_COMMAND_TYPES
from waybill_runtime.bus.dead_letters import StoredDeadLetter
from waybill_runtime.http import PROBLEM_CONTENT_TYPE, create_http_app
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.personal_data import hash_email

REF = "WH/OUT/00042"
NOW = T0 + timedelta(hours=1)

Client = TestClient[Any, Any]


@pytest.fixture
async def store(backend: str, audit_url: str | None, tmp_path: Path) -> AsyncIterator[AuditStore]:
    """The API over SQLite and over PostgreSQL."""
    opened = store_of(backend, folder=tmp_path, url=audit_url)
    await opened.open()
    yield opened
    await opened.close()


def client_for(
    store: AuditStore, *, mask: bool = True, deadlines: dict[Stage, float] | None = None
) -> Client:
    api = AuditApi(
        store=store,
        deadlines=deadlines if deadlines is not None else dict(DEFAULT_STUCK_AFTER_S),
        mask=mask,
        clock=lambda: NOW,
    )
    app = create_http_app(
        service="auditor", registry=MetricsRegistry("auditor"), readiness=[], routes=api.routes()
    )
    return TestClient(TestServer(app))


@pytest.fixture
async def http(store: AuditStore) -> AsyncIterator[Client]:
    async with client_for(store) as client:
        yield client


async def record_flow(store: AuditStore, ref: str = REF) -> list[MessageContext]:
    """Release, release command, accepted; recorded newest first, the command's clock slow."""
    journey = Journey(ref)
    release = for_order(OrderReleased, ref)
    command = for_order(ReleaseToWarehouse, ref)
    accepted = for_order(WarehouseOrderAccepted, ref)
    released_ctx = journey.add(release, minutes=2)
    command_ctx = journey.add(command, cause=released_ctx, minutes=1)
    accepted_ctx = journey.add(accepted, cause=command_ctx, minutes=3)
    await store.record(record_of(accepted, accepted_ctx, 2))
    await store.record(record_of(command, command_ctx, 1))
    await store.record(record_of(release, released_ctx, 1))
    return [released_ctx, command_ctx, accepted_ctx]


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = await response.json()
    assert body["status"] == status
    return body


@pytest.mark.parametrize(
    "path", ["/orders/WH/OUT/00042/timeline", "/orders/WH%2FOUT%2F00042/timeline"]
)
async def test_the_timeline_lists_the_orders_messages_in_causal_order_with_their_ids(
    store: AuditStore, http: Client, path: str
) -> None:
    contexts = await record_flow(store)

    response = await http.get(path)

    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["order_ref"] == REF
    assert body["order"]["stage"] == "accepted"
    assert [
        (e["id"], e["type"], e["correlation_id"], e["causation_id"], e["source"])
        for e in body["entries"]
    ] == [(c.id, c.type, c.correlation_id, c.causation_id, c.source) for c in contexts]
    assert [e["kind"] for e in body["entries"]] == ["event", "command", "event"]
    assert body["entries"][1]["time"] == "2025-03-14T09:31:00Z"
    assert body["dead_letters"] == []


async def test_the_timeline_shows_the_dead_letters_of_the_order_beside_its_messages(
    store: AuditStore, http: Client
) -> None:
    await record_flow(store, "WH/OUT/7")
    await store.record(dead_letter_record(dead_letter(5), subjects=SUBJECTS))

    body = await (await http.get("/orders/WH/OUT/7/timeline")).json()

    assert len(body["entries"]) == 3
    [letter] = body["dead_letters"]
    assert (letter["reason"], letter["service"], letter["attempts"], letter["dlq_sequence"]) == (
        "retries exhausted",
        "orchestrator",
        8,
        5,
    )
    assert body["order"]["dead_letters"] == 1


async def test_an_order_the_auditor_never_saw_is_a_404_problem(http: Client) -> None:
    body = await problem(await http.get("/orders/WH/OUT/404/timeline"), 404)

    assert body["order_ref"] == "WH/OUT/404"
    assert "WH/OUT/404" in body["detail"]


async def test_personal_data_is_masked_in_what_the_api_shows(
    store: AuditStore, http: Client
) -> None:
    await record_flow(store)

    body = await (await http.get(f"/orders/{REF}/timeline")).json()

    text = str(body)
    order = body["entries"][0]["data"]["order"]
    sent = for_order(OrderReleased, REF).order
    assert sent.customer.email is not None
    assert order["customer"]["email"] == hash_email(sent.customer.email)
    assert sent.customer.email.split("@")[1] not in text  # not even the domain
    assert order["customer"]["name"] == " ".join(w[0] + "***" for w in sent.customer.name.split())
    assert order["ship_to"]["street"] == "***"
    assert sent.customer.email not in text
    assert sent.ship_to.street not in text
    assert order["ship_to"]["country_code"] == sent.ship_to.country_code  # ops need the country


async def test_unmasked_bodies_are_shown_when_masking_is_switched_off(store: AuditStore) -> None:
    await record_flow(store)
    async with client_for(store, mask=False) as http:
        body = await (await http.get(f"/orders/{REF}/timeline")).json()

    customer = for_order(OrderReleased, REF).order.customer
    assert body["entries"][0]["data"]["order"]["customer"]["email"] == customer.email


async def test_orders_are_listed_with_stage_since_and_stuck(store: AuditStore) -> None:
    await record_flow(store, "WH/OUT/1")  # accepted at 09:33
    await record_flow(store, "WH/OUT/2")
    journey = Journey("WH/OUT/3")
    release = for_order(OrderReleased, "WH/OUT/3")
    await store.record(record_of(release, journey.add(release, minutes=50)))
    deadlines = {Stage.ACCEPTED: 600.0, Stage.RELEASED: 600.0}

    async with client_for(store, deadlines=deadlines) as http:
        everything = await (await http.get("/orders")).json()
        stuck = await (await http.get("/orders", params={"stuck": "true"})).json()
        released = await (await http.get("/orders", params={"stage": "released"})).json()
        several = await (await http.get("/orders?stage=released,accepted&stuck=false")).json()

    assert [(o["order_ref"], o["stage"], o["stuck"]) for o in everything["orders"]] == [
        ("WH/OUT/1", "accepted", True),
        ("WH/OUT/2", "accepted", True),
        ("WH/OUT/3", "released", False),
    ]
    assert everything["orders"][0]["since"] == "2025-03-14T09:33:00Z"
    assert everything["orders"][0]["stuck_after_s"] == 600.0
    assert [o["order_ref"] for o in stuck["orders"]] == ["WH/OUT/1", "WH/OUT/2"]
    assert [o["order_ref"] for o in released["orders"]] == ["WH/OUT/3"]
    assert len(several["orders"]) == 3
    assert everything["next_cursor"] is None


async def test_orders_come_in_pages_that_a_cursor_continues(
    store: AuditStore, http: Client
) -> None:
    for n in range(5):
        journey = Journey(f"WH/OUT/{n}")
        release = for_order(OrderReleased, f"WH/OUT/{n}")
        await store.record(record_of(release, journey.add(release, minutes=n)))

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await http.get("/orders", params=params)).json()
        seen.extend(o["order_ref"] for o in page["orders"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == [f"WH/OUT/{n}" for n in range(5)]
    assert pages == 3


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("stage=nowhere", "stage"),
        ("stage=accepted,", "stage"),
        ("stuck=maybe", "stuck"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=WyJ4Il0", "cursor"),  # valid base64 JSON, not a position
        ("stuk=true", "stuk"),
        ("stage=held&stage=accepted", "stage"),
    ],
)
async def test_a_bad_orders_query_is_a_400_problem_naming_the_parameter(
    http: Client, query: str, parameter: str
) -> None:
    body = await problem(await http.get(f"/orders?{query}"), 400)

    assert body["invalid_params"][0]["name"] == parameter
    assert body["detail"]


async def test_an_unknown_stage_problem_lists_the_stages(http: Client) -> None:
    body = await problem(await http.get("/orders?stage=lost"), 400)

    assert "in_warehouse" in body["detail"] and "cancelled" in body["detail"]


async def test_a_timeline_takes_no_query_parameters(store: AuditStore, http: Client) -> None:
    await record_flow(store)

    body = await problem(await http.get(f"/orders/{REF}/timeline?verbose=1"), 400)

    assert body["invalid_params"][0]["name"] == "verbose"


async def test_dead_letters_are_listed_newest_first_in_pages(
    store: AuditStore, http: Client
) -> None:
    for sequence in (1, 2, 3):
        service = "wms-bridge" if sequence == 2 else "orchestrator"
        await store.record(
            dead_letter_record(dead_letter(sequence, service=service), subjects=SUBJECTS)
        )

    first = await (await http.get("/dead-letters", params={"limit": "2"})).json()
    rest = await (
        await http.get("/dead-letters", params={"limit": "2", "cursor": first["next_cursor"]})
    ).json()
    bridge = await (await http.get("/dead-letters", params={"service": "wms-bridge"})).json()

    assert [d["dlq_sequence"] for d in first["dead_letters"]] == [3, 2]
    assert [d["dlq_sequence"] for d in rest["dead_letters"]] == [1]
    assert rest["next_cursor"] is None
    assert [d["service"] for d in bridge["dead_letters"]] == ["wms-bridge"]
    letter = first["dead_letters"][0]
    assert letter["type"] == "io.waybill.warehouse_order.picked.v1"
    assert letter["data"]["order_ref"] == "WH/OUT/7"
    assert letter["error_message"] == "odoo did not answer"


@pytest.mark.parametrize("query", ["cursor=xyz", "limit=-1", "order=WH/OUT/1"])
async def test_a_bad_dead_letters_query_is_a_400_problem(http: Client, query: str) -> None:
    await problem(await http.get(f"/dead-letters?{query}"), 400)


@pytest.mark.parametrize(
    ("path", "position"),
    [
        ("/dead-letters", 10**30),
        ("/dead-letters", 2**63),
        ("/dead-letters", -1),
        ("/dead-letters", 1.5),
        ("/orders", ["2025-03-14T09:00:00Z", "WH/OUT/" + "9" * 600]),
        ("/orders", ["2025-03-14T09:00:00Z", 10**30]),
        ("/orders", "[" * 5_000),
    ],
)
async def test_a_cursor_out_of_range_is_a_400_problem_not_a_500(
    store: AuditStore, http: Client, path: str, position: Any
) -> None:
    await store.record(dead_letter_record(dead_letter(1), subjects=SUBJECTS))
    cursor = (
        encode_cursor(position)
        if not isinstance(position, str)
        else base64.urlsafe_b64encode(position.encode()).decode()
    )

    body = await problem(await http.get(path, params={"cursor": cursor}), 400)

    assert body["invalid_params"][0]["name"] == "cursor"


def poisoned(sequence: int, body: bytes, ref: str = REF) -> StoredDeadLetter:
    """A dead letter about ``ref`` whose original body is ``body``."""
    letter = dead_letter(sequence, ref=ref)
    return StoredDeadLetter(
        sequence=sequence, letter=msgspec.structs.replace(letter.letter, original_body=body)
    )


POISON = {
    "nested": b"[" * 100_000 + b"]" * 100_000,
    "not-utf8": b'\xff\xfe {"name": "Jane Doe", "note": "jane.doe@example.com +44 20 7946 0958"',
    "cut-short": b'{"order": {"customer": {"name": "Jane Doe", "email": "jane.doe@exa',
    "cut-in-street": b'{"ship_to": {"name": "Jane Doe", "street": "12 Baker Str',
    "huge-number": b'{"attempts": 1' + b"0" * 5000 + b"}",
}


async def test_poisoned_dead_letters_render_escaped_and_masked_never_a_500(
    store: AuditStore, http: Client
) -> None:
    for sequence, body in enumerate(POISON.values(), start=1):
        await store.record(dead_letter_record(poisoned(sequence, body), subjects=SUBJECTS))

    timeline = await http.get(f"/orders/{REF}/timeline")
    listed = await http.get("/dead-letters")
    about = await http.get("/dead-letters", params={"order_ref": REF})

    assert (timeline.status, listed.status, about.status) == (200, 200, 200)
    letters = (await listed.json())["dead_letters"]
    assert len(letters) == len(POISON) == len((await timeline.json())["dead_letters"])
    shown = {letter["dlq_sequence"]: letter["data"] for letter in letters}
    assert all(isinstance(data, str) for data in shown.values())  # shown as text
    assert shown[1].startswith("[[[[")
    assert shown[2].startswith('\\xff\\xfe {"name": "J*** D***"')
    text = await listed.text() + await timeline.text()
    for personal in ("Jane Doe", "jane.doe", "example.com", "7946", "Baker"):
        assert personal not in text
    assert hash_email("jane.doe@example.com") in shown[2]


async def test_poisoned_bodies_are_shown_as_they_are_when_masking_is_off(
    store: AuditStore,
) -> None:
    await store.record(dead_letter_record(poisoned(1, POISON["cut-short"]), subjects=SUBJECTS))
    async with client_for(store, mask=False) as http:
        listed = await (await http.get("/dead-letters")).json()

    assert listed["dead_letters"][0]["data"] == POISON["cut-short"].decode()


async def test_every_step_of_a_return_shows_on_its_orders_timeline(
    store: AuditStore, http: Client
) -> None:
    # Issue 20: a return's messages are their own trace (the return id) and name the order.
    await record_flow(store, ORDER_REF)
    return_types = (*RETURN_EVENT_TYPES, *RETURN_COMMAND_TYPES)
    for sequence, message_type in enumerate(return_types, start=10):
        message = example_of(message_type)
        await store.record(
            record_of(message, new_context(message, source="orchestrator"), sequence)
        )

    body = await (await http.get(f"/orders/{ORDER_REF}/timeline")).json()

    on_timeline = {e["type"] for e in body["entries"] if e["correlation_id"] == RETURN_ID}
    assert on_timeline == {t.ce_type() for t in return_types}
    assert body["order"]["stage"] == "accepted"  # a return moves no order stage
