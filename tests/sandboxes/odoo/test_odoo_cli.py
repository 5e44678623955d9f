"""``waybill sandbox odoo``: options, refusals, and a real foreground run stopped by SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from waybill_sandboxes.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--orders", "-1"], "-1 is negative"),
        (["--customers", "many"], "'many' is not a whole number"),
        (["--version", "15"], "invalid choice: 15"),
        (["--port", "70000"], "not a TCP port"),
        (["--orders", "2", "--customers", "0"], "orders need at least one customer"),
        (["--orders", "1", "--delivered-orders", "2"], "delivered (2) cannot exceed orders (1)"),
        (["--delivered-orders", "-1"], "-1 is negative"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["odoo", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_taken_port_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        assert main(["odoo", "--port", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("waybill sandbox odoo: error: cannot listen on")


def test_the_sandbox_runs_in_the_foreground_prints_credentials_and_stops_on_sigterm() -> None:
    command = [
        sys.executable,
        "-m",
        "waybill_sandboxes",
        "odoo",
        "--port",
        "0",
        "--version",
        "19",
        "--orders",
        "1",
        "--seed",
        "4",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            banner.append(line)
            if "admin:" in line or not line:
                break
        text = "".join(banner)
        url = re.search(r"listening on (http://\S+)", text)
        assert url is not None, text
        with urllib.request.urlopen(f"{url.group(1)}/_sandbox/odoo/info", timeout=10) as answer:
            info = json.load(answer)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Odoo 19.0 sandbox" in text and "user 'admin' password 'admin'" in text
    assert info["users"][0]["api_key"] in text
    assert (info["version"], info["db"]) == ("19.0", "waybill")
