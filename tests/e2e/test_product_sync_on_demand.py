"""A product sync an operator starts from the control tower, end to end: the gateway runs it
(no schedule), the warehouse takes the fit products, and the run shows on the tower with its
report, naming exactly the products that could not be synced."""

from __future__ import annotations

import csv
import io
from typing import Any

import aiohttp
import pytest
from bs4 import BeautifulSoup
from nats.aio.client import Client as NatsClient

from tests.e2e.mesh import running_mesh
from waybill_runtime.http import PROBLEM_CONTENT_TYPE
from waybill_runtime.testing.tokens import bearer
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.odoo.methods import call_kw

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SERVICES = ("odoo-gateway", "orchestrator", "wms-bridge", "auditor")
SYNCS = "/tower/product-syncs"


async def html(http: aiohttp.ClientSession, url: str) -> BeautifulSoup:
    async with http.get(url, headers={"Accept": "text/html"}) as response:
        assert response.status == 200, await response.text()
        return BeautifulSoup(await response.text(), "html.parser")


async def test_an_operator_syncs_products_from_the_tower_and_downloads_the_report(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with running_mesh(nc, nats_url, nats_prefix, services=SERVICES) as mesh:
        sandbox = mesh.odoo

        def odoo(model: str, method: str, *args: Any) -> Any:
            return call_kw(sandbox.registry, sandbox.admin, model, method, [*args], {})

        units = odoo("uom.uom", "search", [("name", "=", "Units")])[0]
        fit = {"type": "consu", "uom_id": units, "weight": 2.0, "volume": 0.01}
        for number in range(1, 6):
            odoo("product.product", "create", {**fit, "name": f"Crate {number}",
                                               "default_code": f"TWR-{number}"})  # fmt: skip
        # Nobody weighed it: refused by Waybill's checks. No internal reference: not sendable.
        odoo("product.product", "create", {**fit, "name": "Crate 6", "default_code": "TWR-6",
                                           "weight": 0.0})  # fmt: skip
        odoo("product.product", "create", {**fit, "name": 'Loose, "odd" screws'})
        tower = mesh.plan.service_url("auditor")
        assert mesh.plan.api_keys is not None
        operator = bearer(mesh.plan.api_keys, "operator", subject="dana")
        async with aiohttp.ClientSession(headers=bearer(mesh.plan.api_keys, "viewer")) as viewer:
            # A viewer reads the page but is offered no sync, and a forged post is refused.
            assert not (await html(viewer, f"{tower}{SYNCS}")).select("form[action*=sync]")
            forged = {"action_id": "a" * 32, "note": ""}
            async with viewer.post(f"{tower}/tower/actions/sync-products", data=forged) as refused:
                assert refused.status == 403
        async with aiohttp.ClientSession(headers=operator) as http:
            soup = await html(http, f"{tower}{SYNCS}")
            form = soup.select_one("form[action='/tower/actions/sync-products']")
            assert form is not None, "the operator is offered no sync"
            fields = {str(i["name"]): str(i.get("value", "")) for i in form.select("input")}
            fields["note"] = "new season"
            async with http.post(
                f"{tower}/tower/actions/sync-products", data=fields, allow_redirects=False
            ) as sent:
                assert sent.status == 303
                assert sent.headers["Location"] == f"{SYNCS}?done=sync-products"

            def finished(page: BeautifulSoup) -> bool:
                return bool(page.select("table.product-syncs tbody tr[data-batch]"))

            soup = await eventually(
                lambda: html(http, f"{tower}{SYNCS}"),
                until=finished,
                timeout_s=90,
                what="the run on the product syncs page",
            )
            [row] = soup.select("table.product-syncs tbody tr[data-batch]")
            cells = [c.get_text(" ", strip=True) for c in row.find_all(["th", "td"])]
            batch = str(row["data-batch"])
            # Pages, read, accepted, refused, not sendable.
            assert cells[3:8] == ["1", str(len(odoo("product.product", "search", []))),
                                  cells[5], "1", "1"]  # fmt: skip
            accepted = int(cells[5])
            async with http.get(f"{tower}{SYNCS}/{batch}/report.csv") as report:
                assert report.status == 200 and report.content_type == "text/csv"
                assert "attachment" in report.headers["Content-Disposition"]
                lines = list(csv.DictReader(io.StringIO(await report.text())))
            async with http.get(f"{tower}{SYNCS}/{batch}/report.json") as report:
                assert report.status == 200
                as_json = await report.json()
            async with http.get(f"{tower}{SYNCS}/no-such-run/report.csv") as missing:
                assert missing.status == 404 and missing.content_type == PROBLEM_CONTENT_TYPE
    assert [(line["problem"], line["sku"] or line["name"]) for line in lines] == [
        ("rejected", "TWR-6"),
        ("unmapped", 'Loose, "odd" screws'),
    ]
    assert "weight" in lines[0]["reason"]
    assert as_json["batch_id"] == batch and as_json["accepted"] == accepted
    assert [line["reason"] for line in as_json["lines"]] == [line["reason"] for line in lines]
    # Every fit product reached the warehouse's catalogue; the refused one did not.
    taken = {sku for sku in mesh.wms.catalogue.products if sku.startswith("TWR-")}
    assert taken == {f"TWR-{n}" for n in range(1, 6)} and accepted >= 5
