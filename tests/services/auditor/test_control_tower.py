"""The control tower's pages on a real auditor and nats-server: what operations staff see,
masked as the API masks it, live, and only with a token."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from bs4 import BeautifulSoup
from nats.aio.client import Client as NatsClient

from tests.services.auditor.journey import for_order
from tests.services.auditor.tower import TRACE_ID, page, rows_of, running_tower, send, text_of
from waybill_contracts import SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.events import (
    ExceptionRaised,
    OrderReleased,
    ShipmentBooked,
    WarehouseOrderAccepted,
)
from waybill_contracts.examples import example_of
from waybill_runtime.bus.dead_letters import DeadLetter, now_utc, write_dead_letter
from waybill_runtime.http import PROBLEM_CONTENT_TYPE
from waybill_runtime.testing.waiting import eventually


@pytest.fixture
def store_settings(backend: str, audit_url: str | None) -> dict[str, Any]:
    """The pages over each store: the SQLite file, and PostgreSQL."""
    return {"audit_database_url": audit_url} if audit_url else {}


STUCK = "WH/OUT/00900"
FLOWING = "WH/OUT/00901"
HELD = "WH/OUT/00902"


def released(ref: str, customer_reference: str | None = None) -> OrderReleased:
    message = for_order(OrderReleased, ref)
    order = msgspec.structs.replace(message.order, customer_reference=customer_reference)
    return msgspec.structs.replace(message, order=order)


async def record_orders(nc: NatsClient, subjects: SubjectMap, now: datetime) -> None:
    """STUCK: released and sent to the warehouse two hours ago (deadline 30 min).
    FLOWING: accepted just now. HELD: an exception holds it."""
    long_ago = now - timedelta(hours=2)
    cause = await send(
        nc, subjects, released(STUCK, "PO-7781"), source="odoo-gateway", correlation=STUCK,
        time=long_ago,
    )  # fmt: skip
    await send(
        nc, subjects, for_order(ReleaseToWarehouse, STUCK), source="orchestrator",
        correlation=STUCK, cause=cause, time=long_ago + timedelta(seconds=1),
    )  # fmt: skip
    cause = await send(nc, subjects, released(FLOWING), source="odoo-gateway", correlation=FLOWING)
    await send(
        nc, subjects, for_order(WarehouseOrderAccepted, FLOWING), source="wms-bridge",
        correlation=FLOWING, cause=cause,
    )  # fmt: skip
    cause = await send(
        nc, subjects, released(HELD), source="odoo-gateway", correlation=HELD,
        time=now - timedelta(hours=6),
    )  # fmt: skip
    held = msgspec.structs.replace(
        example_of(ExceptionRaised),
        order_ref=HELD,
        exception_id="exc-held-1",
        summary="All carriers failed for order",
        order_held=True,
        raised_at=now - timedelta(hours=5),
    )
    await send(
        nc, subjects, held, source="orchestrator", correlation=HELD, cause=cause,
        time=now - timedelta(hours=5),
    )  # fmt: skip


async def test_the_overview_shows_stages_stuck_orders_dead_letters_partners_and_lag(
    nc: NatsClient, nats_url: str, nats_prefix: str, store_settings: dict[str, Any]
) -> None:
    async with (
        running_tower(nats_url, nats_prefix, **store_settings) as tower,
        tower.session("viewer") as http,
    ):
        await record_orders(nc, tower.subjects, datetime.now(UTC))
        letter = DeadLetter(
            service="carrier-router",
            consumer="carrier-router-commands",
            reason="permanent failure",
            error_type="CarrierRefused",
            error_message="label refused for marie@example.com",
            attempts=3,
            failed_at=now_utc(),
            original_subject=tower.subjects.subject_for(ShipmentBooked),
            original_headers={
                "ce-type": "io.waybill.shipment.booked.v1",
                "ce-correlationid": FLOWING,
            },
            original_body=b"{}",
        )
        await write_dead_letter(nc.jetstream(), tower.subjects, letter)

        async def overview() -> BeautifulSoup:
            return await page(http, "/tower")

        soup = await eventually(
            overview,
            until=lambda s: len(rows_of(s, "tr.stuck-order")) == 2 and "carrier-router" in s.text,
            what="two stuck orders and a dead letter on the overview",
        )
        stages = {row[0]: row[1] for row in rows_of(soup, "table.stages tbody tr")}
        assert stages == {"in warehouse": "1", "accepted": "1", "held": "1"}
        stuck = {row[0]: row for row in rows_of(soup, "tr.stuck-order")}
        assert set(stuck) == {STUCK, HELD}
        # The reason is the latest exception's summary; the dead letter's error is masked as
        # the API masks it (the email hashed).
        assert stuck[HELD][4] == "All carriers failed for order"
        assert "marie@example.com" not in soup.text and "email:" in soup.text
        assert "in in_warehouse for longer than its deadline" in stuck[STUCK][4]
        partners = {row[0]: row for row in rows_of(soup, "table.partners tbody tr")}
        assert set(partners) == {"Odoo", "Warehouse (WMS)", "Carriers", "Customer notifications"}
        assert partners["Carriers"][4] == "1"  # the dead letter of carrier-router
        assert partners["Carriers"][3] == "100 %"
        # Consumer lag: every durable of the events and commands streams (the auditor's here).
        lag = {row[0] for row in rows_of(soup, "table.lag tbody tr")}
        assert {"auditor-events", "auditor-commands"} <= lag
        # A viewer sees no action anywhere.
        assert soup.select("form[method=post] button") == soup.select(
            "form[action='/tower/sign-out'] button"
        )


async def test_an_order_page_has_its_timeline_links_and_trace(
    nc: NatsClient, nats_url: str, nats_prefix: str, store_settings: dict[str, Any]
) -> None:
    async with (
        running_tower(nats_url, nats_prefix, **store_settings) as tower,
        tower.session("viewer") as http,
    ):
        await record_orders(nc, tower.subjects, datetime.now(UTC))

        async def order() -> BeautifulSoup:
            # 404 until the auditor has recorded the first message of the order.
            async with http.get(f"/tower/orders/{STUCK}", headers={"Accept": "text/html"}) as r:
                if r.status == 404:
                    return BeautifulSoup("", "html.parser")
            return await page(http, f"/tower/orders/{STUCK}")

        soup = await eventually(
            order, until=lambda s: len(s.select("li.entry")) == 2, what="two timeline entries"
        )
        assert text_of(soup, "h1") == f"Order {STUCK}"
        first, second = soup.select("li.entry")
        assert "io.waybill.order.released.v1" in first.text
        assert "from waybill/odoo-gateway" in text_of(first, ".who")
        # The command links to the event that caused it, by anchor.
        link = second.select_one(".links a")
        assert link is not None and link["href"] == f"#{first['id']}"
        trace = soup.select_one(".facts a[href^='http://traces.example']")
        assert trace is not None and trace["href"] == f"http://traces.example/trace/{TRACE_ID}"
        # The body is shown masked: the customer's name and email never reach the page.
        body = text_of(first, "details pre")
        assert "Marie Jansen" not in body and "marie@example.com" not in body
        assert "email:" in body
        assert not soup.select("section.actions")

        async with http.get(
            "/tower/orders/WH/OUT/NOPE", headers={"Accept": "text/html"}
        ) as missing:
            assert missing.status == 404
            assert missing.content_type == PROBLEM_CONTENT_TYPE


async def test_search_finds_by_ref_customer_reference_and_tracking_number(
    nc: NatsClient, nats_url: str, nats_prefix: str, store_settings: dict[str, Any]
) -> None:
    async with (
        running_tower(nats_url, nats_prefix, **store_settings) as tower,
        tower.session("viewer") as http,
    ):
        await record_orders(nc, tower.subjects, datetime.now(UTC))
        booked = for_order(ShipmentBooked, FLOWING)
        await send(nc, tower.subjects, booked, source="carrier-router", correlation=FLOWING)

        async def found(q: str) -> list[str]:
            soup = await page(http, "/tower/search", q=q)
            return [row[0] for row in rows_of(soup, "tr.found")]

        await eventually(
            lambda: found(booked.shipment.tracking_number),
            until=lambda r: r == [FLOWING],
            what="by tracking number",
        )
        assert await found("PO-7781") == [STUCK]
        assert sorted(await found("OUT/009")) == [STUCK, FLOWING, HELD]
        # Nobody finds an order by its customer's name.
        assert await found("Marie Jansen") == []
        # One match with go=true: straight to the order's page.
        async with http.get(
            "/tower/search", params={"q": "PO-7781", "go": "true"}, allow_redirects=False
        ) as going:
            assert going.status == 303
            assert going.headers["Location"] == f"/tower/orders/{STUCK}"
        async with http.get("/tower/search", params={"q": "x", "colour": "red"}) as bad:
            assert bad.status == 400
            problem = await bad.json(content_type=None)
            assert problem["invalid_params"][0]["name"] == "colour"


async def test_pages_send_a_browser_without_a_token_to_sign_in(
    nats_url: str, nats_prefix: str
) -> None:
    async with running_tower(nats_url, nats_prefix) as tower, tower.session(None) as anonymous:
        async with anonymous.get(
            "/tower/stuck", headers={"Accept": "text/html"}, allow_redirects=False
        ) as sent:
            assert sent.status == 303
            location = urlsplit(sent.headers["Location"])
            assert location.path == "/tower/sign-in"
            assert parse_qs(location.query) == {"next": ["/tower/stuck"]}
        # A tool (no text/html) gets the API's 401 problem.
        async with anonymous.get("/tower/stuck") as tool:
            assert tool.status == 401 and tool.content_type == PROBLEM_CONTENT_TYPE
        soup = await page(anonymous, "/tower/sign-in", next="/tower/stuck")
        assert "waybill token issue" in soup.text
        token = tower.keys.issue("viewer", subject="dana", ttl=timedelta(hours=1)).token
        async with anonymous.post(
            "/tower/sign-in", data={"token": token, "next": "/tower/stuck"}, allow_redirects=False
        ) as signed:
            assert signed.status == 303 and signed.headers["Location"] == "/tower/stuck"
            cookie = signed.cookies["waybill_session"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
        # The cookie now carries the token: the page names who is signed in.
        soup = await page(anonymous, "/tower/stuck")
        assert "dana · viewer" in text_of(soup, ".who")
        # An offsite "next" never becomes an open redirect.
        async with anonymous.post(
            "/tower/sign-in",
            data={"token": token, "next": "https://evil.example/"},
            allow_redirects=False,
        ) as offsite:
            assert offsite.headers["Location"] == "/tower"
        async with anonymous.post("/tower/sign-out", allow_redirects=False) as out:
            assert out.status == 303
        anonymous.cookie_jar.clear()
        async with anonymous.get(
            "/tower", headers={"Accept": "text/html"}, allow_redirects=False
        ) as again:
            assert again.status == 303


async def test_a_page_is_told_of_each_new_message_by_server_sent_events(
    nc: NatsClient, nats_url: str, nats_prefix: str, store_settings: dict[str, Any]
) -> None:
    async with (
        running_tower(nats_url, nats_prefix, **store_settings) as tower,
        tower.session("viewer") as http,
        http.get("/tower/live") as stream,
    ):
        assert stream.status == 200
        assert stream.content_type == "text/event-stream"
        assert await stream.content.readline() == b"retry: 3000\n"
        await send(
            nc, tower.subjects, released(FLOWING), source="odoo-gateway", correlation=FLOWING
        )

        async def next_event() -> list[bytes]:
            lines: list[bytes] = []
            while not (lines and lines[-1] == b"\n" and len(lines) > 1):
                lines.append(await stream.content.readline())
            return lines

        lines = await asyncio.wait_for(next_event(), 20)
        while lines[0] == b"\n":
            lines.pop(0)
        assert lines[0] == b"event: update\n"
        update = msgspec.json.decode(lines[1].removeprefix(b"data: "))
        assert update == {
            "kind": "event",
            "type": "io.waybill.order.released.v1",
            "order_ref": FLOWING,
            "stage": "released",
        }
