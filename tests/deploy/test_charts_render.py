"""Every chart renders, lints and validates, with its default values and the production example.

The charts are rendered in-process by Helm v4's own Go SDK (helm-python-sdk),
each service's chart alone and the umbrella, and every object is checked
against the Kubernetes 1.30 OpenAPI schemas (kubernetes-validate, strict: an
unknown field is an error) and against the hardening rules (tests/deploy/hardening.py).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.charts import (
    KUBE_VERSION,
    LIBRARY,
    NAMESPACE,
    Manifest,
    all_charts,
    manifests,
    production_values,
    render,
)
from tests.deploy.hardening import ServiceFacts, violations

CASES = [(chart, example) for chart in all_charts() for example in ("default", "production")]
IDS = [f"{chart}-{example}" for chart, example in CASES]

# Kinds of the operators the charts can use (KEDA, the Prometheus operator): not in the
# Kubernetes schemas, so checked against the fields the charts write.
_CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["scaleTargetRef", "triggers"],
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "name": {"type": "string"},
                        },
                    },
                    "minReplicaCount": {"type": "integer"},
                    "maxReplicaCount": {"type": "integer"},
                    "pollingInterval": {"type": "integer"},
                    "cooldownPeriod": {"type": "integer"},
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["type", "metadata"],
                            "additionalProperties": False,
                            "properties": {
                                "type": {"type": "string"},
                                "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                                "metadata": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            }
        },
    },
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": {"type": "object"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                "scrapeTimeout": {
                                    "type": "string",
                                    "pattern": "^[0-9]+(ms|s|m|h)$",
                                },
                            },
                        },
                    },
                },
            }
        },
    },
}


def _without_chart_label(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_chart_label(v) for k, v in value.items() if k != "helm.sh/chart"}
    if isinstance(value, list):
        return [_without_chart_label(v) for v in value]
    return value


@functools.cache
def _rendered(charts_dir: Path, chart: str, example: str) -> list[Manifest]:
    values = production_values(chart) if example == "production" else None
    return manifests(render(charts_dir / chart, values))


def test_helm_sdk_is_helm_v4() -> None:
    # Loading the binding loads libhelm_c.so; a missing library fails here, loudly.
    assert helm.helm_sdk_version().startswith("v4."), helm.helm_sdk_version()


@pytest.mark.parametrize("chart", [LIBRARY, *all_charts()])
@pytest.mark.parametrize("example", ["default", "production"])
def test_chart_lints_clean(charts_dir: Path, chart: str, example: str) -> None:
    values = production_values(chart) if example == "production" and chart != LIBRARY else None
    report = helm.lint(
        charts_dir / chart,
        values,
        strict=True,
        namespace=NAMESPACE,
        kube_version=f"v{KUBE_VERSION}",
        with_subcharts=True,
    )
    # Severity 1 is information ("icon is recommended"); 2 and 3 are warnings and errors.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize(("chart", "example"), CASES, ids=IDS)
def test_every_rendered_object_is_valid_kubernetes_1_30(
    charts_dir: Path, chart: str, example: str
) -> None:
    objects = _rendered(charts_dir, chart, example)
    assert objects
    for o in objects:
        crd = _CRD_SCHEMAS.get((o["apiVersion"], o["kind"]))
        if crd is not None:
            jsonschema.validate(o, crd)
            continue
        try:
            kubernetes_validate.validate(o, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.path)
            pytest.fail(f"{o['kind']}/{o['metadata']['name']} at {path}: {error.message}")


@pytest.mark.parametrize(("chart", "example"), CASES, ids=IDS)
def test_every_workload_keeps_the_hardening_rules(
    charts_dir: Path, chart: str, example: str, service_facts: dict[str, ServiceFacts]
) -> None:
    objects = _rendered(charts_dir, chart, example)
    assert violations(objects, service_facts) == []


@pytest.mark.parametrize("example", ["default", "production"])
def test_the_umbrella_renders_each_service_as_its_own_chart_does(
    charts_dir: Path, example: str
) -> None:
    def comparable(o: Manifest) -> tuple[str, str, str]:
        # The same objects but for the chart that made them (helm.sh/chart).
        return (o["kind"], o["metadata"]["name"], repr(_without_chart_label(o)))

    umbrella = sorted(comparable(o) for o in _rendered(charts_dir, "waybill", example))
    alone = sorted(
        comparable(o)
        for chart in all_charts()
        if chart != "waybill"
        for o in _rendered(charts_dir, chart, example)
    )
    assert [u[:2] for u in umbrella] == [a[:2] for a in alone]
    assert umbrella == alone
