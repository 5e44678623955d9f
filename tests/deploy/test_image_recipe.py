"""The image recipe (deploy/docker/Dockerfile), read without a Docker engine: what it copies is
in the build context, its base is pinned, it runs unprivileged, checks its health on the
configured port, labels itself, and declares a volume only for a service that keeps state."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from tests.deploy.dockerfile import Dockerfile, DockerIgnore, Stage, expand
from tests.deploy.image import ROOT, recipe, service_dirs
from waybill_auditor.config import AuditorSettings
from waybill_runtime.healthcheck import health_url
from waybill_runtime.settings import load_settings

DOCKERIGNORE = ROOT / ".dockerignore"
# An exact Python release on an exact Debian release, optionally with its digest.
PINNED = re.compile(r"^python:(\d+)\.(\d+)\.(\d+)-slim-[a-z]+(@sha256:[0-9a-f]{64})?$")


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return recipe()


def final_chain(dockerfile: Dockerfile, **build_args: str) -> list[Stage]:
    """The stages the image is made of for ``build_args``, the last stage first."""
    return dockerfile.chain(dockerfile.stages[-1], build_args)


def tracked_files(folder: str) -> list[str]:
    """What the build context holds under ``folder``: committed files and new ones git would
    take (a service just scaffolded), but not what .gitignore leaves out (local state)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", folder],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in listed.stdout.splitlines() if line]


def test_the_base_image_is_an_exact_python_release(dockerfile: Dockerfile) -> None:
    base = dockerfile.global_args["PYTHON_IMAGE"]
    assert base is not None and PINNED.match(base), (
        f"PYTHON_IMAGE={base!r}: pin an exact release such as python:3.11.13-slim-bookworm"
    )
    stage_names = {s.name for s in dockerfile.stages}
    for stage in dockerfile.stages:
        assert stage.base == "${PYTHON_IMAGE}" or expand(
            stage.base, dockerfile.defaults()
        ) in stage_names | {base}, f"FROM {stage.base} is neither the pinned base nor a stage"


def test_the_image_python_is_the_one_the_lock_and_packages_are_made_for(
    dockerfile: Dockerfile,
) -> None:
    match = PINNED.match(dockerfile.global_args["PYTHON_IMAGE"] or "")
    assert match is not None
    version = ".".join(match.group(1, 2, 3))
    makefile = (ROOT / "Makefile").read_text()
    assert f"--python-version {match.group(1)}.{match.group(2)} " in makefile
    for folder in ("contracts", "shared", *(f"services/{s}" for s in service_dirs())):
        project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
        assert version in SpecifierSet(project["requires-python"]), folder


@pytest.mark.parametrize("service", service_dirs())
def test_everything_the_build_copies_is_in_the_context(
    dockerfile: Dockerfile, service: str
) -> None:
    ignore = DockerIgnore.read(DOCKERIGNORE)
    values = {**dockerfile.defaults(), "SERVICE": service}
    copies = [c for c in dockerfile.stage("build").all("COPY") if "from" not in c.flags()]
    assert copies
    for copy in copies:
        *sources, _destination = copy.arguments()
        for source in sources:
            path = expand(source, values).rstrip("/")
            assert (ROOT / path).exists(), f"COPY {source}: {path} is not in the repository"
            files = tracked_files(path) if (ROOT / path).is_dir() else [path]
            assert files, f"COPY {source}: git tracks nothing under {path}"
            left_out = [f for f in files if ignore.excludes(f)]
            assert not left_out, f".dockerignore leaves out what COPY {source} needs: {left_out}"


def test_the_context_leaves_out_local_state_and_secrets() -> None:
    ignore = DockerIgnore.read(DOCKERIGNORE)
    for path in (
        ".git/config",
        ".venv/bin/python",
        ".waybill/nats/identities/admin.nk",
        "services/auditor/.waybill/auditor/audit.sqlite",
        "shared/src/waybill_runtime/__pycache__/service.cpython-311.pyc",
        "shared/src/waybill_runtime.egg-info/PKG-INFO",
        "tests/conftest.py",
    ):
        assert ignore.excludes(path), f".dockerignore lets {path} into the build context"


def test_the_build_stops_without_a_service(dockerfile: Dockerfile) -> None:
    guards = [r.text for r in dockerfile.stage("build").all("RUN") if r.text.startswith("test ")]
    assert any('test -n "${SERVICE}"' in g and "exit 1" in g for g in guards)


def test_the_image_runs_as_an_unprivileged_user(dockerfile: Dockerfile) -> None:
    for build_args in ({}, {"STATE": "volume"}):
        users = [u.text for s in final_chain(dockerfile, **build_args) for u in s.all("USER")]
        assert users, "the image sets no USER: it would run as root"
        uid, _, gid = users[0].partition(":")  # the nearest USER wins
        assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
        runtime = dockerfile.stage("runtime")
        assert any(f"--uid {uid}" in r.text for r in runtime.all("RUN"))


def test_the_health_check_asks_the_port_the_service_is_configured_for(
    dockerfile: Dockerfile,
) -> None:
    runtime = dockerfile.stage("runtime")
    (check,) = runtime.all("HEALTHCHECK")
    assert check.exec_form() == ["python", "-m", "waybill_runtime.healthcheck"]
    assert not re.search(r"\b\d{4,5}\b", check.text), "the health check names a port"
    environment = runtime.assignments("ENV")
    assert environment["WAYBILL_HTTP_PORT"] == "${HTTP_PORT}"
    # Reachable by the kubelet's probes from outside the container.
    assert environment["WAYBILL_HTTP_HOST"] == "0.0.0.0"
    assert [e.text for e in runtime.all("EXPOSE")] == ["${HTTP_PORT}"]
    # ...and what the check asks is where the service listens, whatever it is set to.
    assert health_url({"WAYBILL_HTTP_PORT": "9177"}) == "http://127.0.0.1:9177/healthz"
    assert health_url({}) == f"http://127.0.0.1:{runtime.args()['HTTP_PORT']}/healthz"


def test_only_a_service_that_keeps_state_declares_a_volume(dockerfile: Dockerfile) -> None:
    stateless = [v for s in final_chain(dockerfile) for v in s.all("VOLUME")]
    assert not stateless, "an image built without STATE=volume declares a volume"
    (volume,) = [v for s in final_chain(dockerfile, STATE="volume") for v in s.all("VOLUME")]
    (path,) = volume.exec_form() or []
    state_dir = dockerfile.stage("runtime").assignments("ENV")["WAYBILL_STATE_DIR"]
    assert path == state_dir
    # The auditor keeps its SQLite trail there unless told otherwise...
    auditor = load_settings(AuditorSettings, environ={}, service="auditor", state_dir=state_dir)
    assert auditor.database_path().is_relative_to(Path(state_dir))
    # ...and the recipe says to build it with the volume.
    header = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert re.search(r"SERVICE=auditor \\\n#\s+--build-arg STATE=volume", header)


def test_the_image_carries_the_oci_labels(dockerfile: Dockerfile) -> None:
    labels = dockerfile.stage("runtime").assignments("LABEL")
    wanted = {
        f"org.opencontainers.image.{name}"
        for name in (
            "title",
            "description",
            "version",
            "revision",
            "created",
            "source",
            "licenses",
            "base.name",
        )
    }
    assert wanted <= set(labels), f"missing labels: {sorted(wanted - set(labels))}"
    license_of_shared = tomllib.loads((ROOT / "shared" / "pyproject.toml").read_text())
    assert labels["org.opencontainers.image.licenses"] == license_of_shared["project"]["license"]
    assert labels["org.opencontainers.image.base.name"] == "${PYTHON_IMAGE}"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"


def test_the_entry_point_is_waybill_run_of_the_built_service(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.stage("runtime")
    (entrypoint,) = runtime.all("ENTRYPOINT")
    assert entrypoint.exec_form() == ["waybill", "run"]
    assert runtime.assignments("ENV")["WAYBILL_SERVICE"] == "${SERVICE}"
    scripts = tomllib.loads((ROOT / "shared" / "pyproject.toml").read_text())["project"]
    assert scripts["scripts"]["waybill"] == "waybill_runtime.cli:main"
    assert not runtime.all("CMD"), "a CMD would be taken as the service's name"


def test_waybill_run_without_a_service_says_how_to_name_one() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "WAYBILL_SERVICE"}
    result = subprocess.run(
        [sys.executable, "-m", "waybill_runtime", "run"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )
    assert result.returncode != 0
    assert "waybill run <service>, or set WAYBILL_SERVICE" in result.stderr
