"""Product sync runs on the control tower: runs under way, stuck when nothing was heard of them
for the configured time (like an order past its deadline), finished ones with their reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from nats.aio.client import Client as NatsClient

from tests.services.auditor.tower import page, rows_of, running_tower, send
from waybill_contracts import Message
from waybill_contracts.events import ProductsChanged, ProductsSynced, ProductSyncCompleted
from waybill_contracts.examples import example_of
from waybill_runtime.http import PROBLEM_CONTENT_TYPE
from waybill_runtime.testing.waiting import eventually

NOW = datetime.now(UTC)


async def test_a_run_nothing_was_heard_of_for_too_long_shows_stuck_and_a_finished_one_does_not(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    changed, synced = example_of(ProductsChanged), example_of(ProductsSynced)
    done = example_of(ProductSyncCompleted)
    async with (
        running_tower(nats_url, nats_prefix, product_sync_stuck_after_s=1800.0) as tower,
        tower.session("viewer") as http,
    ):

        async def at(message: Message, ago: timedelta, batch: str) -> None:
            await send(nc, tower.subjects, msgspec.structs.replace(message, batch_id=batch),
                       source="odoo-gateway", correlation=batch, time=NOW - ago)  # fmt: skip

        # Read two hours ago, nothing since: stuck.
        await at(msgspec.structs.replace(changed, page=1, last_page=False), timedelta(hours=2),
                 "run-quiet")  # fmt: skip
        # Read three hours ago, but the warehouse answered a page a minute ago: moving.
        await at(msgspec.structs.replace(changed, page=4, last_page=False), timedelta(hours=3),
                 "run-moving")  # fmt: skip
        await at(synced, timedelta(minutes=1), "run-moving")
        # Finished long ago: not under way.
        await at(changed, timedelta(days=1), "run-done")
        await at(done, timedelta(days=1), "run-done")
        soup = await eventually(
            lambda: page(http, "/tower/product-syncs"),
            until=lambda s: (
                len(s.select("table.product-syncs-under-way tr[data-batch]")) == 2
                and len(s.select("table.product-syncs tr[data-batch]")) == 1
            ),
            what="two runs under way and one finished",
        )
        async with http.get("/tower/product-syncs?sort=old") as bad:
            assert bad.status == 400 and bad.content_type == PROBLEM_CONTENT_TYPE
        async with http.get("/tower/product-syncs/run-done/report.xml") as unknown_format:
            assert unknown_format.status == 404
    under_way = rows_of(soup, "table.product-syncs-under-way tr[data-batch]")
    assert [(row[0], row[1], row[3]) for row in under_way] == [
        ("run-quiet", "1", "stuck"),
        ("run-moving", "4", "moving"),
    ]
    [finished] = rows_of(soup, "table.product-syncs tr[data-batch]")
    assert finished[0] == "run-done"
    # A viewer is offered no sync.
    assert not soup.select("form[action='/tower/actions/sync-products']")
