"""Hostile tracking webhooks: the wrong content type, absurd nesting, and replays of carrier A's
webhooks (its signature has no timestamp) are refused in one line, never acted on."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.services.carrier_router.harness import carriers_and_router, signed
from tests.services.carrier_router.test_tracking import a_sent_webhook, another_event
from waybill_carrier_router.app import service
from waybill_carrier_router.config import CarrierRouterSettings
from waybill_contracts.events import MilestoneReached
from waybill_runtime.settings import SettingsError, load_settings

DEEP = b"[" * 100_000 + b"]" * 100_000


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "waybill_runtime.http.problem"]


def with_event(body: bytes, **changes: Any) -> bytes:
    event = msgspec.json.decode(body)
    event.update(changes)
    for name in [name for name, value in changes.items() if value is None]:
        del event[name]
    return msgspec.json.encode(event)


@pytest.mark.parametrize("carrier", ["carrier-a", "carrier-b"])
async def test_a_signed_webhook_sent_as_text_plain_is_refused_with_415(
    nc: NatsClient,
    nats_url: str,
    nats_prefix: str,
    carrier: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="waybill_runtime.http.problem")
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        body = another_event(await a_sent_webhook(rig, carrier))
        before = await rig.events(MilestoneReached)
        caplog.clear()
        headers = {**signed(carrier, body), "Content-Type": "text/plain"}
        status, sent, problem = await rig.post_webhook(carrier, body, headers)
        assert (status, problem["status"]) == (415, 415)
        assert sent["Content-Type"].startswith("application/problem+json")
        assert "application/json" in problem["detail"] and "text/plain" in problem["detail"]
        assert await rig.events(MilestoneReached) == before
    [line] = refusals(caplog)
    assert line.startswith(f"answered 415 to POST /webhooks/carriers/{carrier}")
    assert "text/plain" in line


@pytest.mark.parametrize("carrier", ["carrier-a", "carrier-b"])
async def test_a_signed_webhook_nested_100000_levels_deep_is_a_400_not_a_crash(
    nc: NatsClient,
    nats_url: str,
    nats_prefix: str,
    carrier: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="waybill_runtime.http.problem")
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        for body in (DEEP, b'{"event": "track_updated", "data": ' + DEEP + b"}"):
            caplog.clear()
            status, _, problem = await rig.post_webhook(carrier, body, signed(carrier, body))
            assert (status, problem["title"]) == (400, "Bad Request")
            assert "more than 64 levels deep" in problem["detail"]
            [line] = refusals(caplog)
            assert "answered 400" in line and "64 levels deep" in line
        # Still serving: a normal webhook is taken in afterwards.
        body = another_event(await a_sent_webhook(rig, carrier))
        assert (await rig.post_webhook(carrier, body))[0] == 200


async def test_carrier_a_webhook_sent_again_is_acknowledged_and_not_acted_on_twice(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        body = await a_sent_webhook(rig, "carrier-a")  # taken in already, as the carrier sent it
        before = await rig.events(MilestoneReached)
        event_id = msgspec.json.decode(body)["id"]
        # A replay of the very same signed bytes, e.g. by someone who captured them.
        status, _, answer = await rig.post_webhook("carrier-a", body)
        assert (status, answer) == (200, {"status": "duplicate", "id": event_id})
        # The same tracking under a new Event id is a new webhook (and adds nothing new).
        status, _, answer = await rig.post_webhook("carrier-a", another_event(body))
        assert (status, answer["status"], answer["announced"]) == (200, "accepted", [])
        assert await rig.events(MilestoneReached) == before


@pytest.mark.parametrize(
    ("created", "complaint"),
    [
        (timedelta(days=-2), "beyond the replay window of 86400 s"),
        (timedelta(hours=1), "in the future"),
    ],
)
async def test_carrier_a_webhook_made_outside_the_replay_window_is_refused_with_401(
    nc: NatsClient, nats_url: str, nats_prefix: str, created: timedelta, complaint: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        sent = await a_sent_webhook(rig, "carrier-a")
        before = await rig.events(MilestoneReached)
        body = another_event(with_event(sent, created_at=datetime.now(UTC) + created))
        status, _, problem = await rig.post_webhook("carrier-a", body)  # correctly signed
        assert status == 401
        assert complaint in problem["detail"]
        assert await rig.events(MilestoneReached) == before


@pytest.mark.parametrize("missing", ["id", "created_at"])
async def test_carrier_a_webhook_without_its_id_or_creation_time_is_refused_with_400(
    nc: NatsClient, nats_url: str, nats_prefix: str, missing: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        body = with_event(another_event(await a_sent_webhook(rig, "carrier-a")), **{missing: None})
        status, _, problem = await rig.post_webhook("carrier-a", body)
        assert status == 400
        assert "id and created_at" in problem["detail"] and missing in problem["detail"]


async def test_a_webhook_answered_503_is_not_remembered_so_the_carriers_retry_is_taken(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        body = await a_sent_webhook(rig, "carrier-a")
        stranger = another_event(body.replace(b"EZ1000000001", b"EZ1999999999"))
        first = await rig.post_webhook("carrier-a", stranger)
        retry = await rig.post_webhook("carrier-a", stranger)
        assert (first[0], retry[0]) == (503, 503)
        assert "not known" in retry[2]["detail"]


@pytest.mark.parametrize("window", ["59", str(8 * 86_400)])
def test_the_replay_window_must_fit_the_time_ids_are_kept(window: str) -> None:
    with pytest.raises(SettingsError, match="WAYBILL_CARRIER_WEBHOOK_REPLAY_WINDOW_S"):
        load_settings(
            CarrierRouterSettings,
            {"WAYBILL_CARRIER_WEBHOOK_REPLAY_WINDOW_S": window},
            service=service.name,
        )
