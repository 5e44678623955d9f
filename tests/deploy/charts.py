"""The Helm charts under helm/, vendored and rendered in-process with Helm's Go SDK.

helm-python-sdk binds Helm v4's Go SDK (libhelm_c.so, shipped in its wheel) with
ctypes: no helm binary, no cluster, no network. A chart's `file://` dependency on
the library chart is resolved the way `helm dependency update` does it, offline,
into a copy of the charts (the repository keeps no packaged dependency).

`python -m tests.deploy.charts [FOLDER]` vendors the dependencies in place
(`make charts`), for a Helm without the project's tools.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from waybill_runtime.testing.nats_cluster import merged

REPO = Path(__file__).resolve().parents[2]
HELM_DIR = REPO / "helm"
LIBRARY = "waybill-lib"
UMBRELLA = "waybill"
PRODUCTION_VALUES = HELM_DIR / "examples" / "production.yaml"
KUBE_VERSION = "1.30.0"
RELEASE = "wb"
NAMESPACE = "waybill"

Manifest = dict[str, Any]


def service_charts(helm_dir: Path = HELM_DIR) -> list[str]:
    """The per-service charts: every chart folder but the library and the umbrella."""
    return sorted(
        p.parent.name
        for p in helm_dir.glob("*/Chart.yaml")
        if p.parent.name not in (LIBRARY, UMBRELLA)
    )


def all_charts(helm_dir: Path = HELM_DIR) -> list[str]:
    return [*service_charts(helm_dir), UMBRELLA]


def vendor_dependencies(helm_dir: Path) -> None:
    """Put the library chart into charts/ of every chart that depends on it (offline)."""
    for name in all_charts(helm_dir):
        chart = helm_dir / name
        shutil.rmtree(chart / "charts", ignore_errors=True)
        helm.dependency_update(chart, skip_refresh=True)


def vendored_copy(target: Path) -> Path:
    """A copy of helm/ with every dependency vendored; returns its folder."""
    copy = target / "helm"
    shutil.copytree(HELM_DIR, copy, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    vendor_dependencies(copy)
    return copy


def render(chart_dir: Path, values: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The chart's rendered templates (path -> text), as `helm template` renders them.

    The SDK's render checks the values against values.schema.json first, as
    `helm install` does: values the schema refuses raise HelmValuesError.
    """
    with helm.Chart.load(chart_dir) as chart:
        return chart.render(
            dict(values) if values is not None else None,
            name=RELEASE,
            namespace=NAMESPACE,
            is_install=True,
        )


def manifests(rendered: Mapping[str, str]) -> list[Manifest]:
    """Every Kubernetes object of a rendering (NOTES.txt and empty documents left out)."""
    objects: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                objects.append(document)
    return objects


def load_values(path: Path) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(values, dict), f"{path} is not a map of values"
    return values


def production_values(chart: str) -> dict[str, Any]:
    """helm/examples/production.yaml as one chart takes it.

    The example is written for the umbrella (`default:` and `components:`); a
    service's own release takes the same keys at the top level, so its values
    are `default:` with its component's entry merged over it.
    """
    values = load_values(PRODUCTION_VALUES)
    if chart == UMBRELLA:
        return values
    component = dict(values.get("components", {}).get(chart, {}))
    component.pop("enabled", None)
    return merged(values.get("default", {}), component)


def objects_of(objects: list[Manifest], kind: str) -> Iterator[Manifest]:
    return (o for o in objects if o.get("kind") == kind)


def pod_containers(o: Manifest) -> list[dict[str, Any]]:
    """The containers of a Pod or of a workload's pod template."""
    spec = o["spec"] if o["kind"] == "Pod" else o["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = spec["containers"]
    return containers


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else HELM_DIR
    vendor_dependencies(folder)
    print(f"vendored {LIBRARY} into {', '.join(all_charts(folder))}")
