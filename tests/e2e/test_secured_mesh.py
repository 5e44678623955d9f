"""The whole mesh with NATS identities on: each service as its own nkey user, least privilege.

Streams, buckets and durables are provisioned beforehand by the admin
identity (as `waybill provision` does); each service runs with
WAYBILL_PROVISION=never and the permissions generated from its declaration.
Orders still ship, and the server reports no permission violation at all:
the generated permissions are enough, not only restrictive.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.mesh import ALL_SERVICES, running_mesh, undeclared_senders
from tests.e2e.test_order_to_ship import all_shipped, release_orders, settled_shipped_emails
from waybill_contracts.queries import OrderStatusRequest, OrderStatusResponse
from waybill_runtime.queries import ask
from waybill_runtime.security.permissions import ADMIN, OPERATOR
from waybill_runtime.testing.secured import SecuredNats, connect_as, provision_all

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def violations_in(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if "Violation" in line]


async def test_orders_ship_with_every_service_on_its_own_identity_and_no_violation(
    secured_nats: SecuredNats, tmp_path: Path
) -> None:
    await provision_all(secured_nats)
    admin = await connect_as(secured_nats, ADMIN)
    operator = await connect_as(secured_nats, OPERATOR)
    try:
        async with running_mesh(
            admin,
            secured_nats.url,
            secured_nats.prefix,
            services=ALL_SERVICES,
            tmp_state_dir=str(tmp_path),
            service_settings={name: secured_nats.service_settings(name) for name in ALL_SERVICES},
        ) as mesh:
            refs = release_orders(mesh, 8)
            await all_shipped(mesh, refs, timeout_s=180)
            emails = await settled_shipped_emails(mesh, refs, timeout_s=120)
            # The operator identity asks queries (what the demo and people's tools do).
            status = await ask(
                operator,
                mesh.subjects.query_subject("orchestrator", "order_status"),
                OrderStatusRequest(order_ref=refs[0]),
                OrderStatusResponse,
                timeout=5.0,
            )
            assert status.order_ref == refs[0]
            assert await undeclared_senders(admin, mesh.subjects) == []
    finally:
        await operator.close()
        await admin.close()
    assert sorted(emails) == sorted(refs)
    assert violations_in(secured_nats.server.log_path) == []
