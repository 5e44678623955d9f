"""The auditor's trail (customers' names and addresses among it) answers only viewers;
its probes stay open and tell nothing secret."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from waybill_auditor.app import ROUTES, build_service
from waybill_runtime.http import PROBLEM_CONTENT_TYPE
from waybill_runtime.local.ports import free_port
from waybill_runtime.settings import SettingsError
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.tokens import api_keys, bearer, trusting

# What a viewer gets from an empty trail: an unknown order is a 404 past the door.
READS = {"/orders/WH%2FOUT%2F00042/timeline": 404, "/orders": 200, "/dead-letters": 200}


def test_every_route_of_the_auditor_needs_a_viewer() -> None:
    assert {(r.method, r.path): r.role for r in ROUTES} == {
        ("GET", "/orders/{ref:.+}/timeline"): "viewer",
        ("GET", "/orders"): "viewer",
        ("GET", "/dead-letters"): "viewer",
    }


async def test_the_trail_answers_viewers_only(
    nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    keys = api_keys(tmp_path)
    port = free_port()
    async with (
        running_service(
            build_service(),
            nats_url=nats_url,
            subject_prefix=nats_prefix,
            http_port=port,
            audit_db=str(tmp_path / "audit.sqlite"),
            **trusting(keys),
        ),
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http,
    ):
        for path, answer in READS.items():
            async with http.get(path) as anonymous:
                assert anonymous.status == 401, path
                assert anonymous.content_type == PROBLEM_CONTENT_TYPE
            for role in ("viewer", "operator", "admin"):
                async with http.get(path, headers=bearer(keys, role)) as allowed:
                    assert allowed.status == answer, (path, role)
        for probe in ("/healthz", "/readyz", "/metrics"):
            async with http.get(probe) as response:
                assert response.status == 200, probe


async def test_the_auditor_without_keys_does_not_start(
    nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match="auditor serves protected routes"):
        async with running_service(
            build_service(),
            nats_url=nats_url,
            subject_prefix=nats_prefix,
            audit_db=str(tmp_path / "audit.sqlite"),
        ):
            pass
