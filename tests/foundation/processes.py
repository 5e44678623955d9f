"""Finding the processes of one local stack, by the state folder they were started with.

nats-server names the folder on its command line; sandboxes and services
carry it in ``WAYBILL_STATE_DIR``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path


def _live_processes() -> Iterator[tuple[int, str, list[str]]]:
    """(pid, command line, environment) of every live process we may read."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes().decode(errors="replace").split("\0")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if "State:\tZ" not in status:
            yield int(proc.name), cmdline, environ


def nats_servers_using(state_dir: Path) -> list[int]:
    """PIDs of live nats-server processes whose command line mentions ``state_dir``."""
    marker = str(state_dir.resolve())
    return [
        pid
        for pid, cmdline, _ in _live_processes()
        if "nats-server" in cmdline and marker in cmdline
    ]


def stack_processes(state_dir: Path) -> list[int]:
    """PIDs of every live process of the stack started with ``state_dir``."""
    wanted = {f"WAYBILL_STATE_DIR={state_dir}", f"WAYBILL_STATE_DIR={state_dir.resolve()}"}
    return [
        pid
        for pid, cmdline, environ in _live_processes()
        if "pytest" not in cmdline and not wanted.isdisjoint(environ)
    ] + nats_servers_using(state_dir)


def _wait_until_none(
    find: Callable[[Path], list[int]], state_dir: Path, timeout_s: float
) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        left = find(state_dir)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def wait_until_no_nats_server(state_dir: Path, timeout_s: float = 15.0) -> list[int]:
    """Poll until no nats-server of ``state_dir`` is left; return the survivors at the deadline."""
    return _wait_until_none(nats_servers_using, state_dir, timeout_s)


def wait_until_stack_gone(state_dir: Path, timeout_s: float = 30.0) -> list[int]:
    """Poll until no process of the stack is left; return the survivors at the deadline."""
    return _wait_until_none(stack_processes, state_dir, timeout_s)
