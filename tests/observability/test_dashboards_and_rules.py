"""Dashboards and alerting rules as code: they load, every alert has a unit test that
fires it, and every metric they name exists in a live scrape of the running services.

promtool is Debian's ``prometheus`` package (``.ci/run`` installs it): without it the
rule tests fail and say so, they never skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest
import yaml
from nats.aio.client import Client as NatsClient
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.mesh import ALL_SERVICES, running_mesh
from tests.e2e.test_order_to_ship import all_shipped, release_orders
from tests.observability.promql import metric_names

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
RULES = OBSERVABILITY / "prometheus" / "waybill-alerts.yaml"
RULE_TESTS = OBSERVABILITY / "prometheus" / "waybill-alerts.test.yaml"
DASHBOARDS = sorted((OBSERVABILITY / "grafana").glob("*.json"))
NATS_VALUES = ROOT / "deploy" / "nats" / "values.yaml"
# Series of the NATS chart's exporter (promExporter), not of a Waybill service.
NATS_EXPORTER_PREFIX = "nats_"
# Sample names a family exposes besides its own (prometheus_client's suffixes).
_SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum", "_info")


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "the rule tests need promtool: apt-get install prometheus (Debian's package)"
    return found


def _promtool(*args: str) -> str:
    done = subprocess.run(
        [promtool(), *args], capture_output=True, text=True, cwd=RULES.parent, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def expressions() -> dict[str, str]:
    """Every PromQL expression of the rules and dashboards, by where it is."""
    found = {f"rule {rule['alert']}": str(rule["expr"]) for rule in alerts()}
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                found[f"{path.name}: {panel['title']} {target['refId']}"] = target["expr"]
    return found


def test_the_rules_pass_promtool_check() -> None:
    assert "SUCCESS" in _promtool("check", "rules", RULES.name)


def test_the_rules_unit_tests_pass() -> None:
    _promtool("test", "rules", RULE_TESTS.name)


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    tested = yaml.safe_load(RULE_TESTS.read_text())
    fired = {
        case["alertname"]
        for test in tested["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    missing = {str(rule["alert"]) for rule in alerts()} - fired
    assert not missing, f"alerts without a unit test that fires them: {sorted(missing)}"


def test_dashboards_load_with_a_prometheus_query_in_every_panel() -> None:
    assert len(DASHBOARDS) >= 2
    uids = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        uids.add(dashboard["uid"])
        assert dashboard["panels"], path.name
        for panel in dashboard["panels"]:
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert metric_names(target["expr"]), f"{path.name}: {panel['title']} reads nothing"
    assert len(uids) == len(DASHBOARDS), "two dashboards share a uid"


def test_nats_series_come_from_the_exporter_the_nats_chart_enables() -> None:
    nats_metrics = {
        name
        for expression in expressions().values()
        for name in metric_names(expression)
        if name.startswith(NATS_EXPORTER_PREFIX)
    }
    assert nats_metrics, "the NATS storage alert reads no NATS series"
    assert yaml.safe_load(NATS_VALUES.read_text())["promExporter"]["enabled"] is True


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_every_metric_named_exists_in_a_live_scrape_of_the_services(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    scraped: set[str] = set()
    async with (
        running_mesh(
            nc,
            nats_url,
            nats_prefix,
            services=ALL_SERVICES,
            tmp_state_dir=str(tmp_path),
            # Freight reconciliation is off by default; on, its metrics are there.
            service_settings={"carrier-router": {"freight_reconcile_interval_s": 3600.0}},
        ) as mesh,
        aiohttp.ClientSession() as session,
    ):
        # One order through every service first: some metrics appear with their first use.
        await all_shipped(mesh, release_orders(mesh, 1, seed=8))
        for name in mesh.services:
            async with session.get(f"{mesh.plan.service_url(name)}/metrics") as answer:
                assert answer.status == 200, name
                text = await answer.text()
            for family in text_string_to_metric_families(text):
                scraped.add(family.name)
                scraped.update(family.name + suffix for suffix in _SUFFIXES)
                scraped.update(sample.name for sample in family.samples)
    missing = {
        f"{name} ({where})"
        for where, expression in expressions().items()
        for name in metric_names(expression)
        if not name.startswith(NATS_EXPORTER_PREFIX) and name not in scraped
    }
    assert not missing, f"named in a dashboard or rule, absent from every service: {missing}"
