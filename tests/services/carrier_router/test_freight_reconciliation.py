"""Freight reconciliation: carriers' invoices matched to the labels booked and their quotes.

Labels are booked through the router with both carrier sandboxes; wrong lines
are seeded at the carriers (their ``/_sandbox/billing`` admin); then a second
router instance on the same NATS runs freight reconciliation every 0.2 s, so
every invoice is seen by several runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
from nats.aio.client import Client as NatsClient

from tests.services.carrier_router.harness import Rig, booking, carriers_and_router
from waybill_carrier_router.app import service
from waybill_carrier_router.freight_book import FreightBook, FreightRun
from waybill_contracts.events import FreightInvoiceReconciled, ShipmentBooked
from waybill_contracts.model import FreightDiscrepancy, ServiceLevel
from waybill_runtime.local.ports import free_port
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.waiting import eventually

A_LABELS = ("shp-fa1", "shp-fa2", "shp-fa3")  # next day: only carrier A sells it
B_LABELS = ("shp-fb1", "shp-fb2", "shp-fb3")  # standard: carrier B is cheaper


async def seed(url: str, path: str, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http, http.post(f"{url}{path}", json=body) as answer:
        assert answer.status == 200, await answer.text()


async def book_all(rig: Rig) -> dict[str, ShipmentBooked]:
    booked: dict[str, ShipmentBooked] = {}
    for shipment_id in (*A_LABELS, *B_LABELS):
        level = ServiceLevel.NEXT_DAY if shipment_id in A_LABELS else ServiceLevel.STANDARD
        await rig.send(booking(shipment_id, level=level))
    for shipment_id in (*A_LABELS, *B_LABELS):
        [booked[shipment_id]] = await rig.wait_for(ShipmentBooked, shipment_id)
    assert {booked[s].shipment.carrier for s in A_LABELS} == {"carrier-a"}
    assert {booked[s].shipment.carrier for s in B_LABELS} == {"carrier-b"}
    return booked


@contextlib.asynccontextmanager
async def reconciling(rig: Rig, **settings: Any) -> AsyncIterator[str]:
    """Another router instance that reconciles freight every 0.2 s; yields its URL."""
    port = free_port()
    options = {**rig.settings, "http_port": port, "freight_reconcile_interval_s": 0.2}
    options.update(settings)
    async with running_service(service, **options):
        yield f"http://127.0.0.1:{port}"


async def metric(url: str, name: str, **labels: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as answer:
        text = await answer.text()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def reports(rig: Rig) -> list[FreightInvoiceReconciled]:
    return await rig.events(FreightInvoiceReconciled)


async def last_run(rig: Rig) -> FreightRun | None:
    js = rig.nc.jetstream()
    book = FreightBook(
        await js.key_value(rig.subjects.kv_bucket("tracking")),
        await js.key_value(rig.subjects.kv_bucket("watermarks")),
    )
    return await book.last_run()


def by_line(found: list[FreightInvoiceReconciled]) -> dict[str, FreightDiscrepancy]:
    return {d.shipment_id or d.line_id: d for report in found for d in report.discrepancies}


async def test_seeded_wrong_lines_are_flagged_and_correct_ones_match_once(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        booked = await book_all(rig)
        a_url = rig.settings["carrier_a_url"]
        b_url = rig.settings["carrier_b_url"]
        # Two wrong amounts, one shipment never bought, one surcharge within tolerance.
        await seed(
            a_url, "/_sandbox/billing/lines/shp-fa1", {"kind": "overcharge", "amount": "4.00"}
        )
        await seed(
            b_url,
            "/_sandbox/billing/lines/shp-fb2",
            {"kind": "surcharge", "name": "residential", "amount": "3.10"},
        )
        await seed(
            b_url,
            "/_sandbox/billing/lines/shp-fb3",
            {"kind": "surcharge", "name": "fuel", "amount": "0.01"},
        )
        await seed(
            a_url,
            "/_sandbox/billing/unknown",
            {
                "carrier_reference": "shp_nobody",
                "tracking_number": "EZ1999999999",
                "amount": "7.00",
            },
        )
        async with reconciling(rig) as url:
            found = await eventually(
                lambda: reports(rig),
                until=lambda r: sum(x.lines for x in r) >= 7,
                what="every invoice line reconciled",
            )
            assert await eventually(
                lambda: metric(url, "waybill_freight_runs_total", outcome="completed"),
                until=lambda runs: runs >= 3,
                what="three runs over the same invoices",
            )
            lines_counted = await metric(url, "waybill_freight_invoice_lines_total")
        found = await reports(rig)
        assert await rig.dead_letters() == []

    assert len(found) == 2  # one invoice per carrier, each reconciled once
    assert sorted(r.carrier for r in found) == ["carrier-a", "carrier-b"]
    assert sum(r.lines for r in found) == 7
    assert sum(r.matched for r in found) == 4
    assert lines_counted == 7  # runs after the first found both invoices done
    flagged = by_line(found)
    assert set(flagged) == {"shp-fa1", "shp-fb2", "shp_nobody"}
    over_a, over_b, unknown = flagged["shp-fa1"], flagged["shp-fb2"], flagged["shp_nobody"]
    quoted_a = booked["shp-fa1"].shipment.cost.amount
    assert over_a.kind == "over_tolerance"
    assert over_a.quoted is not None and over_a.quoted.amount == quoted_a
    assert over_a.billed is not None and over_a.billed.amount == quoted_a + Decimal("4.00")
    assert over_a.order_ref == "WH/OUT/shp-fa1"
    assert over_a.tracking_number == booked["shp-fa1"].shipment.tracking_number
    assert over_b.kind == "over_tolerance" and "residential" in over_b.reason
    assert over_b.billed is not None
    assert over_b.billed.amount == booked["shp-fb2"].shipment.cost.amount + Decimal("3.10")
    assert unknown.kind == "unknown_label" and unknown.carrier_reference == "shp_nobody"
    assert unknown.billed is not None and unknown.billed.amount == Decimal("7.00")
    matched_lines = {m.shipment_id: m for r in found for m in r.matched_lines}
    assert set(matched_lines) == {"shp-fa2", "shp-fa3", "shp-fb1", "shp-fb3"}
    assert matched_lines["shp-fb3"].billed.amount == matched_lines[
        "shp-fb3"
    ].quoted.amount + Decimal("0.01")
    assert matched_lines["shp-fa2"].order_ref == "WH/OUT/shp-fa2"
    matched_b = next(r for r in found if r.carrier == "carrier-b").matched_total
    assert matched_b is not None  # fb1 as quoted, fb3 one cent of fuel over: within 0.01
    assert matched_b.amount == sum(
        (booked[s].shipment.cost.amount for s in ("shp-fb1", "shp-fb3")), Decimal("0.01")
    )


async def test_a_carrier_whose_billing_fails_fails_the_run_with_its_reason(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with carriers_and_router(nc, nats_url, nats_prefix) as rig:
        await book_all(rig)
        rig.carrier_b.faults.set("list_invoices", error_rate=1.0)
        await seed(
            rig.settings["carrier_a_url"], "/_sandbox/billing/lines/shp-fa2", {"kind": "malformed"}
        )
        async with reconciling(rig) as url:
            found = await eventually(
                lambda: reports(rig), until=lambda r: len(r) >= 1, what="carrier A's invoice"
            )
            assert await eventually(
                lambda: metric(url, "waybill_freight_runs_total", outcome="failed"),
                until=lambda runs: runs >= 6,  # the breaker opens after 5 failed calls
                what="runs failed by carrier B",
            )
            run = await last_run(rig)
            assert rig.carrier_b.calls()["list_invoices"] >= 12  # retried, and asked again
            # More failed billing calls than open a circuit: carrier B still sells labels.
            await rig.send(booking("shp-fb4", level=ServiceLevel.STANDARD))
            [late] = await rig.wait_for(ShipmentBooked, "shp-fb4")
            assert late.shipment.carrier == "carrier-b"
            # Carrier B answers again: its invoice is reconciled by the next run.
            rig.carrier_b.faults.clear()
            found = await eventually(
                lambda: reports(rig), until=lambda r: len(r) >= 2, what="carrier B's invoice"
            )
        assert await rig.dead_letters() == []

    assert run is not None and run.state == "failed"
    assert [f.split(":")[0] for f in run.failures] == ["carrier-b"]
    assert "503" in run.failures[0]
    [report_a] = [r for r in found if r.carrier == "carrier-a"]
    [malformed] = report_a.discrepancies
    assert malformed.kind == "malformed" and malformed.carrier_reference is not None
    assert "n/a" in malformed.reason and "not a number" in malformed.reason
    assert report_a.matched == 2
    [report_b] = [r for r in found if r.carrier == "carrier-b"]
    assert report_b.matched == 4 and report_b.discrepancies == ()
