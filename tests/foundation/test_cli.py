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


def test_every_service_readme_names_its_nats_identity_and_tls_settings() -> None:
    """Every service reads them (RuntimeSettings): each README names each one."""
    from pathlib import Path

    from waybill_runtime.local.registry import installed_services
    from waybill_runtime.settings import RuntimeSettings, describe_settings

    repo = Path(__file__).resolve().parents[2]
    nats_files = [
        info.env_var
        for info in describe_settings(RuntimeSettings)
        if info.env_var.startswith("WAYBILL_NATS_") and info.env_var.endswith("_FILE")
    ]
    assert len(nats_files) == 5, nats_files
    missing = {
        name: [var for var in nats_files if f"`{var}`" not in readme]
        for name in installed_services()
        if (readme := (repo / "services" / name / "README.md").read_text())
    }
    assert {name: gaps for name, gaps in missing.items() if gaps} == {}


def _run_service_briefly(
    env: dict[str, str], seconds: float = 6.0
) -> tuple[int | None, str, int | None]:
    """Run the orchestrator for up to ``seconds``; then SIGTERM it.

    Returns its exit code if it ended by itself (else None), its output, and
    the exit code after SIGTERM (None if it ended by itself).
    """
    import os

    proc = subprocess.Popen(
        [sys.executable, "-m", "waybill_runtime", "run", "orchestrator"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    try:
        output, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
        return None, output, proc.returncode
    return proc.returncode, output, None


def test_a_service_without_nats_says_where_it_looked_and_what_to_check() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        code, output, after_sigterm = _run_service_briefly(
            {"NATS_URL": f"nats://127.0.0.1:{port}", "WAYBILL_HTTP_PORT": "0"}, seconds=4
        )
    assert code is None, "the service gave up instead of waiting for NATS"
    assert after_sigterm == 0, "SIGTERM while waiting for NATS must end the service cleanly"
    assert f"cannot reach NATS at nats://127.0.0.1:{port}" in output
    assert "check NATS_URL" in output


def test_a_service_whose_http_port_is_taken_says_which_setting_to_change(nats_url: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code, output, _ = _run_service_briefly(
            {
                "NATS_URL": nats_url,
                "WAYBILL_HTTP_HOST": "127.0.0.1",
                "WAYBILL_HTTP_PORT": str(port),
                "WAYBILL_SUBJECT_PREFIX": "portclash",
            },
            seconds=30,
        )
    assert code not in (None, 0)
    assert f"port {port}" in output and "WAYBILL_HTTP_PORT" in output
    assert "Traceback" not in output


def test_the_demo_is_refused_up_front_when_what_it_drives_is_missing() -> None:
    from waybill_demo import DEMO
    from waybill_runtime.errors import UserFacingError

    everything = ["odoo-gateway", "orchestrator", "wms-bridge", "carrier-router"]
    sandboxes = ["odoo", "wms", "carriers", "mail"]
    DEMO.check_possible(everything, sandboxes)
    with pytest.raises(UserFacingError, match="sandboxes"):
        DEMO.check_possible(everything, [])
    with pytest.raises(UserFacingError, match="carrier-router"):
        DEMO.check_possible(everything[:3], sandboxes)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--demo", "--orders", "0"], "0 is too few: a demo needs at least one order"),
        (["--demo", "--orders", "x"], "'x' is not a whole number"),
        (["--demo", "--timeout", "-5"], "-5 is not 0 or more seconds"),
        (["--demo", "--timeout", "0"], "0 seconds is too short"),
        (["--order-every", "-1"], "-1 is not 0 or more seconds"),
        (["--order-every", "soon"], "'soon' is not a number of seconds"),
        (
            ["--tls", "--nats-url", "nats://127.0.0.1:4222"],
            "--tls and --mtls configure the embedded server: leave them out with --nats-url",
        ),
        (["--mtls", "--nats-url", "nats://127.0.0.1:4222"], "WAYBILL_NATS_TLS_CA_FILE"),
        (["--cluster", "2"], "a cluster of 2 NATS server(s) is not supported: give 1 or 3"),
        (["--cluster", "4"], "needs an odd number of them: with 4, losing 2 stops JetStream"),
        (["--cluster", "5"], "3 already keeps JetStream working with one server down"),
        (["--cluster", "0"], "a stack needs at least one server"),
        (["--cluster", "three"], "'three' is not a whole number"),
        (
            ["--cluster", "3", "--nats-url", "nats://127.0.0.1:4222"],
            "--cluster starts embedded nats-server nodes: leave it out with --nats-url",
        ),
    ],
)
def test_up_options_that_make_no_sense_are_refused_in_one_line(
    arguments: list[str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "waybill_runtime", "up", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("orders", "cancelled", "held"),
    [(1, 0, 0), (2, 0, 1), (4, 1, 1), (6, 2, 1), (50, 3, 1), (500, 3, 1)],
)
def test_a_small_demo_cancels_and_holds_at_most_half_of_its_orders(
    orders: int, cancelled: int, held: int
) -> None:
    from waybill_demo.scenario import DemoPlan

    plan = DemoPlan.for_orders(orders)
    assert (plan.orders, plan.cancellations, plan.short_picks) == (orders, cancelled, held)
