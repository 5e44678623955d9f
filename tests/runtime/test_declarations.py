"""Service declarations: what `waybill services` prints, and the local plan made from them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from nats.aio.client import Client as NatsClient

from waybill_contracts import SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.events import WarehouseOrderAccepted
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.declaration import Bucket, Partner, Route
from waybill_runtime.local.plan import LocalPlan
from waybill_runtime.local.registry import installed_sandboxes, load_services
from waybill_runtime.service import Runtime, Service
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.tokens import api_keys, trusting


def waybill(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waybill_runtime", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_waybill_services_json_lists_every_service_with_what_it_does() -> None:
    result = waybill("services", "--json")
    assert result.returncode == 0, result.stderr
    by_name = {d["name"]: d for d in json.loads(result.stdout)}
    # The six of this repository (a scaffolded service may come on top).
    assert set(by_name) >= {
        "odoo-gateway",
        "orchestrator",
        "wms-bridge",
        "carrier-router",
        "notifier",
        "auditor",
    }
    bridge = by_name["wms-bridge"]
    assert {c["type"] for c in bridge["consumes"]} == {
        ReleaseToWarehouse.ce_type(),
        "io.waybill.cmd.warehouse.cancel_order.v1",
        "io.waybill.cmd.warehouse.sync_products.v1",
        "io.waybill.cmd.warehouse.snapshot_inventory.v1",
        "io.waybill.cmd.warehouse.expect_return.v1",
        "io.waybill.cmd.warehouse.cancel_return.v1",
    }
    assert WarehouseOrderAccepted.ce_type() in {p["type"] for p in bridge["publishes"]}
    assert [b["purpose"] for b in bridge["buckets"]] == ["idempotency", "watermarks"]
    assert bridge["routes"] == [
        {
            "method": "POST",
            "path": "/webhooks/wms",
            "audience": "partner",
            "summary": "signed warehouse lifecycle webhooks",
            "role": None,
        }
    ]
    # The routes people call name the role a caller's token must grant; public ones (a
    # sign-in page, a stylesheet) none.
    audited = by_name["auditor"]["routes"]
    assert {r["path"]: r["role"] for r in audited if not r["path"].startswith("/tower")} == {
        "/orders/{ref:.+}/timeline": "viewer",
        "/orders": "viewer",
        "/dead-letters": "viewer",
    }
    assert all((r["role"] is None) == (r["audience"] == "public") for r in audited)
    assert "WAYBILL_WMS_API_KEY" in bridge["secrets"]
    # A secret's default is never printed, even a sandbox's.
    printed = {s["env_var"]: s for s in bridge["settings"]}
    assert printed["WAYBILL_WMS_API_KEY"]["secret"] is True
    assert printed["WAYBILL_WMS_API_KEY"]["default"] is None
    assert by_name["auditor"]["consumes_dead_letters"] is True
    assert by_name["odoo-gateway"]["queries"] == ["picking_status"]


def test_waybill_services_table_and_an_unknown_name() -> None:
    table = waybill("services", "notifier")
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("notifier ")
    assert "partners:  smtp, webhook-receiver" in table.stdout
    unknown = waybill("services", "nope")
    assert unknown.returncode != 0
    assert "unknown service 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_the_local_plan_points_each_service_at_its_partners_sandbox() -> None:
    plan = LocalPlan.make(load_services(), installed_sandboxes())
    bridge = plan.service_environment("wms-bridge")
    wms = plan.offered("wms")
    assert bridge["WAYBILL_WMS_URL"] == wms["url"]
    assert bridge["WAYBILL_WMS_API_KEY"] == wms["api_key"]
    assert bridge["WAYBILL_HTTP_PORT"] == str(plan.service_port("wms-bridge"))
    # The warehouse posts its webhooks to the path the bridge declares.
    assert plan.webhook_url("wms") == f"{plan.service_url('wms-bridge')}/webhooks/wms"
    token = plan.offered("odoo")["webhook_token"]
    assert plan.webhook_url("odoo") == f"{plan.service_url('odoo-gateway')}/webhooks/odoo/{token}"
    subscriptions = json.loads(
        plan.service_environment("notifier")["WAYBILL_WEBHOOK_SUBSCRIPTIONS"]
    )
    assert subscriptions[0]["secret"] == plan.offered("webhook-receiver")["secret"]
    # Fresh secrets per plan: nothing local is mistaken for a real key.
    again = LocalPlan.make(load_services(), installed_sandboxes())
    assert again.offered("wms")["api_key"] != wms["api_key"]
    # Every sandbox process is told its port and where its webhooks go.
    argv = {" ".join(child.argv) for child in plan.sandbox_children()}
    wms_webhooks = plan.webhook_url("wms")
    assert wms_webhooks is not None
    assert any(wms_webhooks in line for line in argv)


def test_replicas_of_a_service_differ_only_in_their_http_port() -> None:
    plan = LocalPlan.make(load_services(), installed_sandboxes(), replicas=3)
    urls = plan.replica_urls("wms-bridge")
    assert len(urls) == 3 and urls[0] == plan.service_url("wms-bridge")
    environments = [plan.replica_environment("wms-bridge", n) for n in range(3)]
    ports = [env["WAYBILL_HTTP_PORT"] for env in environments]
    assert len(set(ports)) == 3 and [url.rsplit(":", 1)[1] for url in urls] == ports
    assert environments[0] == plan.service_environment("wms-bridge")
    for env in environments[1:]:
        assert {k: v for k, v in env.items() if k != "WAYBILL_HTTP_PORT"} == {
            k: v for k, v in environments[0].items() if k != "WAYBILL_HTTP_PORT"
        }
    # The warehouse's webhooks go to the first instance.
    assert plan.webhook_url("wms") == f"{urls[0]}/webhooks/wms"
    single = LocalPlan.make(load_services(), installed_sandboxes())
    assert single.replica_urls("wms-bridge") == [single.service_url("wms-bridge")]


def test_a_partner_setting_naming_a_value_the_partner_lacks_is_named() -> None:
    partner = Partner("wms", settings={"wms_url": "$url", "wms_region": "$region"})
    with pytest.raises(LookupError, match="partner wms offers no value 'region'"):
        partner.setting_values({"url": "http://wms"})


def _service_with_routes(declared: list[Route]) -> Service[Any]:
    service = Service("bridge", buckets=[Bucket("watermarks", ttl_s=60)], routes=declared)

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        pass

    @service.routes
    def routes(runtime: Runtime[Any]) -> list[web.RouteDef]:
        async def hello(request: web.Request) -> web.Response:
            return web.Response(text="hi")

        return [web.get("/hello", hello)]

    return service


async def test_a_service_serving_a_route_it_does_not_declare_refuses_to_start(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="serves undeclared GET /hello"):
        async with running_service(
            _service_with_routes([]), nats_url=nats_url, subject_prefix=nats_prefix
        ):
            pass
    declared = [
        Route("GET", "/hello", "operator", role="viewer"),
        Route("GET", "/bye", "operator", role="viewer"),
    ]
    keys = api_keys(tmp_path)
    with pytest.raises(ValueError, match="declares but does not serve GET /bye"):
        async with running_service(
            _service_with_routes(declared),
            nats_url=nats_url,
            subject_prefix=nats_prefix,
            **trusting(keys),
        ):
            pass
    async with running_service(
        _service_with_routes(declared[:1]),
        nats_url=nats_url,
        subject_prefix=nats_prefix,
        **trusting(keys),
    ):
        bucket = SubjectMap(nats_prefix).kv_bucket("watermarks")
        info = await nc.jetstream().stream_info(f"KV_{bucket}")
        assert info.config.max_age == 60  # the declared TTL


def test_the_local_plan_hands_secrets_over_in_the_environment_never_on_a_command_line() -> None:
    plan = LocalPlan.make(load_services(), installed_sandboxes())
    secrets = [value for per_sandbox in plan.secrets.values() for value in per_sandbox.values()]
    odoo_hook = plan.webhook_url("odoo")
    assert odoo_hook is not None and len(secrets) >= 8
    children = plan.sandbox_children()
    command_lines = " ".join(" ".join(child.argv) for child in children)
    assert [s for s in [*secrets, odoo_hook] if s in command_lines] == []
    environments = " ".join(" ".join(child.env.values()) for child in children)
    assert [s for s in [*secrets, odoo_hook] if s not in environments] == []
    assert all(name.startswith("WAYBILL_SANDBOX_") for child in children for name in child.env)
    # Services are told they run in a local stack, where the sandboxes' keys are allowed.
    for name in plan.services:
        assert plan.service_environment(name)["WAYBILL_LOCAL_STACK"] == "true"
        assert plan.service_environment(name)["WAYBILL_HTTP_HOST"] == "127.0.0.1"
