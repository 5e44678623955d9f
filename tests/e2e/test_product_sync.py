"""Product master sync end to end: a catalogue of 5,000 products in Odoo, 1% of them unfit,
reaches the warehouse with exactly the unfit ones refused and reported, none sent twice."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from tests.e2e.mesh import running_mesh
from tests.services.orchestrator.bus import events
from waybill_contracts.events import ProductSyncCompleted
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.odoo.methods import call_kw

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CATALOGUE = 5000
SERVICES = ("odoo-gateway", "orchestrator", "wms-bridge")


def unfit(number: int) -> tuple[dict[str, Any], str] | None:
    """One product in a hundred is unfit, each in one of the ways a catalogue goes wrong."""
    if number % 100:
        return None
    flaw = (number // 100) % 4
    if flaw == 0:
        return {"barcode": "4006381333932"}, "check digit"  # wrong GTIN check digit
    if flaw == 1:
        return {"weight": 0.0}, "no weight"  # nobody weighed it
    if flaw == 2:
        return {"default_code": False}, "no internal reference"  # no SKU at all
    return {"uom_id": "kg-per-pallet"}, "has no WMS code"  # a unit the warehouse has no code for


async def test_a_5000_product_catalogue_reaches_the_warehouse_with_exactly_the_unfit_refused(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    gateway_settings = {
        "product_sync_interval_s": 3600.0,
        "product_sync_page_size": 500,
        "odoo_poll_first_after_s": 0.0,
    }
    async with running_mesh(
        nc,
        nats_url,
        nats_prefix,
        services=SERVICES,
        service_settings={"odoo-gateway": gateway_settings},
        started_later=("odoo-gateway",),
    ) as mesh:
        sandbox = mesh.odoo

        def odoo(model: str, method: str, *args: Any) -> Any:
            return call_kw(sandbox.registry, sandbox.admin, model, method, [*args], {})

        units = odoo("uom.uom", "search", [("name", "=", "Units")])[0]
        odd_unit = odoo("uom.uom", "create", {"name": "Pallet of 40"})
        flawed: dict[str, str] = {}  # what the report must name -> why
        for number in range(1, CATALOGUE + 1):
            values: dict[str, Any] = {
                "name": f"Crate {number}",
                "default_code": f"CAT-{number:05d}",
                "barcode": "4006381333931",
                "weight": 1.5,
                "volume": 0.02,
                "uom_id": units,
                "type": "consu",
            }
            flaw = unfit(number)
            if flaw is not None:
                change, why = flaw
                if change.get("uom_id") == "kg-per-pallet":
                    change = {"uom_id": odd_unit}
                values.update(change)
                flawed[f"CAT-{number:05d}" if values["default_code"] else values["name"]] = why
            odoo("product.product", "create", values)
        assert mesh.start_later is not None
        await mesh.start_later("odoo-gateway")

        async def completed() -> list[ProductSyncCompleted]:
            return [
                d.message
                for d in await events(nc, mesh.subjects)
                if isinstance(d.message, ProductSyncCompleted)
            ]

        [done] = await eventually(completed, timeout_s=240, what="the sync run's completion")
        catalogue = mesh.wms.catalogue
        # Odoo's own demo products (if any) came along too: count the catalogue's.
        reported = {r.sku: r.reason for r in done.rejected}
        reported.update({u.name: u.reason for u in done.unmapped})
        ours = {key: why for key, why in reported.items() if key.startswith(("CAT-", "Crate "))}
        assert len(flawed) == CATALOGUE // 100
        assert set(ours) == set(flawed), "exactly the unfit products are refused"
        for key, why in flawed.items():
            assert why in ours[key], (key, ours[key])
        taken = {sku for sku in catalogue.products if sku.startswith("CAT-")}
        assert len(taken) == CATALOGUE - len(flawed)
        assert not taken & set(flawed)
        assert set(catalogue.received.values()) == {1}, "no product was sent twice"
        assert done.accepted == len(catalogue.products)
