"""The machine a benchmark ran on, so figures are never quoted without it."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import msgspec


class Machine(msgspec.Struct, frozen=True, kw_only=True):
    """Where and with what the figures were measured."""

    date: str
    cpu: str
    cores: int
    memory_gb: float
    os: str
    python: str
    event_loop: str
    nats_server: str
    packages: dict[str, str]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _cores() -> int:
    # The cores this process may run on (a container may see fewer than the host has).
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 0


def _nats_server_version(binary: Path) -> str:
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    return (done.stdout or done.stderr).strip().removeprefix("nats-server: ") or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe(nats_server_binary: Path, event_loop: str) -> Machine:
    """The machine, the interpreter and the versions of everything measured."""
    return Machine(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cpu=_cpu_model(),
        cores=_cores(),
        memory_gb=_memory_gb(),
        os=f"{platform.system()} {platform.release()}",
        python=f"{platform.python_implementation()} {platform.python_version()}",
        event_loop=event_loop,
        nats_server=_nats_server_version(nats_server_binary),
        packages={
            name: _version(name)
            for name in ("nats-py", "msgspec", "faststream", "waybill-runtime", "uvloop")
        },
    )
