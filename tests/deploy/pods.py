"""Rendered pods run as local processes: a kubelet's part, done on one machine without a cluster.

Given a rendered workload (a Deployment, StatefulSet, Job or Pod), :class:`LocalPod`
starts its container's command and args with exactly the environment the
manifest gives it, resolving ``secretKeyRef`` / ``configMapKeyRef`` from the
Secrets and ConfigMaps of the cluster (:class:`ClusterObjects`: the rendered
ones and the ones an installer creates beforehand), and materialises its
volumes: each Secret or ConfigMap volume's items become files under the pod's
own folder, each emptyDir or claim a folder.

Two things differ from a node, because the pods share one machine, and only these:
a path under a volume's mount point (in the environment) names the same file
under the pod's folder, and the container's port is published on a host port
of the pod's own (its listening setting names that port instead; its probes
ask there). The command's program is looked up on the image's PATH, which
locally is the project's virtualenv.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waybill_runtime.local import child_process
from waybill_runtime.settings import env_var_name

Manifest = dict[str, Any]

# The setting a Waybill container listens on (the chart renders it from the container port).
LISTEN_PORT_VARIABLE = env_var_name("http_port")
IMAGE_PATH = os.pathsep.join(
    [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
)


class PodSpecError(AssertionError):
    """The rendered manifest asks for something the cluster does not have."""


@dataclass
class ClusterObjects:
    """The Secrets and ConfigMaps a pod may read, by name: key -> text."""

    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)

    def add_rendered(self, objects: list[Manifest]) -> None:
        """The Secrets and ConfigMaps the charts create themselves."""
        for o in objects:
            name = o["metadata"]["name"]
            if o["kind"] == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in o.get("data", {}).items()}
                data.update(o.get("stringData", {}))
                self.secrets[name] = data
            elif o["kind"] == "ConfigMap":
                self.config_maps[name] = dict(o.get("data", {}))

    def _source(self, kind: str, name: str) -> dict[str, str]:
        found = (self.secrets if kind == "secret" else self.config_maps).get(name)
        if found is None:
            raise PodSpecError(f"the pod reads {kind} {name!r}, which the cluster does not hold")
        return found

    def value(self, kind: str, reference: Mapping[str, Any]) -> str | None:
        source = self._source(kind, reference["name"])
        if reference["key"] not in source:
            if reference.get("optional"):
                return None
            raise PodSpecError(f"{kind} {reference['name']!r} has no key {reference['key']!r}")
        return source[reference["key"]]

    def files(self, kind: str, volume: Mapping[str, Any]) -> dict[str, str]:
        """What a Secret or ConfigMap volume shows: path in the mount -> text."""
        name = volume["secretName"] if kind == "secret" else volume["name"]
        # An optional volume shows what there is: no object, or a key it lacks, is no error.
        optional = bool(volume.get("optional"))
        known = self.secrets if kind == "secret" else self.config_maps
        source = known.get(name, {}) if optional else self._source(kind, name)
        items = volume.get("items")
        if items is None:
            return dict(source)
        shown = {}
        for item in items:
            if item["key"] in source:
                shown[item["path"]] = source[item["key"]]
            elif not optional:
                raise PodSpecError(f"{kind} {name!r} has no key {item['key']!r}")
        return shown


def pod_spec(workload: Manifest) -> dict[str, Any]:
    if workload["kind"] == "Pod":
        spec: dict[str, Any] = workload["spec"]
    else:
        spec = workload["spec"]["template"]["spec"]
    return spec


@dataclass
class LocalPod:
    """One rendered pod (its first container) as a process under ``folder``."""

    workload: Manifest
    cluster: ClusterObjects
    folder: Path
    host_port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return str(self.workload["metadata"]["name"])

    @property
    def container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = pod_spec(self.workload)["containers"]
        if len(containers) != 1:
            raise PodSpecError(f"{self.name}: one container expected, found {len(containers)}")
        return containers[0]

    @property
    def log(self) -> Path:
        return self.folder / "pod.log"

    def _mounts(self) -> dict[str, Path]:
        """Each mount point -> its local folder, with the volume's files written there."""
        volumes = {v["name"]: v for v in pod_spec(self.workload).get("volumes", [])}
        claims = {
            t["metadata"]["name"] for t in self.workload["spec"].get("volumeClaimTemplates", [])
        }
        mounts: dict[str, Path] = {}
        for mount in self.container.get("volumeMounts", []):
            local = self.folder / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            volume = volumes.get(mount["name"])
            if volume is None and mount["name"] not in claims:
                raise PodSpecError(f"{self.name}: mount {mount['name']!r} names no volume")
            for kind in ("secret", "configMap"):
                if volume is not None and kind in volume:
                    source = "secret" if kind == "secret" else "configMap"
                    for path, text in self.cluster.files(source, volume[kind]).items():
                        target = local / path
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(text, encoding="utf-8")
                        # A kubelet writes secret files with the volume's defaultMode.
                        target.chmod(volume[kind].get("defaultMode", 0o644) & 0o700)
            mounts[mount["mountPath"]] = local
        return mounts

    def environment(self) -> dict[str, str]:
        """The container's environment as the manifest gives it (paths under mounts local)."""
        mounts = self._mounts()
        environment: dict[str, str] = {}
        for entry in self.container.get("env", []):
            if "value" in entry:
                value: str | None = str(entry["value"])
            else:
                source = entry["valueFrom"]
                if "secretKeyRef" in source:
                    value = self.cluster.value("secret", source["secretKeyRef"])
                elif "configMapKeyRef" in source:
                    value = self.cluster.value("configMap", source["configMapKeyRef"])
                else:
                    raise PodSpecError(f"{self.name}: env {entry['name']} reads {source}")
            if value is None:
                continue
            for mount_path, local in mounts.items():
                if value == mount_path or value.startswith(mount_path + "/"):
                    value = str(local) + value[len(mount_path) :]
            environment[entry["name"]] = value
        if self.host_port is not None:
            declared = {str(p["containerPort"]) for p in self.container.get("ports", [])}
            if environment.get(LISTEN_PORT_VARIABLE) not in declared:
                raise PodSpecError(
                    f"{self.name}: {LISTEN_PORT_VARIABLE} is not the container's port {declared}"
                )
            environment[LISTEN_PORT_VARIABLE] = str(self.host_port)
        # What the image's own environment holds besides the manifest's.
        environment.setdefault("PATH", IMAGE_PATH)
        environment.setdefault("HOME", str(self.folder))
        return environment

    def argv(self) -> list[str]:
        argv = [*self.container.get("command", []), *self.container.get("args", [])]
        if not argv:
            raise PodSpecError(f"{self.name}: the container names no command")
        return argv

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        environment = self.environment()
        argv = self.argv()
        program = _which(argv[0], environment["PATH"])
        with self.log.open("wb") as log:
            self.process = child_process.spawn([program, *argv[1:]], env=environment, output=log)

    def run_to_completion(self, timeout_s: float) -> int:
        """A Job's pod: start it and wait for its exit code."""
        self.start()
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child_process.stop(self.process)
            raise AssertionError(f"{self.name} did not finish in {timeout_s} s") from None

    def wait_ready(self, timeout_s: float) -> None:
        """Until the rendered readiness probe (an HTTP GET on the named port) answers 2xx."""
        probe = self.container["readinessProbe"]["httpGet"]
        port = probe["port"]
        named = {p.get("name"): p["containerPort"] for p in self.container.get("ports", [])}
        if named.get(port, port) not in named.values():
            raise PodSpecError(f"{self.name}: the readiness probe asks port {port!r}")
        url = f"http://127.0.0.1:{self.host_port}{probe['path']}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if 200 <= response.status < 300:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"{self.name} not ready at {url} in {timeout_s} s: {self.log_tail()}")

    def stop(self) -> int | None:
        if self.process is None:
            return None
        return child_process.stop(self.process)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return "(no output)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _which(program: str, path: str) -> str:
    if "/" in program:
        return program
    for folder in path.split(os.pathsep):
        candidate = Path(folder) / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise PodSpecError(f"{program} is not on the image's PATH ({path})")
