"""The rules every rendered Waybill workload must keep, checked on the manifests themselves.

:func:`violations` reads rendered objects (as Kubernetes would get them) and
returns one line per broken rule, so a test can show all of them at once and a
mutated manifest (a probe removed, root, no limits) proves each rule bites.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")
SERVING_KINDS = ("Deployment", "StatefulSet")
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)
PROBES = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}


@dataclass(frozen=True)
class ServiceFacts:
    """What the rules need to know of a service, from its declaration."""

    ingress: bool
    """It takes webhooks or API calls: callers may reach it."""
    partners: int
    shutdown_deadline_s: float


def _name(o: Manifest) -> str:
    return f"{o.get('kind')}/{o.get('metadata', {}).get('name')}"


def pod_spec(o: Manifest) -> dict[str, Any] | None:
    """The pod spec of a workload object, wherever its kind keeps it."""
    kind = o.get("kind")
    spec: dict[str, Any] | None = None
    if kind == "Pod":
        spec = o.get("spec", {})
    elif kind == "CronJob":
        job = o.get("spec", {}).get("jobTemplate", {}).get("spec", {})
        spec = job.get("template", {}).get("spec")
    elif kind in WORKLOAD_KINDS:
        spec = o.get("spec", {}).get("template", {}).get("spec")
    return spec


def _pod_labels(o: Manifest) -> Mapping[str, str]:
    pod = o if o.get("kind") == "Pod" else o.get("spec", {}).get("template", {})
    labels: Mapping[str, str] = pod.get("metadata", {}).get("labels", {})
    return labels


def _env(container: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    wanted = selector.get("matchLabels", {})
    expressions = selector.get("matchExpressions", [])
    if not wanted and not expressions:
        return False
    if not all(labels.get(k) == v for k, v in wanted.items()):
        return False
    for e in expressions:
        value, present = labels.get(e["key"]), e["key"] in labels
        match e["operator"]:
            case "In":
                ok = present and value in e["values"]
            case "NotIn":
                ok = not present or value not in e["values"]
            case "Exists":
                ok = present
            case _:
                ok = not present
        if not ok:
            return False
    return True


def _network_policies(o: Manifest, objects: list[Manifest]) -> list[Manifest]:
    """The NetworkPolicies that select the pods of workload ``o``."""
    labels = _pod_labels(o)
    return [
        p
        for p in objects
        if p.get("kind") == "NetworkPolicy" and _selects(p["spec"].get("podSelector", {}), labels)
    ]


def _container_rules(
    where: str, container: Mapping[str, Any], pod: Mapping[str, Any]
) -> Iterator[str]:
    pod_sc = pod.get("securityContext", {}) or {}
    sc = container.get("securityContext", {}) or {}
    name = f"{where}: container {container.get('name')}"
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
        yield f"{name} may run as root (runAsNonRoot is not true)"
    if sc.get("runAsUser", pod_sc.get("runAsUser")) in (0, None):
        yield f"{name} runs as user 0 or an unset user"
    if sc.get("readOnlyRootFilesystem") is not True:
        yield f"{name} has a writable root filesystem"
    if sc.get("allowPrivilegeEscalation") is not False:
        yield f"{name} allows privilege escalation"
    if sc.get("privileged"):
        yield f"{name} is privileged"
    if "ALL" not in (sc.get("capabilities", {}) or {}).get("drop", []):
        yield f"{name} does not drop ALL capabilities"
    if sc.get("capabilities", {}).get("add"):
        yield f"{name} adds capabilities"
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    if seccomp != "RuntimeDefault":
        yield f"{name} has no RuntimeDefault seccomp profile"
    resources = container.get("resources", {}) or {}
    for part in ("requests", "limits"):
        for amount in ("cpu", "memory"):
            if not (resources.get(part) or {}).get(amount):
                yield f"{name} has no {part}.{amount}"
    for entry in container.get("env", []) or []:
        if "secretKeyRef" in (entry.get("valueFrom") or {}):
            yield f"{name} reads {entry['name']} from a Secret into its environment (mount it)"
    volumes = {v["name"]: v for v in pod.get("volumes", []) or []}
    tmp = [m for m in container.get("volumeMounts", []) or [] if m.get("mountPath") == "/tmp"]
    if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
        yield f"{name} has no emptyDir on /tmp"


def _serving_rules(
    where: str, container: Mapping[str, Any], pod: Mapping[str, Any], facts: ServiceFacts
) -> Iterator[str]:
    env = _env(container)
    name = f"{where}: container {container.get('name')}"
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    port = env.get("WAYBILL_HTTP_PORT")
    if port is None or ports.get("http") != int(port):
        yield f"{name}: port http {ports.get('http')} is not WAYBILL_HTTP_PORT {port}"
    for probe, path in PROBES.items():
        get = (container.get(probe) or {}).get("httpGet")
        if not get:
            yield f"{name} has no {probe}"
        elif get.get("path") != path or get.get("port") not in ("http", ports.get("http")):
            yield f"{name}: {probe} asks {get.get('path')} on {get.get('port')}, not {path} on http"
    if env.get("WAYBILL_HTTP_HOST") != "0.0.0.0":
        yield f"{name} does not set WAYBILL_HTTP_HOST=0.0.0.0"
    if env.get("WAYBILL_PROVISION") != "never":
        yield f"{name} does not set WAYBILL_PROVISION=never"
    deadline = float(env.get("WAYBILL_SHUTDOWN_DEADLINE_S", facts.shutdown_deadline_s))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if not grace > deadline:
        yield f"{where}: terminationGracePeriodSeconds {grace} <= drain deadline {deadline:g} s"
    if not pod.get("topologySpreadConstraints"):
        yield f"{where} has no topologySpreadConstraints"


def _companions(o: Manifest, objects: list[Manifest], facts: ServiceFacts) -> Iterator[str]:
    """PDB, autoscaler and NetworkPolicy of a serving workload."""
    where = _name(o)
    labels = _pod_labels(o)
    if not any(
        _selects(p["spec"].get("selector", {}), labels)
        for p in objects
        if p.get("kind") == "PodDisruptionBudget"
    ):
        yield f"{where} has no PodDisruptionBudget"
    targets = {
        (s["spec"]["scaleTargetRef"].get("kind"), s["spec"]["scaleTargetRef"].get("name"))
        for s in objects
        if s.get("kind") in ("HorizontalPodAutoscaler", "ScaledObject")
    }
    if o["kind"] == "Deployment" and ("Deployment", o["metadata"]["name"]) not in targets:
        yield f"{where} has no HorizontalPodAutoscaler or ScaledObject"
    for policy in _network_policies(o, objects):
        spec = policy["spec"]
        if set(spec.get("policyTypes", [])) != {"Ingress", "Egress"}:
            yield f"{_name(policy)} does not restrict both ingress and egress"
        for rule in spec.get("ingress", []) or []:
            if not facts.ingress and not rule.get("from"):
                yield f"{_name(policy)} lets anyone in, but {where} takes no webhooks or API calls"
        egress = spec.get("egress", []) or []
        for rule in egress:
            if not rule.get("ports"):
                yield f"{_name(policy)} allows egress on every port"
        # DNS, NATS, OTLP and one rule per partner at most.
        if len(egress) > 3 + facts.partners:
            yield (
                f"{_name(policy)} has {len(egress)} egress rules, more than DNS, NATS, OTLP "
                f"and {facts.partners} partner(s)"
            )


def violations(objects: list[Manifest], services: Mapping[str, ServiceFacts]) -> list[str]:
    """Every broken rule in ``objects`` (one chart's rendering), one line each."""
    found: list[str] = []
    for o in objects:
        where = _name(o)
        labels = o.get("metadata", {}).get("labels", {}) or {}
        missing = [label for label in STANDARD_LABELS if label not in labels]
        if missing:
            found.append(f"{where} lacks labels {', '.join(missing)}")
        pod = pod_spec(o)
        if pod is None:
            continue
        service = labels.get("app.kubernetes.io/name", "")
        facts = services.get(service)
        if facts is None:
            found.append(f"{where} belongs to no known service ({service!r})")
            continue
        missing = [label for label in STANDARD_LABELS if label not in _pod_labels(o)]
        if missing:
            found.append(f"{where}: its pods lack labels {', '.join(missing)}")
        if not _network_policies(o, objects):
            found.append(f"{where} has no NetworkPolicy")
        # The service's own controllers must not count its helper pods as its own.
        for selecting in objects:
            selector = (selecting.get("spec") or {}).get("selector")
            if (
                selecting is not o
                and selecting.get("kind") in ("Deployment", "StatefulSet", "PodDisruptionBudget")
                and isinstance(selector, dict)
                and _selects(selector, _pod_labels(o))
                and o.get("kind") not in SERVING_KINDS
            ):
                found.append(f"{where}: its pods are selected by {_name(selecting)}")
        if pod.get("automountServiceAccountToken") is not False:
            found.append(f"{where} mounts a service account token")
        if (pod.get("securityContext") or {}).get("runAsNonRoot") is not True:
            found.append(f"{where}: pod securityContext does not set runAsNonRoot")
        for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            found += _container_rules(where, container, pod)
        if o["kind"] in SERVING_KINDS:
            for container in pod.get("containers", []):
                found += _serving_rules(where, container, pod, facts)
            found += _companions(o, objects, facts)
    return found
