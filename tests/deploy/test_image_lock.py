"""The images' lock (deploy/docker/requirements.lock) is complete and current: every package
Waybill's packages and the image need is pinned, with hashes, at a version they accept.

Regenerating the lock needs PyPI (`make lock`); these checks need nothing but the files,
so they run everywhere and say when `make lock` is due.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.image import ROOT, service_dirs
from tests.deploy.lockfile import BUILD_LOCK, LOCK, read_lock
from waybill_runtime import telemetry

IMAGE_INPUT = ROOT / "deploy" / "docker" / "requirements.in"
# The environment markers of the image (python:3.11 on Linux) a requirement is judged in.
IMAGE_MARKERS = {
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "python_version": "3.11",
    "python_full_version": "3.11.13",
    "platform_machine": "x86_64",
    "extra": "",
}
PACKAGE_FOLDERS = ["contracts", "shared", *(f"services/{s}" for s in service_dirs())]


def _project(folder: str) -> dict[str, object]:
    project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
    assert isinstance(project, dict)
    return project


def waybill_packages() -> set[str]:
    return {canonicalize_name(str(_project(f)["name"])) for f in PACKAGE_FOLDERS}


def image_requirements() -> list[tuple[str, Requirement]]:
    """(who asks, requirement) for every third-party requirement an image must satisfy."""
    wanted = []
    for folder in PACKAGE_FOLDERS:
        dependencies = _project(folder)["dependencies"]
        assert isinstance(dependencies, list)
        wanted += [(folder, Requirement(d)) for d in dependencies]
    # The images install the runtime with its `otel` extra (trace export).
    otel = _project("shared")["optional-dependencies"]
    assert isinstance(otel, dict) and "otel" in otel, "shared/pyproject.toml lost the otel extra"
    wanted += [("shared[otel]", Requirement(d)) for d in otel["otel"]]
    for line in IMAGE_INPUT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            wanted.append((IMAGE_INPUT.name, Requirement(line.strip())))
    ours = waybill_packages()
    return [
        (who, r)
        for who, r in wanted
        if canonicalize_name(r.name) not in ours
        and (r.marker is None or r.marker.evaluate(IMAGE_MARKERS))
    ]


def test_every_requirement_is_pinned_at_a_version_it_accepts() -> None:
    pins = read_lock()
    stale = []
    for who, requirement in image_requirements():
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None or pin.version not in requirement.specifier:
            found = "nothing" if pin is None else pin.version
            stale.append(f"{who} needs {requirement}, the lock has {found}")
    assert not stale, "run `make lock`: " + "; ".join(stale)


def test_the_lock_pins_third_party_packages_only_each_with_hashes() -> None:
    pins = read_lock()
    assert not waybill_packages() & set(pins), "the image builds Waybill's packages itself"
    unhashed = [name for name, pin in pins.items() if not pin.hashes]
    assert not unhashed, f"pins without hashes (run `make lock`): {unhashed}"


def test_the_build_backend_is_pinned_alike_in_both_locks() -> None:
    (backend,) = read_lock(BUILD_LOCK).values()
    assert backend.name == "setuptools"
    main = read_lock()[backend.name]
    assert (backend.version, sorted(backend.hashes)) == (main.version, sorted(main.hashes))
    for folder in PACKAGE_FOLDERS:
        build = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["build-system"]
        for requirement in map(Requirement, build["requires"]):
            assert canonicalize_name(requirement.name) == "setuptools", folder
            assert backend.version in requirement.specifier, folder


def test_the_sdk_and_the_exporters_telemetry_names_are_locked() -> None:
    pins = read_lock()
    packages = {package for _module, package in telemetry._OTLP_EXPORTERS.values()}
    for package in {"opentelemetry-sdk", *packages}:
        assert canonicalize_name(package) in pins, f"{package} is not in {LOCK.name}"


def test_the_lock_says_how_it_was_made() -> None:
    for lock in (LOCK, BUILD_LOCK):
        assert "#    make lock" in lock.read_text().splitlines()[1], lock.name
    assert Path(ROOT / "Makefile").read_text().count("--generate-hashes") == 2
