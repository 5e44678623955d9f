"""Finding nats-server processes by the state folder they were started with."""

from __future__ import annotations

import time
from pathlib import Path


def nats_servers_using(state_dir: Path) -> list[int]:
    """PIDs of live nats-server processes whose command line mentions ``state_dir``."""
    marker = str(state_dir.resolve())
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if "nats-server" in cmdline and marker in cmdline and "State:\tZ" not in status:
            pids.append(int(proc.name))
    return pids


def wait_until_no_nats_server(state_dir: Path, timeout_s: float = 15.0) -> list[int]:
    """Poll until no nats-server of ``state_dir`` is left; return the survivors at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = nats_servers_using(state_dir)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def stack_processes(state_dir: Path) -> list[int]:
    """PIDs of live processes of the local stack started with ``state_dir``.

    nats-server names the folder on its command line; sandboxes and services
    carry it in ``WAYBILL_STATE_DIR``.
    """
    marker = str(state_dir)
    resolved = str(state_dir.resolve())
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            environ = (proc / "environ").read_bytes().decode(errors="replace").split("\0")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if "State:\tZ" in status or "pytest" in cmdline:
            continue
        in_cmdline = "nats-server" in cmdline and resolved in cmdline
        in_environ = f"WAYBILL_STATE_DIR={marker}" in environ or (
            f"WAYBILL_STATE_DIR={resolved}" in environ
        )
        if in_cmdline or in_environ:
            pids.append(int(proc.name))
    return pids


def wait_until_stack_gone(state_dir: Path, timeout_s: float = 30.0) -> list[int]:
    """Poll until no process of the stack is left; return the survivors at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = stack_processes(state_dir)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)
