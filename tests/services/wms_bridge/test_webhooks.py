"""``POST /webhooks/wms``: signatures, malformed bodies, repeats and reordering.

Most bodies come from a second, offline WMS sandbox walking an order through
its stages: real webhook bodies for an order the bridge's own WMS does not
have, so only the webhook path (never the poll) can produce its events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec
import nats.errors
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from nats.aio.client import Client as NatsClient

from tests.services.wms_bridge.harness import WEBHOOK_SECRET, signed_headers, wms_and_bridge
from waybill_contracts.events import (
    InventoryAdjusted,
    WarehouseOrderAccepted,
    WarehouseOrderPacked,
    WarehouseOrderPicked,
    WarehouseOrderShipped,
)
from waybill_runtime.http import problem_middleware
from waybill_sandboxes.delivery import DeliveryMode, DeliveryPolicy
from waybill_sandboxes.wms import OutboundOrderRequest, WmsConfig, WmsSandbox
from waybill_sandboxes.wms.records import STAGES
from waybill_wms_bridge.ledger import FactLedger
from waybill_wms_bridge.lifecycle import WarehouseFact
from waybill_wms_bridge.webhooks import WmsWebhookReceiver

WEBHOOK_LOG = "waybill.wms_bridge.webhooks"
REFUSAL_LOG = "waybill_runtime.http.problem"


def offline_webhooks(ref: str) -> dict[str, bytes]:
    """The webhook bodies a WMS sends for ``ref`` going accepted → shipped, by event type."""
    wms = WmsSandbox(WmsConfig(seed=3))
    request = msgspec.convert(
        {
            "client_order_ref": ref,
            "ship_to": {
                "name": "Marie Jansen",
                "street1": "Keizersgracht 123",
                "city": "Amsterdam",
                "postal_code": "1015 CJ",
                "country": "NL",
            },
            "lines": [{"sku": "MUG-BLUE", "qty": 2, "uom": "Units"}],
        },
        OutboundOrderRequest,
    )
    order, _ = wms.warehouse.create_order(request)
    for stage in STAGES:  # accepted, picked, packed, shipped
        wms.warehouse.advance(order.order_id, stage)
    return {sent.event_type: sent.body.encode() for sent in wms.sent_webhooks()}


async def test_a_webhook_signed_by_the_wms_is_accepted_and_recorded(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    bodies = offline_webhooks("WH/OUT/00030")
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        status, answer = await rig.post_webhook(bodies["order.accepted"])
        accepted = await rig.events(WarehouseOrderAccepted, "WH/OUT/00030")
    assert status == 202
    assert answer["new"] == 1
    assert len(accepted) == 1


def _tampered(body: bytes) -> tuple[bytes, dict[str, str]]:
    headers = signed_headers(body)
    return body.replace(b"MUG-BLUE", b"MUG-GOLD"), headers


def _stale(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed_headers(body, timestamp=int(time.time()) - 3600)


def _future(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed_headers(body, timestamp=int(time.time()) + 3600)


def _wrong_secret(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed_headers(body, secret="not-" + WEBHOOK_SECRET)


Forge = Callable[[bytes], tuple[bytes, dict[str, str]]]


def _without(header: str) -> Forge:
    def build(body: bytes) -> tuple[bytes, dict[str, str]]:
        headers = signed_headers(body)
        del headers[header]
        return body, headers

    return build


def _not_hex(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, {**signed_headers(body), "X-WMS-Signature": "zz-not-hex"}


def _signed_without_timestamp_binding(body: bytes) -> tuple[bytes, dict[str, str]]:
    # HMAC of the body alone (another partner's scheme): must not pass for the WMS's.
    from waybill_sandboxes.signing import hmac_sha256_hex

    headers = signed_headers(body)
    headers["X-WMS-Signature"] = hmac_sha256_hex(WEBHOOK_SECRET, body)
    return body, headers


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(_tampered, id="tampered-body"),
        pytest.param(_wrong_secret, id="wrong-secret"),
        pytest.param(_stale, id="stale-timestamp"),
        pytest.param(_future, id="future-timestamp"),
        pytest.param(_without("X-WMS-Signature"), id="no-signature"),
        pytest.param(_without("X-WMS-Timestamp"), id="no-timestamp"),
        pytest.param(_not_hex, id="signature-not-hex"),
        pytest.param(_signed_without_timestamp_binding, id="body-only-signature"),
    ],
)
async def test_a_webhook_not_signed_by_the_wms_is_refused_with_401_and_one_log_line(
    nc: NatsClient,
    nats_url: str,
    nats_prefix: str,
    caplog: pytest.LogCaptureFixture,
    forge: Forge,
) -> None:
    body, headers = forge(offline_webhooks("WH/OUT/00031")["order.packed"])
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        with caplog.at_level(logging.INFO):
            status, problem = await rig.post_webhook(body, headers=headers)
        stored = await rig.stored()
    assert status == 401
    assert problem["status"] == 401
    assert "not signed by the WMS" in problem["detail"]
    assert stored == []
    refusals = [r for r in caplog.records if r.name in (WEBHOOK_LOG, REFUSAL_LOG)]
    assert len(refusals) == 1
    assert refusals[0].levelno == logging.WARNING
    assert refusals[0].getMessage().startswith("answered 401 to POST /webhooks/wms from ")
    assert "not signed by the WMS" in refusals[0].getMessage()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"{not json", 400, id="not-json"),
        pytest.param(b"", 400, id="empty"),
        pytest.param(b"[1, 2]", 422, id="not-an-object"),
        pytest.param(b'{"event_type": "order.picked", "data": {}}', 422, id="no-event-id"),
        pytest.param(
            b'{"event_id": "e1", "event_type": "order.picked", '
            b'"occurred_at": "2025-03-14T09:30:00Z", "data": {"order_id": 7}}',
            422,
            id="data-not-an-order",
        ),
        pytest.param(
            b'{"event_id": "e2", "event_type": "inventory.adjusted", '
            b'"occurred_at": "2025-03-14T09:30:00Z", "data": {"sku": "A"}}',
            422,
            id="data-not-an-adjustment",
        ),
    ],
)
async def test_a_signed_but_malformed_webhook_is_refused_as_a_bad_request(
    nc: NatsClient, nats_url: str, nats_prefix: str, body: bytes, status: int
) -> None:
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        answered, problem = await rig.post_webhook(body)
        stored = await rig.stored()
    assert answered == status
    assert problem["status"] == status
    assert problem["detail"]
    assert stored == []


async def test_a_signed_webhook_sent_as_text_plain_is_refused_with_415_in_one_line(
    nc: NatsClient, nats_url: str, nats_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = offline_webhooks("WH/OUT/00032")["order.packed"]
    headers = {**signed_headers(body), "Content-Type": "text/plain"}
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        with caplog.at_level(logging.INFO):
            status, problem = await rig.post_webhook(body, headers=headers)
        stored = await rig.stored()
    assert (status, problem["status"]) == (415, 415)
    assert "text/plain" in problem["detail"]
    assert stored == []
    [line] = [r.getMessage() for r in caplog.records if r.name in (WEBHOOK_LOG, REFUSAL_LOG)]
    assert line.startswith("answered 415 to POST /webhooks/wms") and "text/plain" in line


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="arrays"),
        pytest.param(
            b'{"event_id": "e1", "event_type": "order.picked", "occurred_at": '
            b'"2025-03-14T09:30:00Z", "data": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001,
            id="objects-in-data",
        ),
    ],
)
async def test_a_signed_webhook_nested_100000_levels_deep_is_a_400_not_a_crash(
    nc: NatsClient, nats_url: str, nats_prefix: str, body: bytes
) -> None:
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        status, problem = await rig.post_webhook(body)
        stored = await rig.stored()
        accepted, _ = await rig.post_webhook(offline_webhooks("WH/OUT/00033")["order.accepted"])
    assert (status, problem["status"]) == (400, 400)
    assert "more than 64 levels deep" in problem["detail"]
    assert stored == []
    assert accepted == 202  # still serving


async def test_a_webhook_of_an_unknown_type_is_acknowledged_and_ignored(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    body = (
        b'{"event_id": "e9", "event_type": "wave.released", '
        b'"occurred_at": "2025-03-14T09:30:00Z", "warehouse": "WH1", "data": {"wave": 4}}'
    )
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        status, answer = await rig.post_webhook(body)
        stored = await rig.stored()
    assert status == 202
    assert answer["facts"] == 0
    assert stored == []


async def test_duplicate_webhooks_record_each_fact_once(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    bodies = offline_webhooks("WH/OUT/00032")
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        answers = [await rig.post_webhook(bodies["order.picked"]) for _ in range(3)]
        stored = [event for _id, event in await rig.stored()]
    assert [(status, answer["new"]) for status, answer in answers] == [(202, 2), (202, 0), (202, 0)]
    assert [type(event) for event in stored] == [WarehouseOrderAccepted, WarehouseOrderPicked]


async def test_reordered_webhooks_record_each_stage_once_in_stage_order(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    bodies = offline_webhooks("WH/OUT/00033")
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        news = []
        for event_type in ("order.packed", "order.picked", "order.accepted", "order.packed"):
            status, answer = await rig.post_webhook(bodies[event_type])
            assert status == 202
            news.append(answer["new"])
        stored = [event for _id, event in await rig.stored()]
    # The packed snapshot tells of every stage before it; the late ones add nothing.
    assert news == [3, 0, 0, 0]
    assert [type(event) for event in stored] == [
        WarehouseOrderAccepted,
        WarehouseOrderPicked,
        WarehouseOrderPacked,
    ]


async def test_each_webhook_of_an_order_maps_and_asks_the_ledger_about_its_new_stage_only(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    """Issue #18: each webhook carries every stage before its own, and the stages this
    process published are remembered with the order: a webhook builds and asks the ledger
    about the facts of its new stages only. Before, an order's four webhooks built ten
    facts and asked the ledger about each (1 + 2 + 3 + 4), and a repeated webhook four."""
    bodies = offline_webhooks("WH/OUT/00036")
    stages = ("order.accepted", "order.picked", "order.packed", "order.shipped")
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        answers = [await rig.post_webhook(bodies[event_type]) for event_type in stages]
        seen = await rig.facts_seen()
        again = await rig.post_webhook(bodies["order.shipped"])
        seen_again = await rig.facts_seen()
        stored = [event for _id, event in await rig.stored()]
    # Each webhook still reports every stage it carries; one is new each time.
    assert [(status, a["facts"], a["new"]) for status, a in answers] == [
        (202, 1, 1),
        (202, 2, 1),
        (202, 3, 1),
        (202, 4, 1),
    ]
    assert seen == 4  # 10 before
    assert (again[0], again[1]["facts"], again[1]["new"]) == (202, 4, 0)
    assert seen_again == 4  # 14 before
    assert [type(event) for event in stored] == [
        WarehouseOrderAccepted,
        WarehouseOrderPicked,
        WarehouseOrderPacked,
        WarehouseOrderShipped,
    ]


async def test_webhooks_of_an_order_arriving_together_ask_about_each_stage_once(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    """Issue #18: a quick warehouse's webhooks of one order arrive together; they are
    taken one at a time per order, each asking the ledger only about the stages the ones
    before it did not publish. Before, all four mapped every stage they carry and asked
    about it (10 facts), the repeats waiting on each other's publishes."""
    bodies = offline_webhooks("WH/OUT/00037")
    stages = ("order.accepted", "order.picked", "order.packed", "order.shipped")
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        answers = await asyncio.gather(
            *(rig.post_webhook(bodies[event_type]) for event_type in stages)
        )
        seen = await rig.facts_seen()
        stored = [event for _id, event in await rig.stored()]
    assert [status for status, _ in answers] == [202] * 4
    assert [answer["facts"] for _, answer in answers] == [1, 2, 3, 4]
    assert sum(answer["new"] for _, answer in answers) == 4
    assert seen == 4  # 10 before
    # Whichever came first, each stage once, in stage order.
    assert [type(event) for event in stored] == [
        WarehouseOrderAccepted,
        WarehouseOrderPicked,
        WarehouseOrderPacked,
        WarehouseOrderShipped,
    ]


async def test_a_webhook_whose_values_break_the_contract_keeps_the_valid_facts_and_names_it(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    packed = msgspec.json.decode(offline_webhooks("WH/OUT/00035")["order.packed"])
    packed["data"]["parcels"][0]["weight_kg"] = -1.0  # a scale that went wrong
    body = msgspec.json.encode(packed)
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        status, problem = await rig.post_webhook(body)
        stored = [event for _id, event in await rig.stored()]
    assert status == 422
    assert "parcels[0].weight_kg" in problem["detail"]
    assert problem["event_id"] == packed["event_id"]
    # What the snapshot says truly of earlier stages is stored; nothing invalid is.
    assert [type(event) for event in stored] == [WarehouseOrderAccepted, WarehouseOrderPicked]


async def test_a_lone_shipped_webhook_recovers_every_earlier_stage(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    bodies = offline_webhooks("WH/OUT/00034")
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        status, _ = await rig.post_webhook(bodies["order.shipped"])
        stored = [event for _id, event in await rig.stored()]
    assert status == 202
    assert [type(event) for event in stored] == [
        WarehouseOrderAccepted,
        WarehouseOrderPicked,
        WarehouseOrderPacked,
        WarehouseOrderShipped,
    ]


@pytest.mark.parametrize("mode", [DeliveryMode.DUPLICATE, DeliveryMode.REORDER])
async def test_sandbox_repeating_or_reordering_webhooks_changes_nothing(
    nc: NatsClient, nats_url: str, nats_prefix: str, mode: DeliveryMode
) -> None:
    refs = [f"WH/OUT/0004{n}" for n in range(4)]
    policy = DeliveryPolicy(mode=mode, reorder_window_s=0.1)
    async with wms_and_bridge(nc, nats_url, nats_prefix, wms={"delivery": policy}) as rig:
        for ref in refs:
            await rig.release(ref)
        for ref in refs:
            await rig.wait_for(WarehouseOrderPacked, ref)
        await rig.wms.settle()
        await rig.commands_settled()
        stored = await rig.stored()
    by_ref: dict[str, list[str]] = {}
    for _id, event in stored:
        by_ref.setdefault(event.business_key(), []).append(type(event).__name__)
    expected = [
        "WarehouseOrderAccepted",
        "WarehouseOrderPicked",
        "WarehouseOrderPacked",
        "WarehouseOrderShipped",
    ]
    assert {ref: sorted(names) for ref, names in by_ref.items()} == {
        ref: sorted(expected) for ref in refs
    }
    assert len({message_id for message_id, _ in stored}) == len(stored)
    if mode is DeliveryMode.DUPLICATE:
        assert {w.deliveries for w in rig.wms.sent_webhooks()} == {2}


async def test_an_inventory_adjustment_is_recorded_once_with_the_wms_event_as_reference(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    policy = DeliveryPolicy(mode=DeliveryMode.DUPLICATE)
    async with wms_and_bridge(nc, nats_url, nats_prefix, wms={"delivery": policy}) as rig:
        rig.wms.warehouse.adjust_inventory("MUG-BLUE", -3, "DAMAGED", "PICK-01")
        await rig.wms.settle()
        adjusted = await rig.wait_for(InventoryAdjusted)
        await rig.wms.settle()
        again = await rig.events(InventoryAdjusted)
    sent = rig.wms.sent_webhooks("inventory.adjusted")
    assert len(again) == 1
    change = adjusted[0].adjustment
    assert (change.sku, change.location, change.reason) == ("MUG-BLUE", "PICK-01", "DAMAGED")
    assert change.delta.value == -3
    assert change.reference == sent[0].event_id
    assert adjusted[0].warehouse == "WH1"


class _UnreachableLedger(FactLedger):
    """A ledger whose NATS is away."""

    def __init__(self) -> None:
        pass

    async def publish_all(self, facts: list[WarehouseFact], *, cause: object = None) -> int:
        raise nats.errors.TimeoutError


async def test_a_webhook_whose_facts_cannot_be_stored_now_is_answered_503_to_be_sent_again() -> (
    None
):
    receiver = WmsWebhookReceiver(
        secret=WEBHOOK_SECRET, tolerance_s=300, ledger=_UnreachableLedger()
    )
    app = web.Application(middlewares=[problem_middleware])
    app.add_routes(receiver.routes())
    body = offline_webhooks("WH/OUT/00035")["order.accepted"]
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/webhooks/wms", data=body, headers=signed_headers(body))
        problem = await response.json(content_type=None)
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert "send it again" in problem["detail"]
