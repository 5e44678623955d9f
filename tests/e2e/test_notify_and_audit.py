"""Customers told once, every message on the record: notifier and auditor in the whole mesh."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from nats.aio.client import Client as NatsClient

from tests.e2e.mesh import ALL_SERVICES, running_mesh
from tests.e2e.test_order_to_ship import (
    all_shipped,
    release_orders,
    settled_shipped_emails,
    shipped_emails,
)
from waybill_contracts import MESSAGE_TYPES, MessageKind
from waybill_runtime.testing.streams import stored_messages
from waybill_runtime.testing.tokens import bearer
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.mail import SmtpMode

# Generous bounds for a hung run on a loaded machine; these are not performance limits.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


async def test_mail_down_for_a_while_delays_no_shipment_and_sends_each_email_once(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    async with running_mesh(
        nc, nats_url, nats_prefix, services=ALL_SERVICES, tmp_state_dir=str(tmp_path)
    ) as mesh:
        await mesh.mail.smtp.set_mode(SmtpMode.REFUSE)
        refs = release_orders(mesh, 20, seed=11)
        await all_shipped(mesh, refs)  # shipping went on without mail
        assert await shipped_emails(mesh) == []
        await mesh.mail.smtp.set_mode(SmtpMode.UP)
        sent = await settled_shipped_emails(mesh, refs, timeout_s=90)
    assert Counter(sent) == Counter({ref: 1 for ref in refs})


async def _get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_the_audit_timeline_is_causal_and_stuck_orders_are_found(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    async with running_mesh(
        nc,
        nats_url,
        nats_prefix,
        services=ALL_SERVICES,
        tmp_state_dir=str(tmp_path),
        service_settings={"auditor": {"stuck_after_s": '{"accepted": 1}'}},
    ) as mesh:
        shipped, held = release_orders(mesh, 2, seed=5)
        mesh.wms.lifecycle.hold(held, "picked")  # the warehouse sits on this one
        await all_shipped(mesh, [shipped])
        auditor = mesh.plan.service_url("auditor")
        assert mesh.plan.api_keys is not None
        async with aiohttp.ClientSession(headers=bearer(mesh.plan.api_keys, "viewer")) as http:
            stuck = await eventually(
                lambda: _get(http, f"{auditor}/orders?stuck=true"),
                until=lambda page: held in [o["order_ref"] for o in page["orders"]],
                what="the held order to count as stuck",
            )
            stored: list[tuple[Any, Any]] = []
            for message_type in MESSAGE_TYPES:
                if message_type.kind in (MessageKind.EVENT, MessageKind.COMMAND):
                    stored += await stored_messages(nc, mesh.subjects, message_type)
            expected_ids = {ctx.id for _, ctx in stored if ctx.correlation_id == shipped}
            timeline = await eventually(
                lambda: _get(http, f"{auditor}/orders/{quote(shipped, safe='')}/timeline"),
                until=lambda t: {e["id"] for e in t["entries"]} >= expected_ids,
                what="every message of the order in its timeline",
            )
        mesh.wms.lifecycle.release(held)
    stuck_order = next(o for o in stuck["orders"] if o["order_ref"] == held)
    assert stuck_order["stage"] == "accepted" and stuck_order["stuck"]
    assert shipped not in [o["order_ref"] for o in stuck["orders"]]
    entries = timeline["entries"]
    assert {e["id"] for e in entries} == expected_ids
    seen: set[str] = set()
    for entry in entries:
        assert entry["correlation_id"] == shipped
        if entry["causation_id"] in expected_ids:
            assert entry["causation_id"] in seen, f"{entry['type']} listed before its cause"
        seen.add(entry["id"])
    types = [e["type"] for e in entries]
    assert types[0] == "io.waybill.order.released.v1"
    assert "io.waybill.cmd.warehouse.release_order.v1" in types
    assert "io.waybill.shipment.booked.v1" in types
