"""`waybill up` starts a crashed service again, after growing pauses, as Kubernetes would;
the rest of the stack keeps running meanwhile."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.foundation.processes import stack_processes, wait_until_stack_gone
from waybill_runtime.local.restarts import (
    FIRST_PAUSE_S,
    LONGEST_PAUSE_S,
    STABLE_AFTER_S,
    RestartSchedule,
)

WAYBILL = [sys.executable, "-m", "waybill_runtime"]


def test_pauses_double_up_to_the_longest_and_start_over_after_a_stable_run() -> None:
    schedule = RestartSchedule()
    schedule.started("notifier", now=0.0)
    pauses, now = [], 0.0
    for _ in range(7):
        pause = schedule.crashed("notifier", now)
        assert not schedule.due("notifier", now + pause - 0.01)
        assert schedule.due("notifier", now + pause)
        now += pause
        schedule.started("notifier", now)
        pauses.append(pause)
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0, LONGEST_PAUSE_S, LONGEST_PAUSE_S]
    # Up for a minute: healthy again, the next crash waits the first pause.
    assert schedule.crashed("notifier", now + STABLE_AFTER_S) == FIRST_PAUSE_S


def test_a_crash_seen_twice_is_one_crash() -> None:
    schedule = RestartSchedule()
    schedule.started("auditor", now=0.0)
    assert schedule.crashed("auditor", 1.0) == 1.0
    assert schedule.crashed("auditor", 1.5) == 0.5  # still the same wait
    assert schedule.crashes("auditor") == 1 and schedule.waiting("auditor")


def _pid_of(service: str, state_dir: Path) -> int | None:
    for pid in stack_processes(state_dir):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[-2:] == [service.encode(), b""] and b"run" in cmdline:
            return pid
    return None


def _watched_up(
    state_dir: Path, awaited: str
) -> tuple[subprocess.Popen[str], list[str], threading.Event, threading.Event]:
    """`waybill up` on free ports, its output collected into a list as it comes; the events
    are set once it is up and once a line holds ``awaited``."""
    ports = ["--port", "0", "--monitor-port", "0"]
    proc = subprocess.Popen(
        [*WAYBILL, "up", *ports, "--order-every", "0", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    up, seen = threading.Event(), threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Waybill is up."):
                up.set()
            if awaited in line:
                seen.set()

    threading.Thread(target=read, daemon=True).start()
    return proc, lines, up, seen


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_killed_service_is_started_again_and_the_stack_stays_up(tmp_path: Path) -> None:
    proc, lines, up, restarted = _watched_up(tmp_path, "orchestrator started again")
    try:
        assert up.wait(120), f"waybill up did not come up: {lines}"
        first = _pid_of("orchestrator", tmp_path)
        assert first is not None
        os.kill(first, signal.SIGKILL)
        # A bound for a hung test: the first pause is one second.
        assert restarted.wait(60), f"the orchestrator was not started again: {lines[-5:]}"
        assert proc.poll() is None
        second = _pid_of("orchestrator", tmp_path)
        assert second is not None and second != first
        assert any("orchestrator stopped unexpectedly (exit -9)" in line for line in lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert wait_until_stack_gone(tmp_path) == []


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _streams(monitor_url: str) -> int:
    with urllib.request.urlopen(f"{monitor_url}/jsz?accounts=true", timeout=2) as answer:
        return int(json.load(answer).get("streams", 0))


def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    # A bound for a hung test, not a performance assertion.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_killed_nats_server_is_started_again_on_its_store_and_the_services_reconnect(
    tmp_path: Path,
) -> None:
    proc, lines, up, restarted = _watched_up(tmp_path, "nats-server started again")
    try:
        assert up.wait(120), f"waybill up did not come up: {lines}"
        services = {
            line.split(":", 1)[0].removeprefix("service "): line.split(":", 1)[1].strip()
            for line in lines
            if line.startswith("service ")
        }
        monitor = next(line for line in lines if line.startswith("NATS monitoring URL:"))
        monitor_url = monitor.split(":", 1)[1].strip()
        assert services and all(_ready(url) for url in services.values())
        streams = _streams(monitor_url)
        assert streams > 0
        pid = int((tmp_path / "nats" / "nats-server.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        assert restarted.wait(60), f"nats-server was not started again: {lines[-5:]}"
        assert any("nats-server stopped unexpectedly" in line for line in lines)
        assert proc.poll() is None  # the stack stayed up
        assert int((tmp_path / "nats" / "nats-server.pid").read_text()) != pid
        # The same store: every stream is back; every service reconnected on its own.
        assert _streams(monitor_url) == streams
        for name, url in services.items():
            assert _wait(functools.partial(_ready, url), 60), f"{name} did not reconnect"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert wait_until_stack_gone(tmp_path) == []
