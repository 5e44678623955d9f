"""A demo run of the local stack, as `make demo` runs it, looked at as a local attacker would:
no secret on any process's command line (what `ps` shows every user), none of the run's
secrets (partner keys, webhook secrets, the Odoo token and password, nkey seeds, the API
signing key and tokens) and none of the customers' names, emails, phones or streets in any
log, and every file Waybill made readable by its owner only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.foundation.processes import stack_processes
from waybill_runtime.local.registry import load_services

WAYBILL = [sys.executable, "-m", "waybill_runtime"]


def command_lines() -> list[str]:
    """Every process's command line, as ``ps -eo args`` shows them to any local user."""
    lines = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except (OSError, UnicodeDecodeError):
                continue
    return lines


def environment_of(pid: int) -> dict[str, str]:
    try:
        raw = (Path("/proc") / str(pid) / "environ").read_bytes().decode(errors="replace")
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def secret_variables() -> set[str]:
    """The variables holding secrets: every service's secret settings, the sandboxes' own."""
    return {
        variable for service in load_services().values() for variable in service.describe().secrets
    }


def secrets_in(environments: list[dict[str, str]], variables: set[str]) -> set[str]:
    """The secret values the stack handed its processes (JSON settings opened up)."""
    found: set[str] = set()
    for environment in environments:
        for name, value in environment.items():
            if not value or not (name in variables or name.startswith("WAYBILL_SANDBOX_")):
                continue
            found.add(value)
            try:
                document: Any = json.loads(value)
            except ValueError:
                continue
            if isinstance(document, list):
                found.update(e["secret"] for e in document if isinstance(e, dict) and "secret" in e)
    return found


def odoo_customers(url: str, password: str) -> list[dict[str, Any]]:
    """Every customer the Odoo sandbox holds, read over JSON-RPC as the gateway reads Odoo."""

    def call(service: str, method: str, *args: Any) -> Any:
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": list(args)},
            "id": 1,
        }
        request = urllib.request.Request(
            f"{url}/jsonrpc",
            data=msgspec.json.encode(payload),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)["result"]

    uid = call("common", "login", "waybill", "admin", password)
    fields = {"fields": ["name", "email", "phone", "street"]}
    domain = [[["ref", "!=", False]]]
    found: list[dict[str, Any]] = call(
        "object", "execute_kw", "waybill", uid, password, "res.partner", "search_read", domain,
        fields,
    )  # fmt: skip
    return found


def written(state: Path) -> dict[Path, str]:
    """Every log the run wrote: one per process, and the NATS server's."""
    logs = [*(state / "logs").iterdir(), *(state / "nats").glob("*.log")]
    return {path: path.read_text(errors="replace") for path in logs}


@pytest.mark.long  # a whole demo run, its processes and logs read: make long
def test_a_demo_run_shows_no_secret_in_ps_and_logs_no_secret_or_personal_data(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    run = subprocess.Popen(
        [*WAYBILL, "up", "--demo", "--orders", "4", "--port", "0", "--monitor-port", "0",
         "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert run.stdout is not None
        printed: list[str] = []
        for line in run.stdout:
            printed.append(line)
            if line.startswith("demo:"):
                break
        assert printed and printed[-1].startswith("demo:"), "".join(printed)
        # The stack is up and the demo is running: what every local user may see now.
        visible = command_lines()
        environments = [environment_of(pid) for pid in stack_processes(state)]
        odoo_password = next(
            e["WAYBILL_SANDBOX_ODOO_ADMIN_PASSWORD"]
            for e in environments
            if "WAYBILL_SANDBOX_ODOO_ADMIN_PASSWORD" in e
        )
        odoo_url = next(line.split()[2] for line in printed if line.startswith("Odoo sandbox:"))
        customers = odoo_customers(odoo_url, odoo_password)
        rest, _ = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, "".join(printed) + rest

    secrets = secrets_in(environments, secret_variables())
    secrets.update(seed.read_text().strip() for seed in (state / "nats" / "identities").iterdir())
    # The API signing key (its base64 body, line by line) and the tokens printed on the console.
    pem = (state / "api" / "signing-key.pem").read_text().splitlines()
    secrets.update(line for line in pem if line and not line.startswith("-----"))
    tokens = [line.split()[-1] for line in printed if line.startswith(("  viewer:", "  operator:"))]
    assert len(tokens) == 2
    secrets.update(tokens)
    assert len(secrets) >= 18  # keys, webhook secrets, the Odoo token and password, seeds...
    assert [secret for secret in secrets if any(secret in line for line in visible)] == []

    personal = {
        value
        for customer in customers
        for value in (customer["name"], customer["email"], customer["phone"], customer["street"])
        if value
    }
    assert len(customers) >= 3 and len(personal) >= 4 * len(customers) - 1
    logs = written(state)
    assert len(logs) >= 10
    leaks = {
        path.name: sorted(
            found
            for found in secrets | personal
            if found in text or json.dumps(found)[1:-1] in text
        )
        for path, text in logs.items()
    }
    assert {name: found for name, found in leaks.items() if found} == {}
    # The emails the notifier sent are logged at DEBUG only (their NotificationSent records
    # them); that line hashes the recipient: tests/services/notifier/test_mailer.py.
    assert "accepted for" not in logs[state / "logs" / "notifier.log"]

    for path in [state, *state.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} is {oct(mode)}"
    assert os.stat(state).st_uid == os.getuid()
