"""/healthz, /readyz and /metrics answer anyone: they tell nothing of where Odoo is, its
database, the gateway's login or password, or its webhook token, ready or not."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.services.odoo_gateway.stage import TOKEN, OdooStage, odoo_stage
from waybill_runtime.testing.waiting import eventually

DB = "acme-prod-ledger"
LOGIN, PASSWORD = "integration-bot", "pw-Zr8qLx2m"
PROBES = ("/healthz", "/readyz", "/metrics")


@pytest.fixture
async def acme() -> AsyncIterator[OdooStage]:
    async with odoo_stage(version=17, protocol="jsonrpc", db=DB) as stage:
        stage.sandbox.add_user(LOGIN, PASSWORD)
        yield stage


async def probes(stage: OdooStage) -> str:
    answers = []
    async with aiohttp.ClientSession() as http:
        for path in PROBES:
            async with http.get(f"{stage.gateway_url}{path}") as answer:
                answers.append(await answer.text())
    return "\n".join(answers)


def secrets_of(stage: OdooStage) -> list[str]:
    where = urlsplit(stage.url)
    return [stage.url, f"{where.hostname}:{where.port}", DB, LOGIN, PASSWORD, TOKEN]


@pytest.mark.parametrize(("password", "state"), [(PASSWORD, "ready"), ("wrong-pw", "not ready")])
async def test_the_open_probes_reveal_nothing_secret_ready_or_not(
    acme: OdooStage,
    nats_url: str,
    nats_prefix: str,
    password: str,
    state: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings = {"odoo_db": DB, "odoo_login": LOGIN, "odoo_password": password}
    async with acme.gateway(nats_url, nats_prefix, **settings):
        readyz = await eventually(
            acme.ready,
            until=lambda r: r["status"] == state and "yet" not in str(r["checks"]),
            what=f"the gateway {state}",
        )
        assert await acme.post_webhook("res.partner", 1) == 200  # counted in the metrics
        text = await probes(acme)
    assert readyz["status"] == state
    leaked = [secret for secret in secrets_of(acme) if secret in text]
    assert leaked == [] and password not in text
    # Where and as whom stays available to the operator, in the log.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert acme.url in logged and LOGIN in logged
