"""Both carrier sandboxes' billing APIs: what is billed, in each carrier's shape, and seeds."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp

from waybill_sandboxes.carriers import CarrierConfig, EasyPostSandbox, ShippoSandbox
from waybill_sandboxes.carriers.base import CarrierSandbox, Purchase
from waybill_sandboxes.carriers.labels import LabelFormat
from waybill_sandboxes.server import serve

A_AUTH = {"Authorization": "Basic " + base64.b64encode(b"EZTK-test:").decode()}
B_AUTH = {"Authorization": "ShippoToken shippo_test_key"}


@asynccontextmanager
async def running(
    make: Callable[[CarrierConfig], CarrierSandbox], key: str
) -> AsyncIterator[tuple[Any, str]]:
    sandbox = make(CarrierConfig(api_key=key, webhook_secret="s", tracking_delays_s=[3600.0]))
    async with serve(sandbox.app()) as served:
        yield sandbox, served.url


def buy(sandbox: CarrierSandbox, reference: str, weight_kg: float = 1.0) -> Purchase:
    [cheapest, *_] = sandbox.quote(f"shp_{reference}", weight_kg)
    return sandbox.buy_label(cheapest, reference, LabelFormat.PDF)


async def post(http: aiohttp.ClientSession, url: str, body: Any, **kw: Any) -> tuple[int, Any]:
    async with http.post(url, json=body, **kw) as answer:
        return answer.status, await answer.json()


async def get(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.get(url, **kw) as answer:
        return answer.status, await answer.json()


def today() -> str:
    return datetime.now(UTC).date().isoformat()


async def test_carrier_a_bills_in_a_shipment_invoice_report_with_the_seeded_errors() -> None:
    async with (
        running(EasyPostSandbox, "EZTK-test") as (sandbox, url),
        aiohttp.ClientSession() as http,
    ):
        plain, over, gone = (buy(sandbox, ref) for ref in ("WB-1", "WB-2", "WB-3"))
        sandbox.void_label(gone)
        status, _ = await post(
            http, f"{url}/_sandbox/billing/lines/WB-2", {"kind": "overcharge", "amount": "4.00"}
        )
        assert status == 200
        status, _ = await post(
            http,
            f"{url}/_sandbox/billing/lines/{over.tracking_number}",
            {"kind": "surcharge", "name": "fuel", "amount": "0.40"},
        )
        assert status == 200
        window = {"start_date": today(), "end_date": today()}
        status, report = await post(
            http, f"{url}/v2/reports/shipment_invoice", window, headers=A_AUTH
        )
        assert status == 201
        assert report["object"] == "ShipmentInvoiceReport" and report["status"] == "available"
        assert report["id"].startswith("shpinvrep_")
        async with http.get(report["url"]) as answer:  # pre-signed: no API key
            assert answer.status == 200
            rows = list(csv.DictReader(io.StringIO(await answer.text())))
        by_shipment = {row["shipment_id"]: row for row in rows}
        assert set(by_shipment) == {plain.shipment_id, over.shipment_id}  # the void is not billed
        assert by_shipment[plain.shipment_id]["final_invoice_amount"] == plain.rate.amount
        wrong = by_shipment[over.shipment_id]
        assert Decimal(wrong["final_invoice_amount"]) == Decimal(over.rate.amount) + Decimal("4.40")
        assert wrong["surcharges"] == "fuel=0.40" and wrong["tracking_code"] == over.tracking_number
        assert len({row["carrier_invoice_id"] for row in rows}) == 1
        # Asked again: the same invoice, nothing billed twice.
        status, again = await post(
            http, f"{url}/v2/reports/shipment_invoice", window, headers=A_AUTH
        )
        assert status == 201 and len(sandbox.billing.invoices) == 1
        status, fetched = await get(
            http, f"{url}/v2/reports/shipment_invoice/{again['id']}", headers=A_AUTH
        )
        assert status == 200 and fetched["status"] == "available"
        # Before anything was billed: empty, no file.
        yesterday = (date.today() - timedelta(days=2)).isoformat()
        status, old = await post(
            http,
            f"{url}/v2/reports/shipment_invoice",
            {"start_date": yesterday, "end_date": yesterday},
            headers=A_AUTH,
        )
        assert (status, old["status"], old["url"]) == (201, "empty", None)


async def test_carrier_a_refuses_a_report_whose_range_is_backwards_or_missing() -> None:
    async with (
        running(EasyPostSandbox, "EZTK-test") as (_sandbox, url),
        aiohttp.ClientSession() as http,
    ):
        status, body = await post(
            http,
            f"{url}/v2/reports/shipment_invoice",
            {"start_date": "2026-12-06", "end_date": "2026-12-01"},
            headers=A_AUTH,
        )
        assert status == 422 and "end_date is before start_date" in body["error"]["message"]
        status, body = await post(http, f"{url}/v2/reports/shipment_invoice", {}, headers=A_AUTH)
        assert status == 422 and "start_date" in body["error"]["message"]
        status, _ = await post(http, f"{url}/v2/reports/shipment_invoice", {})
        assert status == 401


async def test_carrier_b_bills_in_invoices_and_items_a_page_at_a_time() -> None:
    async with (
        running(ShippoSandbox, "shippo_test_key") as (sandbox, url),
        aiohttp.ClientSession() as http,
    ):
        first = buy(sandbox, "WB-1")
        status, _ = await get(http, f"{url}/invoices", headers=B_AUTH)  # cuts invoice 1
        second, third = buy(sandbox, "WB-2"), buy(sandbox, "WB-3")
        await post(
            http,
            f"{url}/_sandbox/billing/lines/WB-3",
            {"kind": "surcharge", "name": "residential", "amount": "3.10"},
        )
        await post(
            http,
            f"{url}/_sandbox/billing/unknown",
            {"carrier_reference": "tx_nobody", "tracking_number": "9205", "amount": "7.00"},
        )
        status, page1 = await get(http, f"{url}/invoices?results=1", headers=B_AUTH)
        assert status == 200 and page1["count"] == 2 and page1["next"] and page1["previous"] is None
        async with http.get(page1["next"], headers=B_AUTH) as answer:
            page2 = await answer.json()
        assert page2["next"] is None
        [one], [two] = page1["results"], page2["results"]
        assert one["status"] == "POSTED" and one["total_invoiced"] == {
            "amount": first.rate.amount,
            "currency": "USD",
        }
        status, items = await get(
            http, f"{url}/invoice-items?invoiceObjectId={two['object_id']}", headers=B_AUTH
        )
        assert status == 200
        lines = {(i["transaction"], i["type"]): i["amount"] for i in items["results"]}
        assert lines == {
            (second.purchase_id, "LABEL_PAYMENT"): second.rate.amount,
            (third.purchase_id, "LABEL_PAYMENT"): third.rate.amount,
            (third.purchase_id, "SURCHARGE"): "3.10",
            ("tx_nobody", "LABEL_PAYMENT"): "7.00",
        }
        expected = Decimal(second.rate.amount) + Decimal(third.rate.amount) + Decimal("10.10")
        assert Decimal(two["total_invoiced"]["amount"]) == expected
        status, body = await get(http, f"{url}/invoices?results=500", headers=B_AUTH)
        assert status == 400 and "results" in body["detail"]


async def test_a_seed_that_is_not_one_is_refused_with_the_field_named() -> None:
    async with (
        running(ShippoSandbox, "shippo_test_key") as (_sandbox, url),
        aiohttp.ClientSession() as http,
    ):
        status, body = await post(http, f"{url}/_sandbox/billing/lines/WB-1", {"kind": "discount"})
        assert status == 400 and "kind" in body["error"]
        status, body = await post(
            http,
            f"{url}/_sandbox/billing/unknown",
            {"carrier_reference": "x", "tracking_number": "y", "amount": "lots"},
        )
        assert status == 400 and "amount" in body["error"]
