"""Retention: the trail forgets messages older than the cutoff and orders quiet since, keeps
orders still moving, counts again; the auditor purges at start when retention is set."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from tests.services.auditor.databases import store_of
from tests.services.auditor.journey import T0, Journey, for_order
from tests.services.auditor.rows import record_of, released
from waybill_auditor.app import build_service
from waybill_auditor.config import AuditorSettings
from waybill_auditor.retention import purge
from waybill_auditor.sqlite_store import SqliteAuditStore
from waybill_auditor.stages import Stage
from waybill_auditor.store import OrdersFilter
from waybill_auditor.trail import AuditTrail
from waybill_contracts.events import OrderReleased, WarehouseOrderAccepted
from waybill_runtime.local.ports import free_port
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.settings import SettingsError, load_settings
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.tokens import bearer, temporary_api_keys, trusting
from waybill_runtime.testing.waiting import eventually

OLD, MOVING = "WH/OUT/00100", "WH/OUT/00101"


async def test_a_purge_forgets_quiet_orders_and_old_messages_but_keeps_moving_orders(
    backend: str, audit_url: str | None, tmp_path: Path
) -> None:
    trails: list[AuditTrail] = []
    store = store_of(
        backend, folder=tmp_path, url=audit_url, on_change=lambda c: trails[0].changed(c)
    )
    await store.open()
    try:
        registry = MetricsRegistry("auditor")
        trail = AuditTrail(store, registry)
        trails.append(trail)
        await trail.record(released(OLD))
        # MOVING was released as long ago, and accepted since the cutoff.
        journey = Journey(MOVING)
        start = for_order(OrderReleased, MOVING)
        cause = journey.add(start)
        await trail.record(record_of(start, cause))
        later = for_order(WarehouseOrderAccepted, MOVING)
        await trail.record(record_of(later, journey.add(later, cause=cause, minutes=60 * 24 * 3)))
        cutoff = T0 + timedelta(days=1)

        # PostgreSQL tells of new rows asynchronously (NOTIFY): all three heard first.
        async def rows() -> str:
            return registry.render()[0].decode()

        await eventually(
            rows,
            until=lambda text: 'waybill_audit_rows{kind="event"} 3.0' in text,
            what="three rows counted",
        )
        purged = await purge(trail, before=cutoff)

        assert (purged.messages, purged.orders) == (2, 1)
        kept = await store.orders(OrdersFilter(), deadlines={}, now=cutoff)
        assert [row.order_ref for row in kept] == [MOVING]
        _, messages, _ = await store.timeline(MOVING)
        assert [m.ce_type for m in messages] == ["io.waybill.warehouse_order.accepted.v1"]
        # The gauges follow: one event left, the one order accepted, none released any more.
        kinds, stages = await store.counts()
        assert kinds["event"] == 1 and stages == {Stage.ACCEPTED: 1}
        metrics = registry.render()[0].decode()
        assert 'waybill_audit_rows{kind="event"} 1.0' in metrics
        assert 'waybill_audit_orders{stage="released"} 0.0' in metrics
        assert (await purge(trail, before=cutoff)).messages == 0
    finally:
        await store.close()


def test_retention_is_a_positive_number_of_days_and_off_by_default() -> None:
    def settings(**env: str) -> AuditorSettings:
        return load_settings(AuditorSettings, env, service="auditor")

    assert settings().audit_retention_days is None
    assert settings(WAYBILL_AUDIT_RETENTION_DAYS="90").audit_retention_days == 90
    with pytest.raises(SettingsError, match="WAYBILL_AUDIT_RETENTION_DAYS"):
        settings(WAYBILL_AUDIT_RETENTION_DAYS="0")


async def test_the_auditor_purges_at_start_when_retention_is_set(
    nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    database = tmp_path / "audit.sqlite"
    store = SqliteAuditStore(database)
    await store.open()
    await store.record(released(OLD))  # in 2025: long past any retention
    await store.close()
    port = free_port()
    with temporary_api_keys() as keys:
        async with (
            running_service(
                build_service(),
                nats_url=nats_url,
                subject_prefix=nats_prefix,
                http_port=port,
                audit_db=str(database),
                audit_retention_days=30,
                **trusting(keys),
            ),
            aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=bearer(keys)) as http,
        ):

            async def orders() -> list[object]:
                async with http.get("/orders") as response:
                    return list((await response.json())["orders"])

            await eventually(orders, until=lambda found: found == [], what="the old order purged")
