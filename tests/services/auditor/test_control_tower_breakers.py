"""Partners' circuit breakers in the control tower: the real wms-bridge's breaker, opened by a
failing WMS sandbox, shows open on the overview and the partner page, live, then closed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec
import pytest
from bs4 import BeautifulSoup
from nats.aio.client import Client as NatsClient

from tests.services.auditor.tower import page, rows_of, running_tower, send
from tests.services.wms_bridge.harness import wms_and_bridge
from waybill_contracts.events import PartnerCircuitChanged, WarehouseOrderAccepted
from waybill_contracts.examples import example_of
from waybill_runtime.testing.waiting import eventually

REF = "WH/OUT/00950"


@pytest.fixture
def store_settings(backend: str, audit_url: str | None) -> dict[str, Any]:
    """The pages over each store: the SQLite file, and PostgreSQL."""
    return {"audit_database_url": audit_url} if audit_url else {}


def warehouse_breakers(soup: BeautifulSoup) -> list[tuple[str, str]]:
    """The warehouse row's breakers on the overview: (state, text) of each."""
    [row] = [r for r in soup.select("table.partners tbody tr") if "Warehouse (WMS)" in r.get_text()]
    return [(str(b["data-state"]), b.get_text(" ", strip=True)) for b in row.select(".breaker")]


async def next_update(stream: aiohttp.ClientResponse) -> dict[str, Any]:
    """The next ``update`` event of the tower's event stream."""
    while True:
        line = await stream.content.readline()
        if line == b"event: update\n":
            data = await stream.content.readline()
            decoded: dict[str, Any] = msgspec.json.decode(data.removeprefix(b"data: "))
            return decoded


async def test_the_tower_shows_the_wms_breaker_open_then_closed_as_it_moves(
    nc: NatsClient, nats_url: str, nats_prefix: str, store_settings: dict[str, Any]
) -> None:
    async with (
        running_tower(nats_url, nats_prefix, **store_settings) as tower,
        tower.session("viewer") as http,
        wms_and_bridge(
            nc, nats_url, nats_prefix, wms_circuit_failures=2, wms_circuit_reset_s=2.0
        ) as rig,
    ):

        async def overview() -> BeautifulSoup:
            return await page(http, "/tower")

        # No breaker has moved: the tower shows the warehouse's closed.
        assert warehouse_breakers(await overview()) == [("closed", "closed")]
        async with http.get("/tower/live") as stream:
            rig.wms.faults.set("create_order", error_rate=1.0)
            await rig.release(REF)
            soup = await eventually(
                overview,
                until=lambda s: [state for state, _ in warehouse_breakers(s)] == ["open"],
                what="the warehouse's breaker open on the overview",
            )
            assert warehouse_breakers(soup) == [("open", "wms open")]
            # The open page heard of it as of any new row of the trail.
            circuit_type = tower.subjects.ce_type_for(PartnerCircuitChanged)

            async def circuit_update() -> dict[str, Any]:
                while (update := await next_update(stream))["type"] != circuit_type:
                    pass
                return update

            update = await asyncio.wait_for(circuit_update(), 30)
            assert update["order_ref"] is None
        partner = await page(http, "/tower/partners/warehouse")
        [opened] = rows_of(partner, "table.breakers tbody tr")
        assert opened[0] == "wms"
        assert opened[2] == "open"
        assert opened[4:] == ["closed", "2 failures in a row (WmsUnavailable)"]
        assert partner.select("tr.breaker-open")
        # The other partners' services have no breaker news.
        assert rows_of(await page(http, "/tower/partners/carriers"), "table.breakers tbody tr") == [
            ["No breaker has moved: all closed."]
        ]

        rig.wms.faults.clear()
        await rig.wait_for(WarehouseOrderAccepted, REF)
        soup = await eventually(
            overview,
            until=lambda s: warehouse_breakers(s) == [("closed", "wms closed")],
            what="the warehouse's breaker closed on the overview",
        )
        partner = await page(http, "/tower/partners/warehouse")
        [closed] = rows_of(partner, "table.breakers tbody tr")
        assert (closed[0], closed[1], closed[2]) == ("wms", opened[1], "closed")
        assert closed[4:] == ["half-open", "a trial call succeeded"]
        assert not partner.select("tr.breaker-open, tr.breaker-half_open")
        partners = await page(http, "/tower/partners")
        [row] = [r for r in rows_of(partners, "table.partners tbody tr") if "Warehouse" in r[0]]
        assert row[-1] == "wms closed"


def announcement(instance: str, previous: str, state: str, reason: str) -> PartnerCircuitChanged:
    return msgspec.structs.replace(
        example_of(PartnerCircuitChanged),
        service="carrier-router",
        instance=instance,
        partner="carrier-a",
        previous_state=previous,
        state=state,
        changed_at=datetime.now(UTC),
        reason=reason,
    )


async def test_each_instance_s_breaker_shows_its_latest_state_the_troubled_first(
    nc: NatsClient, nats_url: str, nats_prefix: str, store_settings: dict[str, Any]
) -> None:
    async with (
        running_tower(nats_url, nats_prefix, **store_settings) as tower,
        tower.session("viewer") as http,
    ):
        for news in (
            announcement("router-1", "closed", "open", "5 failures in a row (ServerError)"),
            announcement("router-2", "closed", "open", "5 failures in a row (TimeoutError)"),
            announcement("router-1", "open", "half_open", "30 s passed since it opened"),
            announcement("router-1", "half_open", "closed", "a trial call succeeded"),
        ):
            await send(
                nc, tower.subjects, news, source="carrier-router", correlation=news.business_key()
            )

        async def carriers() -> BeautifulSoup:
            return await page(http, "/tower/partners/carriers")

        soup = await eventually(
            carriers,
            until=lambda s: (
                [row[:3] for row in rows_of(s, "table.breakers tbody tr")]
                == [["carrier-a", "router-2", "open"], ["carrier-a", "router-1", "closed"]]
            ),
            what="both instances' breakers, router-1's closed again",
        )
        rows = rows_of(soup, "table.breakers tbody tr")
        assert [row[4:] for row in rows] == [
            ["closed", "5 failures in a row (TimeoutError)"],
            ["half-open", "a trial call succeeded"],
        ]
        overview = await page(http, "/tower")
        [row] = [
            r for r in overview.select("table.partners tbody tr") if "Carriers" in r.get_text()
        ]
        assert [(b["data-state"], b.get_text(strip=True)) for b in row.select(".breaker")] == [
            ("open", "carrier-a open"),
            ("closed", "carrier-a closed"),
        ]
        # The partners without news show closed.
        assert warehouse_breakers(overview) == [("closed", "closed")]
