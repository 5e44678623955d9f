"""What the charts promise, proved on their rendering; and that the rules and the schema bite.

The hardening checker is fed mutated manifests (a probe removed, root, no
limits, a short grace period, an open door) and must name each; values that
break values.schema.json or leave a container without limits are refused by
the render itself.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import pytest
import yaml

from tests.deploy.charts import (
    HELM_DIR,
    LIBRARY,
    RELEASE,
    UMBRELLA,
    Manifest,
    manifests,
    objects_of,
    pod_containers,
    production_values,
    render,
)
from tests.deploy.hardening import ServiceFacts, pod_spec, violations
from tests.deploy.test_nats_values import ACCOUNTS
from waybill_runtime.deploy import declared_values
from waybill_runtime.local.registry import load_services
from waybill_runtime.security.nats_chart import MESH_ACCOUNT


def _objects(charts_dir: Path, chart: str, values: dict[str, Any] | None = None) -> list[Manifest]:
    return manifests(render(charts_dir / chart, values))


def _workload(objects: list[Manifest]) -> Manifest:
    (workload,) = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    return workload


def _service_container(workload: Manifest) -> dict[str, Any]:
    spec = pod_spec(workload)
    assert spec is not None
    container: dict[str, Any] = spec["containers"][0]
    return container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def _service_policy(objects: list[Manifest]) -> Manifest:
    """The NetworkPolicy of the service's own pods (the other one is its helpers')."""
    (policy,) = [
        p
        for p in objects_of(objects, "NetworkPolicy")
        if p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "service"
    ]
    return policy


# -- the rules bite ---------------------------------------------------------------------


def _drop_readiness(o: Manifest) -> None:
    del _service_container(o)["readinessProbe"]


def _run_as_root(o: Manifest) -> None:
    container = _service_container(o)
    container["securityContext"]["runAsUser"] = 0
    container["securityContext"]["runAsNonRoot"] = False


def _no_limits(o: Manifest) -> None:
    del _service_container(o)["resources"]["limits"]


def _short_grace(o: Manifest) -> None:
    spec = pod_spec(o)
    assert spec is not None
    spec["terminationGracePeriodSeconds"] = 20  # the drain deadline is 25 s


def _writable_root(o: Manifest) -> None:
    _service_container(o)["securityContext"]["readOnlyRootFilesystem"] = False


def _loopback_host(o: Manifest) -> None:
    _env(_service_container(o))["WAYBILL_HTTP_HOST"]["value"] = "127.0.0.1"


def _secret_in_env(o: Manifest) -> None:
    _service_container(o)["env"].append(
        {
            "name": "WAYBILL_FACT_ID_KEY",
            "valueFrom": {"secretKeyRef": {"name": "wb-orchestrator-secrets", "key": "k"}},
        }
    )


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (_drop_readiness, "has no readinessProbe"),
        (_run_as_root, "may run as root"),
        (_run_as_root, "runs as user 0"),
        (_no_limits, "has no limits.cpu"),
        (_no_limits, "has no limits.memory"),
        (_short_grace, "terminationGracePeriodSeconds 20 <= drain deadline 25 s"),
        (_writable_root, "writable root filesystem"),
        (_loopback_host, "does not set WAYBILL_HTTP_HOST=0.0.0.0"),
        (_secret_in_env, "reads WAYBILL_FACT_ID_KEY from a Secret into its environment"),
    ],
    ids=lambda p: p.__name__.strip("_") if callable(p) else "",
)
def test_a_broken_workload_fails_the_rules(
    charts_dir: Path,
    service_facts: dict[str, ServiceFacts],
    mutate: Callable[[Manifest], None],
    complaint: str,
) -> None:
    objects = _objects(charts_dir, "orchestrator")
    assert violations(objects, service_facts) == []
    broken = copy.deepcopy(objects)
    mutate(_workload(broken))
    found = violations(broken, service_facts)
    assert any(complaint in line for line in found), found


def test_a_workload_without_its_pdb_autoscaler_or_network_policy_fails_the_rules(
    charts_dir: Path, service_facts: dict[str, ServiceFacts]
) -> None:
    objects = _objects(charts_dir, "orchestrator")
    alone = [
        o
        for o in objects
        if o["kind"] not in ("PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy")
    ]
    found = violations(alone, service_facts)
    for missing in ("PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"):
        assert any(f"has no {missing}" in line for line in found), found


def test_an_open_door_on_a_service_without_routes_fails_the_rules(
    charts_dir: Path, service_facts: dict[str, ServiceFacts]
) -> None:
    objects = copy.deepcopy(_objects(charts_dir, "orchestrator"))
    policy = _service_policy(objects)
    policy["spec"]["ingress"] = [{"ports": [{"port": "http"}]}]
    found = violations(objects, service_facts)
    assert any("lets anyone in" in line for line in found), found


def test_a_helper_pod_running_as_root_fails_the_rules(
    charts_dir: Path, service_facts: dict[str, ServiceFacts]
) -> None:
    objects = copy.deepcopy(_objects(charts_dir, "orchestrator"))
    (job,) = objects_of(objects, "Job")
    spec = pod_spec(job)
    assert spec is not None
    spec["securityContext"]["runAsNonRoot"] = False
    del spec["containers"][0]["securityContext"]
    found = violations(objects, service_facts)
    assert any("Job/wb-orchestrator-provision" in line and "root" in line for line in found)


def test_helper_pods_are_not_counted_as_the_service_s_own(
    charts_dir: Path, service_facts: dict[str, ServiceFacts]
) -> None:
    objects = copy.deepcopy(_objects(charts_dir, "orchestrator"))
    (pod,) = objects_of(objects, "Pod")
    # A test Pod labelled as one of the service's pods would join its PDB and Deployment.
    pod["metadata"]["labels"]["app.kubernetes.io/component"] = "service"
    found = violations(objects, service_facts)
    assert any("its pods are selected by PodDisruptionBudget/wb-orchestrator" in f for f in found)
    # One that no NetworkPolicy covers may reach anything.
    pod["metadata"]["labels"]["app.kubernetes.io/component"] = "debug"
    found = violations(objects, service_facts)
    assert "Pod/wb-orchestrator-test-ping has no NetworkPolicy" in found


# -- the schema and the render refuse bad values ----------------------------------------


@pytest.mark.parametrize(
    ("chart", "values", "refusal"),
    [
        ("orchestrator", {"replicas": "many"}, "/replicas"),
        ("orchestrator", {"settings": {"WAYBILL_LOG_LEVL": "DEBUG"}}, "WAYBILL_LOG_LEVL"),
        # A setting of another service: the orchestrator does not read it.
        ("orchestrator", {"settings": {"WAYBILL_WMS_URL": "https://x"}}, "WAYBILL_WMS_URL"),
        # Set by the chart itself, never through settings.
        ("orchestrator", {"settings": {"WAYBILL_HTTP_HOST": "127.0.0.1"}}, "WAYBILL_HTTP_HOST"),
        ("orchestrator", {"securityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
        ("orchestrator", {"securityContext": {"readOnlyRootFilesystem": False}}, "readOnly"),
        ("wms-bridge", {"secrets": {"values": {"WAYBILL_ODOO_PASSWORD": "x"}}}, "ODOO_PASSWORD"),
        ("wms-bridge", {"partners": {"odoo": {"egress": {"ports": []}}}}, "odoo"),
        ("notifier", {"secretFiles": {"WAYBILL_WEBHOOK_SUBSCRIPTIONS_FILE": {}}}, "existingSecret"),
        ("orchestrator", {"declared": {"name": "auditor", "port": 8080}}, "/declared/name"),
        ("orchestrator", {"hpa": {"enabled": "yes"}}, "/hpa/enabled"),
        ("orchestrator", {"imageTag": "latest"}, "imageTag"),
        (UMBRELLA, {"components": {"billing": {"enabled": True}}}, "billing"),
        (UMBRELLA, {"components": {"notifier": {"replicas": -1}}}, "/components/notifier/replicas"),
        (UMBRELLA, {"default": {"nats": {"url": "http://nats:4222"}}}, "/default/nats/url"),
    ],
)
def test_values_that_break_the_schema_are_refused_by_the_render(
    charts_dir: Path, chart: str, values: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(refusal)):
        render(charts_dir / chart, values)


@pytest.mark.parametrize(
    "values",
    [
        {"resources": {"limits": {"cpu": ""}}},
        {"resources": {"requests": {"memory": ""}}},
        {"provisioning": {"resources": {"limits": {"memory": ""}}}},
        {"test": {"resources": {"limits": {"cpu": ""}}}},
    ],
)
def test_a_container_without_requests_and_limits_is_refused_by_the_render(
    charts_dir: Path, values: dict[str, Any]
) -> None:
    with pytest.raises(helm.HelmRenderError, match="requests and limits"):
        render(charts_dir / "orchestrator", values)


def test_the_library_defaults_are_values_the_schema_accepts() -> None:
    # Every key the library defaults carries is known to every chart's schema.
    text = (HELM_DIR / LIBRARY / "templates" / "_defaults.tpl").read_text()
    body = text.split('{{- define "waybill-lib.defaults" -}}', 1)[1].rsplit("{{- end -}}", 1)[0]
    defaults = yaml.safe_load(body)
    import json

    schema = json.loads((HELM_DIR / "orchestrator" / "values.schema.json").read_text())
    declared = yaml.safe_load((HELM_DIR / "orchestrator" / "values.yaml").read_text())
    jsonschema.validate({**defaults, **declared}, schema)
    umbrella = json.loads((HELM_DIR / UMBRELLA / "values.schema.json").read_text())
    jsonschema.validate({"default": defaults, "components": {}}, umbrella)


# -- what each service gets -------------------------------------------------------------


def test_only_services_with_webhooks_or_api_routes_let_callers_in(charts_dir: Path) -> None:
    for name, service in load_services().items():
        declared = declared_values(service)
        policy = _service_policy(_objects(charts_dir, name))
        ingress = policy["spec"]["ingress"]
        if declared.ingress:
            assert ingress == [{"ports": [{"port": "http", "protocol": "TCP"}]}], name
        else:
            assert ingress == [], name
        # DNS, NATS and one rule per partner (no OTLP unless tracing is on).
        assert len(policy["spec"]["egress"]) == 2 + len(declared.partners), name


def test_secrets_are_read_from_secrets_and_files_from_mounts(charts_dir: Path) -> None:
    for name, service in load_services().items():
        declared = declared_values(service)
        values = production_values(name)
        objects = _objects(charts_dir, name, values)
        container = _service_container(_workload(objects))
        env = _env(container)
        # The example's Secret, or the chart's default name for one it does not name.
        secret = values.get("secrets", {}).get("existingSecret") or f"{RELEASE}-{name}-secrets"
        # Secret settings are files named after their variables, never environment.
        assert not set(declared.secret_settings) & set(env)
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        folder = env["WAYBILL_SECRETS_DIR"]["value"]
        assert mounts[folder]["readOnly"]
        volumes = {v["name"]: v for v in pod_spec(_workload(objects))["volumes"]}  # type: ignore[index]
        mounted = volumes[mounts[folder]["name"]]["secret"]
        assert mounted["secretName"] == secret and mounted["optional"] is True
        assert mounted["items"] == [
            {"key": var, "path": var} for var in sorted(declared.secret_settings)
        ]
        seed = env["WAYBILL_NATS_NKEY_SEED_FILE"]["value"]
        ca = env["WAYBILL_NATS_TLS_CA_FILE"]["value"]
        for path in (seed, ca):
            assert str(Path(path).parent) in mounts and mounts[str(Path(path).parent)]["readOnly"]
        identity = volumes[mounts[str(Path(seed).parent)]["name"]]["secret"]
        seed_secret = values.get("nats", {}).get("identity", {}).get("existingSecret")
        assert identity["secretName"] == (seed_secret or f"{RELEASE}-{name}-nats")
        assert identity["items"] == [{"key": "nkey.seed", "path": "nkey.seed"}]
    notifier = _service_container(
        _workload(_objects(charts_dir, "notifier", production_values("notifier")))
    )
    assert _env(notifier)["WAYBILL_WEBHOOK_SUBSCRIPTIONS_FILE"]["value"] == (
        "/etc/waybill/files/waybill-webhook-subscriptions-file/subscriptions.json"
    )


def test_the_api_key_source_reaches_only_services_with_protected_routes(charts_dir: Path) -> None:
    for name in ("auditor", "orchestrator"):
        env = _env(
            _service_container(_workload(_objects(charts_dir, name, production_values(name))))
        )
        protected = declared_values(load_services()[name]).protected_routes
        assert ("WAYBILL_API_JWKS_URL" in env) is protected, name
        assert ("WAYBILL_API_REVOKED_JTI_FILE" in env) is protected, name
        if protected:
            assert env["WAYBILL_API_ISSUER"]["value"] == "https://id.example.com/"
            assert env["WAYBILL_API_AUDIENCE"]["value"] == "waybill-api"


def test_the_auditor_is_a_statefulset_on_its_own_volume(charts_dir: Path) -> None:
    objects = _objects(charts_dir, "auditor", production_values("auditor"))
    auditor = _workload(objects)
    assert auditor["kind"] == "StatefulSet" and auditor["spec"]["replicas"] == 1
    (claim,) = auditor["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    mounts = {m["name"]: m["mountPath"] for m in _service_container(auditor)["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/var/lib/waybill"
    assert _env(_service_container(auditor))["WAYBILL_STATE_DIR"]["value"] == "/var/lib/waybill"
    assert not list(objects_of(objects, "HorizontalPodAutoscaler"))


def test_keda_scales_on_the_lag_of_the_service_s_own_durables(charts_dir: Path) -> None:
    values = production_values("orchestrator")
    values["settings"]["WAYBILL_SUBJECT_PREFIX"] = "acme"
    objects = _objects(charts_dir, "orchestrator", values)
    (scaled,) = objects_of(objects, "ScaledObject")
    assert not list(objects_of(objects, "HorizontalPodAutoscaler"))
    declared = declared_values(load_services()["orchestrator"])
    lag = [t["metadata"] for t in scaled["spec"]["triggers"] if t["type"] == "nats-jetstream"]
    assert [(t["stream"], t["consumer"]) for t in lag] == [
        (f"ACME_{c.stream_suffix}", c.durable) for c in declared.consumers
    ]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "wb-orchestrator"
    # KEDA reads the lag from the account deploy/nats keeps the mesh's streams in.
    accounts = yaml.safe_load(ACCOUNTS.read_text())["config"]["merge"]["accounts"]
    assert MESH_ACCOUNT in accounts
    assert {t["account"] for t in lag} == {MESH_ACCOUNT}


def test_provisioning_is_an_idempotent_hook_job_as_the_admin(charts_dir: Path) -> None:
    objects = _objects(charts_dir, "notifier", production_values("notifier"))
    (job,) = objects_of(objects, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    container = pod_containers(job)[0]
    assert container["command"] == ["waybill", "provision", "notifier"]
    env = _env(container)
    # The notifier's durables keep its own redelivery limit, as the service expects.
    assert env["WAYBILL_MAX_DELIVER"]["value"] == "40"
    assert env["WAYBILL_STREAM_REPLICAS"]["value"] == "3"
    seed_dir = str(Path(env["WAYBILL_NATS_NKEY_SEED_FILE"]["value"]).parent)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == seed_dir)
    volume = next(v for v in pod_spec(job)["volumes"] if v["name"] == mount["name"])  # type: ignore[index]
    assert volume["secret"]["secretName"] == "waybill-nats-admin"
    service_env = _env(_service_container(_workload(objects)))
    assert service_env["WAYBILL_PROVISION"]["value"] == "never"


def test_helm_test_pings_the_service_over_nats_as_the_operator(charts_dir: Path) -> None:
    objects = _objects(charts_dir, "wms-bridge", production_values("wms-bridge"))
    (pod,) = objects_of(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod_containers(pod)[0]
    assert container["command"][:3] == ["waybill", "ping", "wms-bridge"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "nats-identity")
    assert volume["secret"]["secretName"] == "waybill-nats-operator"


def test_the_grace_period_follows_the_drain_deadline(charts_dir: Path) -> None:
    objects = _objects(
        charts_dir, "orchestrator", {"settings": {"WAYBILL_SHUTDOWN_DEADLINE_S": 90}}
    )
    spec = pod_spec(_workload(objects))
    assert spec is not None
    assert spec["terminationGracePeriodSeconds"] == 5 + 90 + 10


def test_chart_created_secrets_for_trials(charts_dir: Path) -> None:
    seed = "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4"
    objects = _objects(
        charts_dir,
        "wms-bridge",
        {
            "nats": {"identity": {"seed": seed}},
            "secrets": {"values": {"WAYBILL_WMS_API_KEY": "k", "WAYBILL_WMS_WEBHOOK_SECRET": "s"}},
            "provisioning": {"identity": {"seed": seed}},
        },
    )
    secrets = {o["metadata"]["name"]: o for o in objects_of(objects, "Secret")}
    assert set(secrets) == {
        "wb-wms-bridge-nats",
        "wb-wms-bridge-secrets",
        "wb-wms-bridge-provisioning",
    }
    assert secrets["wb-wms-bridge-provisioning"]["metadata"]["annotations"]["helm.sh/hook"] == (
        "pre-install,pre-upgrade"
    )
    assert set(secrets["wb-wms-bridge-secrets"]["data"]) == {
        "WAYBILL_WMS_API_KEY",
        "WAYBILL_WMS_WEBHOOK_SECRET",
    }
