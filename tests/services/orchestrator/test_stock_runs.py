"""Inventory reconciliation runs in the orchestrator: started once when due, pages kept once,
compared once both snapshots are in, stuck past the deadline; a page of no run is a dead
letter. Real NATS (KV with compare-and-set, JetStream); the clock is the test's."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nats.aio.client import Client as NatsClient

from tests.services.orchestrator.bus import Clock, commands, count_by_type, events, publish
from tests.services.orchestrator.journey import T0
from waybill_contracts import SubjectMap, new_context
from waybill_contracts.commands import SnapshotOdooInventory, SnapshotWarehouseInventory
from waybill_contracts.events import InventoryReconciled, InventorySnapshotTaken
from waybill_contracts.model import InventorySystem, Quantity, StockLevel
from waybill_orchestrator.app import build_service
from waybill_orchestrator.stock_runs import StockRuns, snapshot_id
from waybill_orchestrator.stock_schedule import ReconciliationSchedule
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.waiting import eventually

INTERVAL_S = 86400.0
DEADLINE_S = 600.0


def make_runs(
    nc: NatsClient, subjects: SubjectMap, kv: Any, clock: Clock, expected: dict[str, Decimal]
) -> StockRuns:
    async def in_flight() -> dict[str, Decimal]:
        return expected

    publisher = Publisher(nc, subjects, service="orchestrator")
    return StockRuns(kv, publisher, in_flight, deadline_s=DEADLINE_S, clock=clock)


def page(
    run_id: str, system: InventorySystem, number: int, last: bool, *levels: tuple[str, int]
) -> InventorySnapshotTaken:
    return InventorySnapshotTaken(
        snapshot_id=snapshot_id(run_id, system),
        system=system,
        page=number,
        last_page=last,
        levels=tuple(
            StockLevel(sku=sku, location="PICK-01", on_hand=Quantity(value=Decimal(n), uom="EA"))
            for sku, n in levels
        ),
        taken_at=T0,
    )


def stuck_gauge(metrics: MetricsRegistry) -> float:
    [value] = [
        sample.value
        for family in metrics.collector_registry.collect()
        for sample in family.samples
        if sample.name == "waybill_inventory_reconciliation_stuck"
    ]
    return value


async def test_a_run_starts_once_when_due_across_instances_and_not_again_before_the_interval(
    nc: NatsClient, parts: tuple[SubjectMap, Any]
) -> None:
    subjects, kv = parts
    clock = Clock(T0)
    metrics = MetricsRegistry("orchestrator")
    schedules = [
        ReconciliationSchedule(
            kv, make_runs(nc, subjects, kv, clock, {}), metrics, interval_s=INTERVAL_S
        )
        for _instance in range(2)
    ]
    first = [await schedule.tick() for schedule in schedules]
    started = {record.reconciliation_id for record in first if record is not None}
    assert len(started) == 1
    clock.advance(INTERVAL_S / 2)
    assert {r.reconciliation_id for s in schedules if (r := await s.tick())} == started
    sent = count_by_type(await commands(nc, subjects))
    assert (sent["SnapshotOdooInventory"], sent["SnapshotWarehouseInventory"]) == (1, 1)
    clock.advance(INTERVAL_S / 2)
    later = await schedules[1].tick()
    assert later is not None and later.reconciliation_id not in started
    sent = count_by_type(await commands(nc, subjects))
    assert (sent["SnapshotOdooInventory"], sent["SnapshotWarehouseInventory"]) == (2, 2)


async def test_pages_count_once_and_the_report_comes_once_both_snapshots_are_complete(
    nc: NatsClient, parts: tuple[SubjectMap, Any]
) -> None:
    subjects, kv = parts
    clock = Clock(T0)
    runs = make_runs(nc, subjects, kv, clock, {"MUG-BLUE": Decimal(2)})
    assert await runs.start("rec-1")
    assert not await runs.start("rec-1")  # started once
    sent = [d.message for d in await commands(nc, subjects)]
    assert {type(m) for m in sent} == {SnapshotOdooInventory, SnapshotWarehouseInventory}
    assert {m.snapshot_id for m in sent} == {"rec-1-odoo", "rec-1-warehouse"}  # type: ignore[attr-defined]

    odoo, warehouse = InventorySystem.ODOO, InventorySystem.WAREHOUSE
    pages = [
        page("rec-1", odoo, 2, True, ("TEA-EARL", 10), ("SOAP", 4)),
        page("rec-1", warehouse, 1, False, ("MUG-BLUE", 38)),
        page("rec-1", odoo, 1, False, ("MUG-BLUE", 40)),
        page("rec-1", odoo, 1, False, ("MUG-BLUE", 40)),  # redelivered
        page("rec-1", warehouse, 2, True, ("TEA-EARL", 10), ("SOAP", 3)),
    ]
    for taken in pages[:-1]:
        cause = new_context(taken, source="odoo-gateway")
        await runs.page_taken(taken, cause)
        record, _ = await runs.read("rec-1")
        assert record is not None and record.completed_at is None
    assert [
        d for d in await events(nc, subjects) if isinstance(d.message, InventoryReconciled)
    ] == []
    last = pages[-1]
    await runs.page_taken(last, new_context(last, source="wms-bridge"))
    await runs.page_taken(last, new_context(last, source="wms-bridge"))  # redelivered
    reports = [
        d.message for d in await events(nc, subjects) if isinstance(d.message, InventoryReconciled)
    ]
    [report] = reports
    assert report.skus_compared == 3
    assert [(d.sku, d.odoo_on_hand, d.warehouse_on_hand) for d in report.discrepancies] == [
        (
            "SOAP",
            Quantity(value=Decimal(4), uom="EA"),
            Quantity(value=Decimal(3), uom="EA"),
        )
    ]
    record, _ = await runs.read("rec-1")
    assert record is not None and (record.odoo_pages, record.warehouse_pages) == ((2, 1), (1, 2))


async def test_a_run_past_its_deadline_is_stuck_and_the_gauge_says_so(
    nc: NatsClient, parts: tuple[SubjectMap, Any]
) -> None:
    subjects, kv = parts
    clock = Clock(T0)
    metrics = MetricsRegistry("orchestrator")
    runs = make_runs(nc, subjects, kv, clock, {})
    schedule = ReconciliationSchedule(kv, runs, metrics, interval_s=INTERVAL_S)
    record = await schedule.tick()
    assert record is not None and not record.stuck(clock())
    assert stuck_gauge(metrics) == 0
    clock.advance(DEADLINE_S)
    record = await schedule.tick()
    assert record is not None and record.stuck(clock())
    assert stuck_gauge(metrics) == 1
    # Its snapshots arrive late after all: complete, no longer stuck.
    for system in InventorySystem:
        taken = page(record.reconciliation_id, system, 1, True, ("MUG-BLUE", 1))
        await runs.page_taken(taken, new_context(taken, source="tests"))
    await schedule.tick()
    assert stuck_gauge(metrics) == 0


async def test_a_page_of_a_snapshot_no_run_asked_for_is_a_dead_letter_naming_it(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    async with running_service(
        build_service(), nats_url=nats_url, subject_prefix=nats_prefix, retry_backoff_s=(0.1,)
    ):
        stray = page("rec-nobody", InventorySystem.WAREHOUSE, 1, True, ("MUG-BLUE", 1))
        await publish(nc, subjects, stray)
        [letter] = await eventually(
            lambda: dead_letters(nc, subjects), what="the stray page's dead letter"
        )
    assert letter.reason == "permanent error"
    assert "rec-nobody-warehouse" in letter.error_message
    assert "no reconciliation run" in letter.error_message
