"""A product master sync killed mid-batch: every instance of the three services that carry it
(odoo-gateway, orchestrator, wms-bridge) killed with SIGKILL while the warehouse is taking the
catalogue, started again by the supervisor, and the run completes with exactly the unfit
products refused and no product written twice in the warehouse (counted by the WMS sandbox).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.bench.burst import get_json
from tests.bench.mesh_stack import admin_seed_file
from tests.chaos.harness import back_up, chaos_stack, kill_replica, supervising
from waybill_contracts import SubjectMap
from waybill_contracts.events import ProductSyncCompleted
from waybill_contracts.operations import StartProductSync
from waybill_runtime.bus.client import connect_client
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.local.stack import LocalStack
from waybill_runtime.security.permissions import OPERATOR
from waybill_runtime.testing.waiting import eventually

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(900)]

CATALOGUE = 3000
UNFIT_EVERY = 100  # 1%: nobody weighed it
PER_CALL = 20
KILLED = ("odoo-gateway", "orchestrator", "wms-bridge")
SETTINGS = {
    # Small pages and calls: the batch is many steps long, so the kill lands inside it.
    "WAYBILL_PRODUCT_SYNC_PAGE_SIZE": "100",
    "WAYBILL_WMS_PRODUCTS_PER_CALL": str(PER_CALL),
}


async def _odoo(http: aiohttp.ClientSession, url: str, password: str, *call: Any) -> Any:
    body = {
        "jsonrpc": "2.0",
        "method": "call",
        "params": {"service": "object", "method": "execute_kw",
                   "args": ["waybill", 2, password, *call]},
        "id": 1,
    }  # fmt: skip
    async with http.post(f"{url}/jsonrpc", json=body) as response:
        answer = await response.json()
    assert "error" not in answer, answer["error"]
    return answer["result"]


async def _catalogue(url: str, password: str) -> set[str]:
    """Create the catalogue in Odoo; the SKUs of the unfit products."""
    unfit: set[str] = set()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        [units] = await _odoo(http, url, password, "uom.uom", "search", [[("name", "=", "Units")]])
        for start in range(1, CATALOGUE + 1, 500):
            batch = []
            for number in range(start, min(start + 500, CATALOGUE + 1)):
                sku = f"KIL-{number:05d}"
                weight = 0.0 if number % UNFIT_EVERY == 0 else 1.25
                if not weight:
                    unfit.add(sku)
                batch.append({"name": f"Tote {number}", "default_code": sku, "type": "consu",
                              "uom_id": units, "weight": weight, "volume": 0.01})  # fmt: skip
            await _odoo(http, url, password, "product.product", "create", [batch])
    return unfit


def _upserts(wms_url: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(f"{wms_url}/_sandbox/products/upserts")
    return found


async def _sync_killed_mid_batch(stack: LocalStack) -> tuple[ProductSyncCompleted, set[str]]:
    assert stack.plan is not None
    odoo = stack.plan.offered("odoo")
    wms_url = stack.plan.offered("wms")["url"]
    unfit = await _catalogue(odoo["url"], odoo["password"])
    subjects = SubjectMap(stack.subject_prefix)
    nc = await connect_client(stack.nats_url, nkeys_seed=admin_seed_file(stack), name="chaos")
    try:
        # As `waybill sync products` sends it: an operator's action.
        await Publisher(nc, subjects, service=OPERATOR).publish(
            StartProductSync(action_id="chaos-products-1", operator="chaos")
        )

        def received(found: dict[str, Any]) -> int:
            return sum(n for sku, n in found["received"].items() if sku.startswith("KIL-"))

        # The warehouse has taken part of the catalogue: kill everything carrying the run.
        at_kill = await eventually(
            lambda: asyncio.to_thread(_upserts, wms_url),
            until=lambda found: received(found) >= CATALOGUE // 5,
            timeout_s=300,
            interval_s=0.05,
            what="the warehouse taking a fifth of the catalogue",
        )
        killed = [
            (service, replica, kill_replica(stack, service, replica))
            for service in KILLED
            for replica in range(len([n for n in stack.children if n.startswith(service)]))
        ]
        print(f"killed {len(killed)} instances with {received(at_kill)} products received")
        assert received(at_kill) < CATALOGUE, "the run was over before the kill"
        for service, replica, pid in killed:
            await back_up(stack, service, replica, pid)
        js = nc.jetstream()
        subject = subjects.subject_for(ProductSyncCompleted)

        async def completed() -> ProductSyncCompleted | None:
            try:
                stored = await js.get_last_msg(subjects.events_stream.name, subject)
            except Exception:  # not stored yet
                return None
            return msgspec.json.decode(stored.data or b"", type=ProductSyncCompleted)

        done = await eventually(
            completed, until=lambda d: d is not None, timeout_s=400, what="the run completed"
        )
        assert done is not None
        return done, unfit
    finally:
        await nc.close()


def test_a_product_sync_killed_mid_batch_completes_with_no_duplicate_upserts() -> None:
    with chaos_stack(settings=SETTINGS) as stack, supervising(stack):
        done, unfit = asyncio.run(_sync_killed_mid_batch(stack))
        assert stack.plan is not None
        upserts = _upserts(stack.plan.offered("wms")["url"])
    writes = {sku: n for sku, n in upserts["writes"].items() if sku.startswith("KIL-")}
    # Every fit product is in the warehouse, written once; no unfit one reached it.
    assert set(writes) == {f"KIL-{n:05d}" for n in range(1, CATALOGUE + 1)} - unfit
    assert set(writes.values()) == {1}, {sku: n for sku, n in writes.items() if n > 1}
    # Sent twice only what was in a call when its wms-bridge died (its result never recorded,
    # so the page's redelivery sends that call again): at most one call per killed instance.
    sent = Counter(n for sku, n in upserts["received"].items() if sku.startswith("KIL-"))
    print(f"products by times sent: {dict(sent)}")
    assert set(sent) <= {1, 2} and sent[2] <= PER_CALL * 2, dict(sent)
    assert {r.sku for r in done.rejected} == unfit and len(unfit) == CATALOGUE // UNFIT_EVERY
    assert done.accepted >= CATALOGUE - len(unfit)
