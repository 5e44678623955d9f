"""Every service fuzzed against its own OpenAPI document: no 5xx, no answer off its schema.

The whole mesh runs (every installed service, the partners' sandboxes) with
one order shipped, so the auditor's answers have content to check. Each
service is then called with schemathesis's requests for every operation of
its ``/openapi.json``: probes, the auditor's API (with an admin's token, also
for the shipped order), the partners' webhooks signed as the partner signs them and unsigned
(401: a documented 4xx), the Odoo webhook also with its real path token, so
requests reach the handlers' own input checks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from nats.aio.client import Client as NatsClient

from tests.e2e.mesh import Mesh, running_mesh
from tests.e2e.openapi_fuzz import FuzzReport, Signer, fuzz_service
from tests.e2e.test_order_to_ship import all_shipped, release_orders
from waybill_runtime.local.registry import installed_services
from waybill_runtime.testing.tokens import bearer
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.signing import (
    easypost_signature_headers,
    shippo_signature_headers,
    wms_signature_headers,
)

pytestmark = [pytest.mark.long, pytest.mark.timeout(480)]  # a minute of fuzzing: make long

EXAMPLES_PER_OPERATION = 100
"""Per operation: about 15 s for the whole mesh on a laptop; bounded by count, not time."""


async def _ready(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
        return response.status


async def _fuzz(mesh: Mesh, service: str, *, ref: str) -> FuzzReport:
    url = mesh.plan.service_url(service)
    # A dependency still coming up answers /readyz with 503; fuzz a settled service.
    await eventually(
        lambda: _ready(url), until=lambda status: status == 200, what=f"{service} ready"
    )
    # Routes behind a bearer token answer 401 without one: an admin's token (from the
    # mesh's local signing key) takes the requests past it to the handlers.
    assert mesh.plan.api_keys is not None
    return await asyncio.to_thread(
        fuzz_service,
        url,
        headers=bearer(mesh.plan.api_keys, "admin", subject="fuzzer"),
        path_values={"ref": ref, "token": mesh.plan.offered("odoo")["webhook_token"]},
        signers=_partner_signers(mesh),
        max_examples=EXAMPLES_PER_OPERATION,
    )


SIGNATURES: dict[str, Callable[[str, bytes], dict[str, str]]] = {
    "wms": wms_signature_headers,
    "carrier-a": easypost_signature_headers,
    "carrier-b": shippo_signature_headers,
}
"""How each partner that signs its webhooks signs them (with its webhook secret)."""


def _partner_signers(mesh: Mesh) -> dict[str, Signer]:
    """Each signed webhook path, and its signature with the secret of this mesh's partner."""

    def signer(partner: str) -> tuple[str, Signer]:
        secret = mesh.plan.offered(partner)["webhook_secret"]
        path = urlsplit(mesh.plan.webhook_url(partner) or "").path
        return path, lambda body: SIGNATURES[partner](secret, body)

    return dict(signer(partner) for partner in SIGNATURES)


async def test_no_service_answers_a_server_error_or_off_its_schema(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    services = tuple(installed_services())
    async with running_mesh(
        nc, nats_url, nats_prefix, services=services, tmp_state_dir=str(tmp_path)
    ) as mesh:
        [ref] = release_orders(mesh, 1)
        await all_shipped(mesh, [ref])
        reports = {service: await _fuzz(mesh, service, ref=ref) for service in services}
    for service, report in reports.items():
        # schemathesis leaves out the document it was loaded from (/openapi.json).
        assert {"GET /healthz", "GET /readyz", "GET /metrics"} <= set(report.operations), service
        assert all(status < 500 for (_op, status) in report.statuses), (service, report.statuses)
    # The known path values and the signatures took requests past the lookups and the
    # signature checks, to the handlers' own input checks.
    assert 200 in reports["auditor"].answered("GET /orders/{ref}/timeline")
    assert reports["auditor"].streams == ["GET /tower/live"]
    assert reports["odoo-gateway"].answered("POST /webhooks/odoo/{token}") >= {404, 422}
    assert reports["wms-bridge"].answered("POST /webhooks/wms") >= {401, 202}
    for carrier in ("carrier-a", "carrier-b"):
        assert reports["carrier-router"].answered(f"POST /webhooks/carriers/{carrier}") >= {
            401,
            400,
        }
