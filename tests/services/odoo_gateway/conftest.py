"""Fixtures of the odoo-gateway tests: an Odoo sandbox served per test, in both protocols."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.services.odoo_gateway.stage import OdooStage, odoo_stage
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.gateway import odoo_client_for
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_runtime.settings import load_settings


@pytest.fixture(params=[(17, "jsonrpc"), (19, "json2")], ids=["odoo17-jsonrpc", "odoo19-json2"])
async def stage(request: pytest.FixtureRequest) -> AsyncIterator[OdooStage]:
    """A served Odoo sandbox without orders, once as 17 over JSON-RPC, once as 19 over JSON-2."""
    version, protocol = request.param
    async with odoo_stage(version=version, protocol=protocol) as running:
        yield running


@pytest.fixture
async def stage17() -> AsyncIterator[OdooStage]:
    """A served Odoo 17 sandbox without orders, spoken to over JSON-RPC."""
    async with odoo_stage(version=17, protocol="jsonrpc") as running:
        yield running


@pytest.fixture(
    params=[(16, "jsonrpc"), (17, "jsonrpc"), (18, "jsonrpc"), (19, "json2")],
    ids=["odoo16", "odoo17", "odoo18", "odoo19-json2"],
)
async def any_odoo(request: pytest.FixtureRequest) -> AsyncIterator[OdooStage]:
    """A served Odoo sandbox with three products, once per version 16-19 (19 over JSON-2)."""
    version, protocol = request.param
    async with odoo_stage(version=version, protocol=protocol, products=3) as running:
        yield running


@pytest.fixture
async def odoo(any_odoo: OdooStage) -> AsyncIterator[OdooClient]:
    """A gateway's Odoo client of ``any_odoo``, for calling its functions directly."""
    settings = load_settings(
        OdooGatewaySettings, environ={}, service="odoo-gateway", **any_odoo.gateway_settings()
    )
    client = odoo_client_for(settings)
    try:
        yield client
    finally:
        await client.close()
