"""Child processes that never outlive the parent that started them.

`waybill up` and the test harness start nats-server, sandboxes and services as
children. A child must not survive Ctrl-C, SIGTERM, an exception in the parent
or even a SIGKILL of the parent: each child runs in its own session (so a
terminal's Ctrl-C reaches only the parent, which then stops the children in
order) and asks the kernel to send it SIGTERM when the parent dies.

Linux sends that signal when the *thread* that started the child ends, not
the process: a child started from a short-lived thread (a supervisor a test
runs in a thread, which restarts a killed nats-server node) would be stopped
as soon as that thread returned. So every child is started from one thread
that lives as long as the process.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO

_PR_SET_PDEATHSIG = 1
# One worker, never retired while the process runs: the parent thread of every child.
_STARTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="child-starter")


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Ask Linux to SIGTERM this process when its parent exits."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    output: IO[bytes] | int | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child that dies with its parent.

    ``output`` receives both stdout and stderr (a file, ``subprocess.DEVNULL``,
    or None to inherit the parent's).
    """
    started = _STARTER.submit(
        subprocess.Popen,
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    return started.result()


def stop(process: subprocess.Popen[bytes], *, grace_s: float = 10.0) -> int:
    """SIGTERM the child, wait up to ``grace_s``, then SIGKILL. Returns its exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
    return process.returncode
