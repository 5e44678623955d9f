"""The auditor's chart on PostgreSQL (helm/examples/auditor-postgresql.yaml): a Deployment
of at least two replicas, no volume, the database URL a file from the Secret, never in the env."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.charts import (
    HELM_DIR,
    load_values,
    manifests,
    objects_of,
    pod_containers,
    production_values,
    render,
)
from tests.deploy.hardening import ServiceFacts, pod_spec, violations
from waybill_runtime.testing.nats_cluster import merged

POSTGRESQL_VALUES = HELM_DIR / "examples" / "auditor-postgresql.yaml"
SECRETS_DIR = "/etc/waybill/secrets"


def test_the_auditor_on_postgresql_runs_as_replicas_with_its_url_from_the_secret(
    charts_dir: Path, service_facts: dict[str, ServiceFacts]
) -> None:
    values = merged(production_values("auditor"), load_values(POSTGRESQL_VALUES))

    objects = manifests(render(charts_dir / "auditor", values))

    (auditor,) = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert auditor["kind"] == "Deployment"
    (scaler,) = objects_of(objects, "HorizontalPodAutoscaler")
    assert (scaler["spec"]["minReplicas"], scaler["spec"]["maxReplicas"]) == (2, 4)
    assert not list(objects_of(objects, "PersistentVolumeClaim"))
    assert "volumeClaimTemplates" not in auditor["spec"]
    container = pod_containers(auditor)[0]
    env = {e["name"]: e for e in container["env"]}
    assert "WAYBILL_AUDIT_DATABASE_URL" not in env
    assert env["WAYBILL_SECRETS_DIR"]["value"] == SECRETS_DIR
    assert env["WAYBILL_AUDIT_RETENTION_DAYS"]["value"] == "90"
    mounted = {m["name"] for m in container["volumeMounts"] if m["mountPath"] == SECRETS_DIR}
    spec = pod_spec(auditor)
    assert spec is not None
    secrets = [v for v in spec["volumes"] if v["name"] in mounted and "secret" in v]
    assert [v["secret"]["secretName"] for v in secrets] == ["waybill-auditor-secrets"]
    assert violations(objects, service_facts) == []


def test_the_auditor_on_sqlite_stays_one_replica_on_its_volume(charts_dir: Path) -> None:
    objects = manifests(render(charts_dir / "auditor", production_values("auditor")))

    (auditor,) = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert (auditor["kind"], auditor["spec"]["replicas"]) == ("StatefulSet", 1)
    assert auditor["spec"]["volumeClaimTemplates"]
