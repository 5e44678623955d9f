"""Freight matching rules (the tolerance setting, what each invoice line comes to) and the
run record a crashed run leaves behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from waybill_carrier_router.carriers.invoices import CarrierInvoice, InvoiceLine, Surcharge
from waybill_carrier_router.config import CarrierRouterSettings
from waybill_carrier_router.fleet import CarrierFleet
from waybill_carrier_router.freight_book import BookedFreight, FreightBook, FreightRun
from waybill_carrier_router.freight_matching import (
    FreightTolerance,
    in_pages,
    reconcile_invoice,
)
from waybill_carrier_router.freight_reconciliation import FreightReconciler
from waybill_contracts.events import FreightInvoiceReconciled
from waybill_contracts.model import Money
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.resilience import CircuitBreakers, RateLimits, RetryPolicy
from waybill_runtime.settings import SettingsError, load_settings

NOW = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)


def usd(amount: str, currency: str = "USD") -> Money:
    return Money(amount=Decimal(amount), currency=currency)


@pytest.mark.parametrize(
    ("text", "absolute", "percent"),
    [("0.50", "0.50", "0"), ("2%", "0", "2"), ("0.50, 2%", "0.50", "2"), ("2%,0.5", "0.5", "2")],
)
def test_a_tolerance_is_an_amount_a_percentage_or_both(
    text: str, absolute: str, percent: str
) -> None:
    assert FreightTolerance.parse(text) == FreightTolerance(
        absolute=Decimal(absolute), percent=Decimal(percent)
    )


@pytest.mark.parametrize("text", ["abc", "-1", "1,2", "2%,3%", "x%", "NaN"])
def test_a_tolerance_that_is_not_one_stops_the_service_naming_the_setting(text: str) -> None:
    with pytest.raises(SettingsError, match="WAYBILL_FREIGHT_TOLERANCE"):
        load_settings(
            CarrierRouterSettings,
            environ={"WAYBILL_SERVICE": "carrier-router", "WAYBILL_FREIGHT_TOLERANCE": text},
        )


def test_the_larger_of_amount_and_percentage_is_allowed() -> None:
    tolerance = FreightTolerance.parse("0.50,2%")
    assert tolerance.allowed(Decimal("10")) == Decimal("0.50")
    assert tolerance.allowed(Decimal("100")) == Decimal("2")


def label(reference: str, quoted: str, currency: str = "USD") -> BookedFreight:
    return BookedFreight(
        shipment_id=f"shp-{reference}",
        order_ref=f"WH/OUT/{reference}",
        carrier="carrier-b",
        carrier_reference=reference,
        tracking_number=f"TRK-{reference}",
        quoted=usd(quoted, currency),
        booked_at=NOW,
    )


def test_each_line_is_matched_over_the_tolerance_unknown_or_malformed() -> None:
    lines = (
        InvoiceLine(line_id="l1", carrier_reference="t1", billed=usd("10.00")),
        InvoiceLine(line_id="l2", carrier_reference="t2", billed=usd("102.00")),  # 2 %: fine
        InvoiceLine(
            line_id="l3",
            carrier_reference="t3",
            billed=usd("13.10"),
            surcharges=(Surcharge(name="residential", amount=Decimal("3.10")),),
        ),
        InvoiceLine(line_id="l4", carrier_reference="t4", billed=usd("10.00", "EUR")),
        InvoiceLine(line_id="l5", carrier_reference="nobody", billed=usd("7.00")),
        InvoiceLine(line_id="l6", carrier_reference="t6", problem="row 6: amount 'n/a'"),
    )
    booked = {ref: label(ref, "10.00") for ref in ("t1", "t3", "t4", "t6")}
    booked["t2"] = label("t2", "100.00")
    invoice = CarrierInvoice(carrier="carrier-b", invoice_id="inv-1", issued_at=NOW, lines=lines)

    report = reconcile_invoice(
        invoice, booked, FreightTolerance.parse("0.50,2%"), reconciled_at=NOW
    )

    assert report.reconciliation_id == "freight:carrier-b:inv-1"
    assert (report.lines, report.matched) == (6, 2)
    assert [m.shipment_id for m in report.matched_lines] == ["shp-t1", "shp-t2"]
    assert report.matched_total == usd("112.00")
    kinds = {d.line_id: d.kind for d in report.discrepancies}
    assert kinds == {
        "l3": "over_tolerance",
        "l4": "over_tolerance",
        "l5": "unknown_label",
        "l6": "malformed",
    }
    reasons = {d.line_id: d.reason for d in report.discrepancies}
    assert "+3.10" in reasons["l3"] and "residential 3.10" in reasons["l3"]
    assert "another currency" in reasons["l4"]
    assert "n/a" in reasons["l6"]
    [malformed] = [d for d in report.discrepancies if d.kind == "malformed"]
    assert malformed.order_ref == "WH/OUT/t6" and malformed.billed is None

    # Told in pages of two lines: every line once, the counts each page's.
    pages = in_pages(report, 2)
    assert [(p.page, p.last_page, p.lines) for p in pages] == [
        (1, False, 2),
        (2, False, 2),
        (3, True, 2),
    ]
    assert sum(p.matched for p in pages) == 2
    assert [m for p in pages for m in p.matched_lines] == list(report.matched_lines)
    assert [d for p in pages for d in p.discrepancies] == list(report.discrepancies)
    assert {p.reconciliation_id for p in pages} == {report.reconciliation_id}
    empty = msgspec.structs.replace(report, lines=0, matched=0, matched_lines=(), discrepancies=())
    [only] = in_pages(empty, 2)
    assert (only.page, only.last_page, only.lines, only.matched_total) == (1, True, 0, None)


async def test_a_run_left_running_past_its_deadline_is_reported_stuck_by_the_next(
    nc: NatsClient, nats_prefix: str
) -> None:
    js = nc.jetstream()
    tracking = await js.create_key_value(bucket=f"{nats_prefix}_tracking")
    watermarks = await js.create_key_value(bucket=f"{nats_prefix}_watermarks")
    book = FreightBook(tracking, watermarks)
    metrics = MetricsRegistry("carrier-router")
    reconciler = FreightReconciler(
        book=book,
        fleet=CarrierFleet(
            {},  # no carrier account: the run's own bookkeeping is what is tested
            enabled=(),
            breakers=CircuitBreakers(5, 30.0),
            purchase_limits=RateLimits(4.0, 4),
            retry=RetryPolicy(attempts=1, base_s=0.1, max_s=0.1),
        ),
        publish=_never_called,
        tolerance=FreightTolerance(),
        deadline_s=60.0,
        first_lookback=timedelta(days=1),
        metrics=metrics,
        clock=lambda: NOW,
    )
    # A replica crashed mid-run an hour ago: its record still says running.
    crashed = FreightRun(
        run_id="crashed",
        started_at=NOW - timedelta(hours=1),
        deadline=NOW - timedelta(minutes=59),
    )
    await book.save_run(crashed)
    assert crashed.stuck(NOW)

    finished = await reconciler.run_once()

    assert (finished.state, finished.failures, finished.invoices) == ("completed", (), 0)
    assert await book.last_run() == finished and not finished.stuck(NOW + timedelta(days=1))
    rendered = metrics.render()[0].decode()
    assert 'waybill_freight_runs_total{outcome="stuck"} 1.0' in rendered
    assert 'waybill_freight_runs_total{outcome="completed"} 1.0' in rendered
    await reconciler.run_once()  # a finished run is not stuck, however old
    assert 'waybill_freight_runs_total{outcome="stuck"} 1.0' in metrics.render()[0].decode()
    for bucket in ("tracking", "watermarks"):
        await js.delete_key_value(f"{nats_prefix}_{bucket}")


async def _never_called(report: FreightInvoiceReconciled) -> None:
    raise AssertionError(f"no invoice to announce, got {report.invoice_id}")
