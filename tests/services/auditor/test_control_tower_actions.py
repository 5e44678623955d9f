"""Operator actions from the control tower, on a real nats-server with the real auditor and
orchestrator: each a command on the bus naming the operator, carried out, and in the trail;
viewers get no buttons and a 403 for a forged post; cookie posts need the page's CSRF token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import msgspec
from bs4 import BeautifulSoup
from nats.aio.client import Client as NatsClient

from tests.services.auditor.journey import for_order
from tests.services.auditor.tower import Tower, page, running_tower, text_of
from tests.services.orchestrator.bus import commands, count_by_type, publish, wait_for_commands
from tests.services.orchestrator.journey import (
    accepted,
    booked,
    booking_failed,
    packed,
    picked,
    released,
)
from waybill_contracts import SubjectMap, encode, new_context
from waybill_contracts.commands import BookShipment, PostNoteInOdoo, VoidShipment
from waybill_contracts.events import ShipmentBooked
from waybill_contracts.operations import ReleaseHeldOrder
from waybill_orchestrator.app import build_service as build_orchestrator
from waybill_orchestrator.instructions import shipment_id_for
from waybill_runtime.bus.dead_letters import DeadLetter, now_utc, write_dead_letter
from waybill_runtime.http import PROBLEM_CONTENT_TYPE
from waybill_runtime.http.browser import csrf_token
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.waiting import eventually

HELD = "WH/OUT/00701"
WAITING = "WH/OUT/00702"
BOOKED = "WH/OUT/00703"


@dataclass
class Mesh:
    tower: Tower
    subjects: SubjectMap


@contextlib.asynccontextmanager
async def tower_and_orchestrator(nats_url: str, prefix: str) -> AsyncIterator[Mesh]:
    async with (
        running_service(
            build_orchestrator(), nats_url=nats_url, subject_prefix=prefix, retry_backoff_s=(0.1,)
        ),
        running_tower(nats_url, prefix) as tower,
    ):
        yield Mesh(tower, SubjectMap(prefix))


async def to_packed(nc: NatsClient, subjects: SubjectMap, ref: str) -> None:
    """Released, accepted, picked, packed: the orchestrator sends BookShipment."""
    await publish(nc, subjects, released(ref), source="odoo-gateway")
    await wait_for_commands(nc, subjects, {"ReleaseToWarehouse": 1}, order_ref=ref)
    for event in (accepted(ref), picked(ref), packed(ref)):
        await publish(nc, subjects, event)
    await wait_for_commands(nc, subjects, {"BookShipment": 1}, order_ref=ref)


async def order_page(
    http: aiohttp.ClientSession, ref: str, *, until: Any, what: str
) -> BeautifulSoup:
    async def fetch() -> BeautifulSoup:
        return await page(http, f"/tower/orders/{ref}")

    return await eventually(fetch, until=until, what=what)


def form_of(soup: BeautifulSoup, action: str) -> dict[str, str]:
    """The hidden fields of the page's form posting to ``action``."""
    form = soup.select_one(f"form[action='{action}']")
    assert form is not None, f"no form posting to {action}"
    return {str(i["name"]): str(i.get("value", "")) for i in form.select("input[type=hidden]")}


async def post(
    http: aiohttp.ClientSession, path: str, fields: dict[str, str]
) -> tuple[int, str, dict[str, Any] | None]:
    async with http.post(path, data=fields, allow_redirects=False) as response:
        body = (
            await response.json(content_type=None)
            if response.content_type == PROBLEM_CONTENT_TYPE
            else None
        )
        return response.status, response.headers.get("Location", ""), body


def operators_in(soup: BeautifulSoup) -> list[str]:
    return [
        text for text in (el.get_text(" ", strip=True) for el in soup.select(".entry .operator"))
    ]


async def test_an_operator_releases_a_held_order_and_the_trail_names_them(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with (
        tower_and_orchestrator(nats_url, nats_prefix) as mesh,
        mesh.tower.session("viewer") as viewer,
        mesh.tower.session("operator", subject="dana") as operator,
    ):
        subjects = mesh.subjects
        await to_packed(nc, subjects, HELD)
        await publish(nc, subjects, booking_failed(HELD, retryable=False), source="carrier-router")
        # A viewer sees the held order, and no action.
        soup = await order_page(
            viewer, HELD, until=lambda s: "held" in text_of(s, ".facts"), what="the order held"
        )
        assert not soup.select("section.actions")
        assert not soup.select("form[action^='/tower/actions']")
        # The operator sees the release (and the open exception to resolve).
        soup = await page(operator, f"/tower/orders/{HELD}")
        labels = [b.get_text(strip=True) for b in soup.select("section.actions button")]
        assert "Release hold" in labels and any(
            label.startswith("Resolve exception") for label in labels
        )
        fields = form_of(soup, "/tower/actions/release-hold")
        # A viewer's forged post is refused with a problem, and sends nothing.
        status, _, problem = await post(viewer, "/tower/actions/release-hold", fields)
        assert status == 403 and problem is not None and problem["status"] == 403
        assert count_by_type(await commands(nc, subjects))["ReleaseHeldOrder"] == 0

        status, location, _ = await post(
            operator, "/tower/actions/release-hold", {**fields, "note": "carrier back"}
        )
        assert status == 303 and location == f"/tower/orders/{HELD}?done=release-hold"
        # The same form sent twice is one action.
        await post(operator, "/tower/actions/release-hold", {**fields, "note": "carrier back"})
        found = await wait_for_commands(nc, subjects, {"BookShipment": 2}, order_ref=HELD)
        actions = [d.message for d in found if isinstance(d.message, ReleaseHeldOrder)]
        assert len(actions) == 1
        assert (actions[0].operator, actions[0].note, actions[0].order_ref) == (
            "dana",
            "carrier back",
            HELD,
        )
        # The orchestrator booked afresh, as a new attempt.
        bookings = [d.message for d in found if isinstance(d.message, BookShipment)]
        assert bookings[-1].shipment_id == shipment_id_for(HELD, 2)
        # The trail shows who did it, and the order moved on.
        soup = await order_page(
            viewer, HELD, until=lambda s: "booking" in text_of(s, ".facts"), what="booking again"
        )
        assert "by dana" in operators_in(soup)
        entry = next(e for e in soup.select("li.entry") if "release_hold" in e.text)
        assert "carrier back" in text_of(entry, "details pre")


async def test_retry_cancel_shipment_and_resolve_are_commands_the_orchestrator_carries_out(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with (
        tower_and_orchestrator(nats_url, nats_prefix) as mesh,
        mesh.tower.session("operator", subject="lee") as operator,
    ):
        subjects = mesh.subjects
        await publish(nc, subjects, released(WAITING), source="odoo-gateway")
        await wait_for_commands(nc, subjects, {"ReleaseToWarehouse": 1}, order_ref=WAITING)
        soup = await order_page(
            operator, WAITING, until=lambda s: bool(s.select("section.actions")), what="actions"
        )
        status, _, _ = await post(
            operator, "/tower/actions/retry-stage", form_of(soup, "/tower/actions/retry-stage")
        )
        assert status == 303
        await wait_for_commands(
            nc, subjects, {"ReleaseToWarehouse": 2, "RetryOrderStage": 1}, order_ref=WAITING
        )

        await to_packed(nc, subjects, BOOKED)
        await publish(nc, subjects, booked(BOOKED), source="carrier-router")
        await wait_for_commands(nc, subjects, {"RecordShipmentInOdoo": 1}, order_ref=BOOKED)
        soup = await order_page(
            operator,
            BOOKED,
            until=lambda s: bool(s.select("form[action='/tower/actions/cancel-shipment']")),
            what="the cancel-shipment action",
        )
        fields = form_of(soup, "/tower/actions/cancel-shipment")
        status, _, _ = await post(
            operator, "/tower/actions/cancel-shipment", {**fields, "note": "wrong carrier"}
        )
        assert status == 303
        found = await wait_for_commands(
            nc, subjects, {"VoidShipment": 1, "PostExceptionInOdoo": 1}, order_ref=BOOKED
        )
        void = next(d.message for d in found if isinstance(d.message, VoidShipment))
        assert "cancelled by lee: wrong carrier" in void.reason
        # Held now, with an exception to resolve: resolving it with a note releases it. The
        # shipment is cancelled: the page no longer offers to cancel it. The exception (an
        # event) and the cancellation (a command) reach the trail on two consumers, each
        # gathering on its own, so the page may show the one a moment before the other.
        soup = await order_page(
            operator,
            BOOKED,
            until=lambda s: bool(
                s.select("form[action='/tower/actions/resolve-exception']")
                and not s.select("form[action='/tower/actions/cancel-shipment']")
            ),
            what="the exception to resolve, and no cancel-shipment action",
        )
        fields = form_of(soup, "/tower/actions/resolve-exception")
        status, _, problem = await post(
            operator, "/tower/actions/resolve-exception", {**fields, "note": ""}
        )
        assert (
            status == 400 and problem is not None and problem["invalid_params"][0]["name"] == "note"
        )
        status, _, _ = await post(
            operator, "/tower/actions/resolve-exception", {**fields, "note": "rebook with DHL"}
        )
        assert status == 303
        found = await wait_for_commands(
            nc, subjects, {"BookShipment": 2, "PostNoteInOdoo": 1}, order_ref=BOOKED
        )
        note = next(d.message for d in found if isinstance(d.message, PostNoteInOdoo))
        assert "resolved by lee: rebook with DHL" in note.text


async def test_an_operator_replays_a_dead_letter_and_the_replay_names_them(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with (
        running_tower(nats_url, nats_prefix) as tower,
        tower.session("operator", subject="sam") as operator,
    ):
        subjects = tower.subjects
        letter = DeadLetter(
            service="orchestrator",
            consumer="orchestrator-events",
            reason="max deliveries exhausted",
            error_type="TransientError",
            error_message="workflow bucket unavailable",
            attempts=5,
            failed_at=now_utc(),
            original_subject=subjects.subject_for(ShipmentBooked),
            original_headers={},
            original_body=b"",
        )
        message = for_order(ShipmentBooked, BOOKED)
        encoded = encode(message, new_context(message, source="carrier-router"), subjects)
        letter = msgspec.structs.replace(
            letter, original_headers=dict(encoded.headers), original_body=encoded.body
        )
        await write_dead_letter(nc.jetstream(), subjects, letter)
        soup = await eventually(
            lambda: page(operator, "/tower/dead-letters"),
            until=lambda s: bool(s.select("form[action='/tower/actions/replay-dead-letter']")),
            what="the dead letter with its replay button",
        )
        fields = form_of(soup, "/tower/actions/replay-dead-letter")
        assert fields["order_ref"] == BOOKED
        status, location, _ = await post(operator, "/tower/actions/replay-dead-letter", fields)
        assert status == 303 and location == f"/tower/orders/{BOOKED}?done=replay-dead-letter"
        soup = await order_page(
            operator,
            BOOKED,
            until=lambda s: any("replayed by sam" in o for o in operators_in(s)),
            what="the replay in the timeline",
        )
        # The letter left the dead-letter stream; a second click finds it gone.
        assert await dead_letters(nc, subjects) == []
        status, _, problem = await post(operator, "/tower/actions/replay-dead-letter", fields)
        assert status == 404 and problem is not None and "not in the stream" in problem["detail"]


async def test_a_cookie_post_needs_the_pages_csrf_token(nats_url: str, nats_prefix: str) -> None:
    async with (
        running_tower(nats_url, nats_prefix) as tower,
        tower.session(None) as browser,
    ):
        token = tower.keys.issue("operator", subject="kim", ttl=timedelta(hours=1)).token
        async with browser.post("/tower/sign-in", data={"token": token}, allow_redirects=False):
            pass
        fields = {"action_id": "a" * 32, "dlq_sequence": "1"}
        status, _, problem = await post(browser, "/tower/actions/replay-dead-letter", fields)
        assert status == 403 and problem is not None and "CSRF" in problem["detail"]
        status, _, _ = await post(
            browser, "/tower/actions/replay-dead-letter", {**fields, "csrf_token": "0" * 64}
        )
        assert status == 403
        # The token of this session's pages is accepted: past the door, no such letter.
        status, _, _ = await post(
            browser,
            "/tower/actions/replay-dead-letter",
            {**fields, "csrf_token": csrf_token(token)},
        )
        assert status == 404
