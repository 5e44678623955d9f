"""Every `waybill` command answers --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from waybill_runtime.cli import build_parser

COMMANDS = sorted(
    name
    for action in build_parser()._subparsers._group_actions  # type: ignore[union-attr]
    for name in getattr(action, "choices", {}) or {}
)


def test_the_foundation_commands_exist() -> None:
    assert {"up", "run", "nats"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "waybill_runtime", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: waybill" in result.stdout


def test_running_an_unknown_service_names_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "waybill_runtime", "run", "no-such-service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "unknown service 'no-such-service'" in result.stderr


def test_every_installed_service_has_a_readme_and_builds_from_the_one_image_recipe() -> None:
    from pathlib import Path

    from waybill_runtime.local.registry import installed_services

    repo = Path(__file__).resolve().parents[2]
    recipe = (repo / "deploy" / "docker" / "Dockerfile").read_text()
    assert "ARG SERVICE" in recipe and "services/${SERVICE}/" in recipe
    services = installed_services()
    assert set(services) >= {
        "odoo-gateway",
        "orchestrator",
        "wms-bridge",
        "carrier-router",
        "notifier",
        "auditor",
    }
    for name in services:
        folder = repo / "services" / name
        assert (folder / "pyproject.toml").is_file(), name
        readme = (folder / "README.md").read_text()
        assert "WAYBILL_" in readme, f"{name}'s README lists no environment variables"
