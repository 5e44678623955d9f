"""The charts' wiring, proved without a cluster: the umbrella rendered with the production
example's values, every rendered pod run as a local process with exactly its rendered command,
environment and mounted Secret/ConfigMap files, against a three-node NATS cluster made from
deploy/nats's values, and a batch of orders shipped end to end through them.

What an installer does, in order: creates the Secrets and ConfigMaps the example names (NATS
seeds, the NATS CA, the services' secrets, the API's keys), runs the pre-install hook Jobs
(`waybill provision`, as the admin), starts the workloads and waits on their rendered readiness
probes, then runs `helm test` (each service answers `$SRV.PING`, asked as the operator). The
partners are the sandboxes, reached where the example names partner URLs. What differs from a
node, and only that, is in tests/deploy/pods.py.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.charts import (
    UMBRELLA,
    load_values,
    manifests,
    objects_of,
    production_values,
    render,
)
from tests.deploy.conftest import CLUSTER_PREFIX
from tests.deploy.pods import ClusterObjects, LocalPod
from waybill_demo.scenario import DemoEndpoints, DemoPlan, run_demo
from waybill_runtime.local import child_process
from waybill_runtime.local.plan import LocalPlan
from waybill_runtime.local.registry import installed_sandboxes, load_services
from waybill_runtime.security.local_api_keys import LocalApiKeys
from waybill_runtime.security.nkeys_store import NkeyUser
from waybill_runtime.security.permissions import ADMIN, OPERATOR
from waybill_runtime.security.tls import TlsFiles, client_context
from waybill_runtime.settings import env_var_name
from waybill_runtime.testing.nats_cluster import LocalNatsCluster, client_url_list, merged

PREFIX = CLUSTER_PREFIX
NAME_LABEL = "app.kubernetes.io/name"
# What the plan tells a service about itself rather than its partners: the chart says these.
CHART_OWNED = {env_var_name(s) for s in ("service", "http_host", "http_port", "local_stack")}
API_SETTINGS = ("api_jwks_file", "api_issuer", "api_audience", "api_revoked_jti_file")


@pytest.fixture
def plan(tmp_path: Path) -> Iterator[LocalPlan]:
    """The partner sandboxes, running; the plan says where each service's pod is published."""
    made = LocalPlan.make(
        load_services(),
        installed_sandboxes(),
        api_keys=LocalApiKeys.ensure(tmp_path / "api-keys"),
    )
    logs = tmp_path / "sandboxes"
    logs.mkdir()
    children = []
    try:
        for spec in made.sandbox_children():
            with (logs / f"{spec.name.replace(' ', '-')}.log").open("wb") as log:
                children.append(child_process.spawn(spec.argv, env=spec.env, output=log))
        for spec in made.sandbox_children():
            assert spec.listens_on is not None
            _wait_listening(spec.name, *spec.listens_on)
        yield made
    finally:
        for child in children:
            child_process.stop(child)


def _wait_listening(name: str, host: str, port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the {name} did not listen on {host}:{port} in {timeout_s} s")


def _declared(service: str, charts_dir: Path) -> dict[str, Any]:
    declared: dict[str, Any] = load_values(charts_dir / service / "values.yaml")["declared"]
    return declared


def _installation(
    plan: LocalPlan,
    cluster: LocalNatsCluster,
    identities: dict[str, NkeyUser],
    charts_dir: Path,
) -> tuple[dict[str, Any], ClusterObjects]:
    """The production example's values pointed at this machine, and the objects it names."""
    assert cluster.ca_file is not None, "deploy/nats asks for TLS"
    objects = ClusterObjects()

    def seed(name: str) -> dict[str, str]:
        return {"nkey.seed": identities[name].seed_file.read_text()}

    objects.secrets["waybill-nats-admin"] = seed(ADMIN)
    objects.secrets["waybill-nats-operator"] = seed(OPERATOR)
    objects.secrets["waybill-nats-tls"] = {"ca.crt": cluster.ca_file.read_text()}
    keys = plan.api_keys
    assert keys is not None
    objects.config_maps["waybill-api-jwks"] = {"jwks.json": keys.jwks_file.read_text()}
    objects.config_maps["waybill-revoked-tokens"] = {"revoked-jti": ""}
    objects.secrets["waybill-notifier-webhooks"] = {"subscriptions.json": "[]"}

    components: dict[str, Any] = {}
    for service in plan.services:
        objects.secrets[f"waybill-{service}-nats"] = seed(service)
        declared = _declared(service, charts_dir)
        secret_names = set(declared.get("secretSettings", {}))
        api_names = {env_var_name(s) for s in API_SETTINGS}
        told = {
            k: v
            for k, v in plan.service_environment(service).items()
            if k not in CHART_OWNED and k not in api_names
        }
        # An installer's Secret of the service's secret settings (its fact-id key too).
        service_secrets = {k: v for k, v in told.items() if k in secret_names}
        service_secrets.setdefault(env_var_name("fact_id_key"), secrets.token_hex(32))
        objects.secrets[f"waybill-{service}-secrets"] = service_secrets
        components[service] = {
            "settings": {k: v for k, v in told.items() if k not in secret_names},
            "secrets": {"existingSecret": f"waybill-{service}-secrets"},
            "nats": {"identity": {"existingSecret": f"waybill-{service}-nats"}},
        }
    for protected in ("auditor", "odoo-gateway"):  # the services with protected routes
        components[protected]["api"] = {
            "issuer": keys.issuer,
            "audience": keys.audience,
            "jwks": {"url": "", "existingConfigMap": "waybill-api-jwks"},
        }
    here = {
        "default": {
            "nats": {"url": client_url_list(cluster.client_urls)},
            # No collector here: the example's OTLP endpoint is not on this machine.
            "otel": {"enabled": False},
        },
        "components": components,
    }
    values = merged(production_values(UMBRELLA), here)
    # The partners are the sandboxes: each service's partner settings are what its sandbox
    # offers, in place of the example's (its SMTP login, its Odoo's protocol).
    for service, component in components.items():
        values["components"][service]["settings"] = component["settings"]
    return values, objects


def _service_of(workload: dict[str, Any]) -> str:
    return str(workload["metadata"]["labels"][NAME_LABEL])


@pytest.mark.long  # a whole stack from the rendered charts: make long
@pytest.mark.timeout(600)
def test_the_rendered_pods_ship_orders_end_to_end(
    tmp_path: Path,
    charts_dir: Path,
    cluster: LocalNatsCluster,
    identities: dict[str, NkeyUser],
    plan: LocalPlan,
) -> None:
    values, objects = _installation(plan, cluster, identities, charts_dir)
    rendered = manifests(render(charts_dir / UMBRELLA, values))
    objects.add_rendered(rendered)
    pods_dir = tmp_path / "pods"

    # The pre-install hooks: provisioning, as the admin, before any workload.
    jobs = list(objects_of(rendered, "Job"))
    assert sorted(_service_of(j) for j in jobs) == sorted(plan.services)
    for job in jobs:
        pod = LocalPod(job, objects, pods_dir / job["metadata"]["name"])
        assert pod.run_to_completion(timeout_s=120) == 0, pod.log_tail()

    workloads = [*objects_of(rendered, "Deployment"), *objects_of(rendered, "StatefulSet")]
    assert sorted(_service_of(w) for w in workloads) == sorted(plan.services)
    running = [
        LocalPod(
            w,
            objects,
            pods_dir / w["metadata"]["name"],
            host_port=plan.service_port(_service_of(w)),
        )
        for w in workloads
    ]
    try:
        for pod in running:
            pod.start()
        for pod in running:
            pod.wait_ready(timeout_s=90)

        # `helm test`: each service answers $SRV.PING, asked as the operator.
        tests = list(objects_of(rendered, "Pod"))
        assert len(tests) == len(plan.services)
        for test in tests:
            pod = LocalPod(test, objects, pods_dir / test["metadata"]["name"])
            assert pod.run_to_completion(timeout_s=60) == 0, pod.log_tail()

        keys = plan.api_keys
        assert keys is not None and cluster.ca_file is not None
        endpoints = DemoEndpoints(
            odoo=plan.offered("odoo")["url"],
            wms=plan.offered("wms")["url"],
            carrier_a=plan.offered("carrier-a")["url"],
            nats_url=client_url_list(cluster.client_urls),
            subject_prefix=PREFIX,
            nkey_seed_file=str(identities[OPERATOR].seed_file),
            tls=client_context(TlsFiles(ca_file=str(cluster.ca_file))),
            mail=f"http://{plan.host}:{plan.port('mail', 'http')}",
            auditor=plan.service_url("auditor"),
            auditor_token=keys.issue("viewer", subject="pod-run", ttl=timedelta(hours=1)).token,
        )
        # Carrier A down for the first half: the second carrier takes those orders.
        batch = DemoPlan(orders=4, cancellations=0, short_picks=0, timeout_s=240)
        report = asyncio.run(run_demo(endpoints, batch))
        logs = {pod.name: pod.log_tail(10) for pod in running}
        assert len(report.outcomes) == 4 and not report.unfinished, (report, logs)
        assert all(o.state == "done" and o.tracking and o.carrier for o in report.outcomes), report
        assert all(o.emails and o.audited for o in report.outcomes), report
    finally:
        exits = {pod.name: pod.stop() for pod in running}
    # SIGTERM is how Kubernetes stops a pod: each drains and exits 0.
    assert all(code == 0 for code in exits.values()), exits
