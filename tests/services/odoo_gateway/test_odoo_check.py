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

import msgspec
import pytest

from tests.services.odoo_gateway.stage import TOKEN, OdooStage, odoo_stage
from waybill_runtime.settings import env_var_name
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.odoo import WebhookRule, default_rules


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


# --- the webhook automation rules (Odoo 17+) --------------------------------------------


PICKING_RULE = "Waybill: delivery ready"


async def check_with_rule_changed(
    version: int, protocol: str, model: str, values: dict[str, Any]
) -> tuple[int, list[str]]:
    """Exit code and FAIL lines of the check (with the webhook token) once the sandbox's
    picking rule (``base.automation``) or its action (``ir.actions.server``) took ``values``."""
    async with odoo_stage(version=version, protocol=protocol) as stage:
        rule, action = stage.sandbox.webhooks.find(PICKING_RULE)
        record = rule if model == "base.automation" else action
        stage.sandbox.registry.write(model, [record], values, 1)
        code, lines = await odoo_check(stage, odoo_webhook_token=TOKEN)
    assert_token_never_shown(lines)
    return code, failing(lines)


def webhook_lines(lines: list[str]) -> list[str]:
    """The lines of the webhooks item ("ok   webhooks: ...", "FAIL ...", "WARN ...")."""
    return [line for line in lines if line[5:].startswith("webhooks:")]


def assert_token_never_shown(lines: list[str]) -> None:
    assert not any(TOKEN in line for line in lines), lines


@pytest.mark.parametrize(("version", "protocol"), [(17, "jsonrpc"), (18, "jsonrpc"), (19, "json2")])
async def test_a_rule_sending_deliveries_to_this_gateway_passes(
    version: int, protocol: str
) -> None:
    async with odoo_stage(version=version, protocol=protocol) as stage:
        code, lines = await odoo_check(stage, odoo_webhook_token=TOKEN)
    assert code == 0, lines
    [line] = webhook_lines(lines)
    assert line.startswith("ok   webhooks: the rule 'Waybill: delivery ready' sends stock.picking")
    assert f"{stage.gateway_url}/webhooks/odoo/***" in line
    assert_token_never_shown(lines)


async def test_odoo_16_with_a_webhook_token_is_told_webhooks_need_17() -> None:
    async with odoo_stage(version=16, protocol="jsonrpc") as stage:
        code, lines = await odoo_check(stage, odoo_webhook_token=TOKEN)
    assert code == 0, lines  # the poll does the work on 16: nothing is broken
    [line] = webhook_lines(lines)
    assert line.startswith("WARN webhooks:") and "needs Odoo 17+" in line
    assert "unset the token" in line


@pytest.mark.parametrize(("version", "protocol"), [(17, "jsonrpc"), (19, "json2")])
async def test_no_rule_says_which_rule_to_create(version: int, protocol: str) -> None:
    async with odoo_stage(version=version, protocol=protocol) as stage:
        stage.sandbox.webhooks.replace_rules([])
        code, lines = await odoo_check(stage, odoo_webhook_token=TOKEN)
    assert code == 1
    [line] = failing(lines)
    assert line.startswith(
        "FAIL webhooks: no active automation rule sends stock.picking to this gateway: "
        "create one in Settings > Technical > Automation Rules"
    )
    assert "'Send Webhook Notification' to https://<this gateway>/webhooks/odoo/***" in line
    assert_token_never_shown(lines)


async def test_an_archived_rule_is_named_with_how_to_unarchive_it() -> None:
    code, [line] = await check_with_rule_changed(
        18, "jsonrpc", "base.automation", {"active": False}
    )
    assert code == 1
    assert line == (
        "FAIL webhooks: the rule 'Waybill: delivery ready' is archived: unarchive it in "
        "Settings > Technical > Automation Rules (filter Archived)"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://old-gateway.example/webhooks/odoo/old-secret-token-0001", "with another token"),
        ("https://bi.example/hooks/odoo?key=k3y", "to another URL, https://bi.example/hooks/***"),
    ],
)
async def test_a_rule_sending_elsewhere_is_named_with_the_url_masked(url: str, shown: str) -> None:
    code, [line] = await check_with_rule_changed(
        17, "jsonrpc", "ir.actions.server", {"webhook_url": url}
    )
    assert code == 1
    assert line.startswith("FAIL webhooks: the rule 'Waybill: delivery ready' sends stock.picking")
    assert shown in line
    assert "set its action's Webhook URL to https://<this gateway>/webhooks/odoo/***" in line
    assert "old-secret-token-0001" not in line and "k3y" not in line


async def test_a_rule_on_another_model_does_not_count() -> None:
    async with odoo_stage(version=17, protocol="jsonrpc") as stage:
        stage.sandbox.webhooks.replace_rules(
            [
                WebhookRule(
                    name="Waybill: moves", model="stock.move", trigger_fields=["state"],
                    url=stage.webhook_url,
                ),
                *[rule for rule in default_rules() if rule.model == "sale.order"],
            ]
        )  # fmt: skip
        code, lines = await odoo_check(stage, odoo_webhook_token=TOKEN)
    assert code == 1
    [line] = failing(lines)
    assert line.startswith(
        "FAIL webhooks: no active automation rule sends stock.picking to this gateway"
    )


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"trigger": "on_create"}, "its trigger is 'on_create', which does not run when"),
        ({"trigger_fields": ["carrier_tracking_ref"]}, "fires only when carrier_tracking_ref"),
        ({"domain": [["state", "=", "done"]]}, "leaves out ready deliveries (state 'assigned')"),
    ],
)
async def test_a_rule_that_never_fires_for_a_ready_delivery_says_why(
    change: dict[str, Any], said: str
) -> None:
    async with odoo_stage(version=19, protocol="json2") as stage:
        [picking, *others] = default_rules()
        stage.sandbox.webhooks.replace_rules([msgspec.structs.replace(picking, **change), *others])
        code, lines = await odoo_check(stage, odoo_webhook_token=TOKEN)
    assert code == 1
    [line] = failing(lines)
    assert line.startswith(
        "FAIL webhooks: the rule 'Waybill: delivery ready' sends to this gateway but "
    )
    assert said in line


async def test_a_user_that_may_not_read_the_rules_gets_a_warning_with_the_fix() -> None:
    async with odoo_stage(version=17, protocol="jsonrpc") as stage:
        ops = stage.sandbox.user("ops")
        code, lines = await odoo_check(
            stage, odoo_login="ops", odoo_password=ops.password, odoo_webhook_token=TOKEN
        )
    assert code == 0, lines  # a warning is not a problem: the rules may well be right
    assert failing(lines) == []
    [line] = webhook_lines(lines)
    assert line.startswith(
        "WARN webhooks: the integration user 'ops' may not read Odoo's automation rules"
    )
    assert "check in Settings > Technical > Automation Rules" in line


async def test_the_gateways_readiness_detail_names_a_rule_problem_without_the_token(
    nats_url: str, nats_prefix: str
) -> None:
    async with odoo_stage(version=17, protocol="jsonrpc") as stage:
        rule, _action = stage.sandbox.webhooks.find(PICKING_RULE)
        stage.sandbox.registry.write("base.automation", [rule], {"active": False}, 1)
        async with stage.gateway(nats_url, nats_prefix):

            async def odoo_check_of_readyz() -> dict[str, Any]:
                [check] = [c for c in (await stage.ready())["checks"] if c["name"] == "odoo"]
                return dict(check)

            check = await eventually(
                odoo_check_of_readyz,
                until=lambda c: "archived" in c["detail"],
                what="the archived rule in the odoo readiness detail",
            )
    # Webhooks missing is not fatal (the poll finds orders): ready, and saying what to do.
    assert check["ok"] is True
    assert "the rule 'Waybill: delivery ready' is archived: unarchive it" in check["detail"]
    assert TOKEN not in check["detail"]
