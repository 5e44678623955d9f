"""The image recipe replayed on this machine: its build commands make a virtual environment,
its runtime stage's environment and entry point start a service from it.

There is no Docker engine here, so the build stage's commands that install
into the image's environment (``/opt/waybill``) run against a fresh venv in a
temporary folder, with the recipe's paths mapped onto the repository.
Waybill's packages go in as the recipe puts them; each service goes into a
folder of its own (``--target``) put on ``PYTHONPATH``, so a process started
for one service sees that service alone, as its image does.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.dockerfile import Dockerfile, expand, parse_dockerfile

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
IMAGE_ENV = "/opt/waybill"
INSTALL_TIMEOUT_S = 540.0


def recipe() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE)


def service_dirs() -> list[str]:
    """The services an image can be built for: every services/<name>/ with a pyproject."""
    return sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml"))


def build_commands(dockerfile: Dockerfile) -> list[str]:
    """The build stage's commands that make the image's environment, split at ``&&``, in order."""
    commands = []
    for instruction in dockerfile.stage("build").all("RUN"):
        for command in instruction.text.split("&&"):
            if IMAGE_ENV in command:
                commands.append(command.strip())
    return commands


def _mapped(command: str, venv: Path) -> list[str]:
    """``command`` with the recipe's paths turned into this machine's."""
    text = (
        command.replace("/tmp/lock/", f"{ROOT}/deploy/docker/")
        .replace("/src/", f"{ROOT}/")
        .replace(IMAGE_ENV, str(venv))
    )
    words = shlex.split(text)
    if words[:3] == ["python", "-m", "venv"]:
        words[0] = sys.executable
    return words


def _clean_environment() -> dict[str, str]:
    # pip keeps this machine's index configuration; nothing of the test's venv leaks in.
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV"}
    return {k: v for k, v in os.environ.items() if k not in drop}


@dataclass(frozen=True)
class ImageEnvironment:
    """The image's ``/opt/waybill`` made here, and each service's own folder."""

    venv: Path
    services: dict[str, Path]

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def environment(self, service: str, extra: dict[str, str]) -> dict[str, str]:
        """The runtime stage's ENV for ``service`` (PATH first), then ``extra``."""
        dockerfile = recipe()
        runtime = dockerfile.stage("runtime")
        values = {
            **dockerfile.defaults(),
            **{k: v for k, v in runtime.args().items() if v is not None},
            "SERVICE": service,
            "PATH": os.environ.get("PATH", ""),
        }
        environment = {
            key: expand(value, values).replace(IMAGE_ENV, str(self.venv))
            for key, value in runtime.assignments("ENV").items()
        }
        environment["PYTHONPATH"] = str(self.services[service])
        environment["HOME"] = os.environ.get("HOME", "/tmp")
        return {**environment, **extra}

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` (the image's ENTRYPOINT or HEALTHCHECK) with its program from the venv."""
        return [str(self.bin / argv[0]), *argv[1:]]


def build_image_environment(folder: Path) -> ImageEnvironment:
    """Run the recipe's build commands into ``folder``; every service into its own target."""
    venv = folder / "opt-waybill"
    env = _clean_environment()
    services: dict[str, Path] = {}
    for command in build_commands(recipe()):
        words = _mapped(command, venv)
        if any("${SERVICE}" in word for word in words):
            own = [w for w in words if "${SERVICE}" not in w]
            _run(own, env)
            for name in service_dirs():
                target = folder / "services" / name
                services[name] = target
                each = [
                    *own[: own.index("install") + 1],
                    "--no-deps",
                    "--no-build-isolation",
                    "--target",
                    str(target),
                    str(ROOT / "services" / name),
                ]
                _run(each, env)
        else:
            _run(words, env)
    return ImageEnvironment(venv=venv, services=services)


def _run(words: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(
        words, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{shlex.join(words)} failed ({result.returncode}):\n{result.stdout[-3000:]}"
            f"\n{result.stderr[-3000:]}"
        )
