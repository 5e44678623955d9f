"""The umbrella chart ships deploy/observability: dashboards as ConfigMaps, the alerts as a
PrometheusRule, both off by default and each exactly the files in the repository."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import yaml

from tests.deploy.charts import KUBE_VERSION, REPO, UMBRELLA, manifests, render

OBSERVABILITY = REPO / "deploy" / "observability"
DASHBOARDS = sorted((OBSERVABILITY / "grafana").glob("*.json"))
RULES = OBSERVABILITY / "prometheus" / "waybill-alerts.yaml"


def _observability(charts_dir: Path, values: dict[str, object] | None) -> list[dict[str, object]]:
    rendered = render(charts_dir / UMBRELLA, values)
    return [
        m
        for path, text in rendered.items()
        if path.endswith("templates/observability.yaml")
        for m in manifests({path: text})
    ]


def test_dashboards_and_rules_are_off_by_default(charts_dir: Path) -> None:
    assert _observability(charts_dir, None) == []


def test_dashboards_are_config_maps_for_grafanas_sidecar(charts_dir: Path) -> None:
    assert len(DASHBOARDS) >= 2
    found = _observability(charts_dir, {"observability": {"dashboards": {"enabled": True}}})
    by_file = {}
    for manifest in found:
        assert manifest["kind"] == "ConfigMap"
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        metadata = manifest["metadata"]
        assert isinstance(metadata, dict) and metadata["labels"]["grafana_dashboard"] == "1"
        data = manifest["data"]
        assert isinstance(data, dict)
        by_file.update({name: json.loads(text) for name, text in data.items()})
    assert by_file == {p.name: json.loads(p.read_text()) for p in DASHBOARDS}


def test_the_alerts_are_a_prometheus_rule_with_the_repositorys_groups(charts_dir: Path) -> None:
    values: dict[str, object] = {
        "observability": {"prometheusRule": {"enabled": True, "labels": {"release": "kps"}}}
    }
    [rule] = _observability(charts_dir, values)
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    metadata = rule["metadata"]
    assert isinstance(metadata, dict) and metadata["labels"]["release"] == "kps"
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
