"""`waybill odoo check` (the Odoo doctor) against sandboxes set up wrong in each way:
one line per item naming the problem and the fix; exit 0 when all is well.

The command runs as a user runs it: a `waybill` process (its `odoo` command comes
from the gateway's `waybill.commands` entry point) with the settings in its
environment.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest

from tests.services.odoo_gateway.stage import OdooStage, odoo_stage
from waybill_runtime.settings import env_var_name


async def odoo_check(stage: OdooStage, **overrides: Any) -> tuple[int, list[str]]:
    """Run `waybill odoo check` with a gateway's settings for ``stage``; exit code and lines."""
    settings = {
        "odoo_url": stage.url,
        "odoo_protocol": stage.protocol,
        "odoo_login": "admin",
        "odoo_password": stage.sandbox.admin.password,
        "odoo_api_key": stage.sandbox.admin.api_key if stage.protocol == "json2" else None,
        "local_stack": "true",
        **overrides,
    }
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_")}
    environment.update(
        {env_var_name(name): str(value) for name, value in settings.items() if value is not None}
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "waybill_runtime",
        "odoo",
        "check",
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    lines = out.decode().splitlines()
    assert not err.decode().strip() or process.returncode != 0, err.decode()
    return process.returncode, lines


def failing(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAIL")]


@pytest.mark.parametrize(("version", "protocol"), [(16, "jsonrpc"), (17, "jsonrpc"), (19, "json2")])
async def test_a_well_set_up_odoo_passes_with_exit_0(version: int, protocol: str) -> None:
    async with odoo_stage(
        version=version, protocol=protocol, auto_print_delivery_slip=True
    ) as stage:
        code, lines = await odoo_check(stage)
    assert code == 0, lines
    assert failing(lines) == []
    assert any(
        line.startswith(f"ok   protocol: Odoo {version}.0 over {protocol}") for line in lines
    )
    assert any(line.startswith("ok   access:") for line in lines)
    if version >= 17:
        assert any(line.startswith("ok   auto-print:") for line in lines)


async def test_wrong_password_names_the_settings_to_check() -> None:
    async with odoo_stage(version=17, protocol="jsonrpc") as stage:
        code, lines = await odoo_check(stage, odoo_password="not-the-password")
    assert code == 2
    [line] = lines
    assert line.startswith("FAIL odoo:") and "check WAYBILL_ODOO_LOGIN/PASSWORD" in line


@pytest.mark.parametrize(("version", "module"), [(17, "delivery"), (18, "stock_delivery")])
async def test_missing_delivery_module_names_the_module_to_install(
    version: int, module: str
) -> None:
    async with odoo_stage(version=version, protocol="jsonrpc", delivery_module=False) as stage:
        code, lines = await odoo_check(stage)
    assert code == 1
    [line] = failing(lines)
    assert line.startswith("FAIL modules:") and f"install the {module!r} module" in line


async def test_a_read_only_integration_user_is_told_which_groups_it_needs() -> None:
    async with odoo_stage(version=18, protocol="jsonrpc") as stage:
        reader = stage.sandbox.user("reader")
        code, lines = await odoo_check(stage, odoo_login="reader", odoo_password=reader.password)
    assert code == 1
    [line] = failing(lines)
    assert line.startswith("FAIL access:") and "may not write stock.picking" in line
    assert "Inventory / User" in line


async def test_an_api_key_about_to_expire_says_when_and_how_to_renew() -> None:
    async with odoo_stage(version=18, protocol="jsonrpc", api_key_days=3.5) as stage:
        code, lines = await odoo_check(stage, odoo_api_key=stage.sandbox.admin.api_key)
    assert code == 1
    [line] = failing(lines)
    assert line.startswith("FAIL api key: API key expires in 3 days")
    assert "set WAYBILL_ODOO_API_KEY" in line


async def test_jsonrpc_on_19_is_told_to_move_to_json2() -> None:
    async with odoo_stage(version=19, protocol="jsonrpc") as stage:
        code, lines = await odoo_check(stage)
    assert code == 1
    [line] = failing(lines)
    assert line.startswith("FAIL protocol:") and "WAYBILL_ODOO_PROTOCOL=auto" in line


async def test_webhooks_configured_without_automation_rules_module() -> None:
    async with odoo_stage(version=17, protocol="jsonrpc") as stage:
        registry = stage.sandbox.registry
        modules = registry.search("ir.module.module", [("name", "=", "base_automation")])
        registry.write("ir.module.module", modules, {"state": "uninstalled"}, 1)
        code, lines = await odoo_check(stage, odoo_webhook_token="t" * 20)
    assert code == 1
    [line] = failing(lines)
    assert line.startswith("FAIL webhooks:") and "install Automation Rules" in line
