"""The local stack `waybill up` starts, with the partner sandboxes in the benchmark profile.

Each service is its own process, as in a container, so the CPU and memory of
each can be read apart (a one-process mesh would mix them, and would share one
event loop and one GIL between services that never share them in production).
The sandboxes are put in their benchmark profile through the setting every
sandbox command reads (``WAYBILL_SANDBOX_PROFILE``): no simulated warehouse or
tracking time, no purchase limit, concurrent webhooks; so what is measured is
Waybill, not the stand-ins' waiting.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from waybill_runtime.local.embedded_nats import EmbeddedNatsOptions
from waybill_runtime.local.stack import LocalStack
from waybill_runtime.security.permissions import ADMIN
from waybill_sandboxes.profile import PROFILE_ENV, SandboxProfile

NATS_SERVER = "nats-server"

# The carrier-router keeps under its carrier accounts' purchase limit (4 a second by
# default, the standard sandbox's); the benchmark profile's carriers have none, so
# the router is configured as it would be for accounts with a generous limit.
SERVICE_SETTINGS = {
    "WAYBILL_CARRIER_PURCHASE_RATE_PER_S": "1000",
    "WAYBILL_CARRIER_PURCHASE_BURST": "64",
}


FAILED_LOGS = Path(".waybill") / "bench-e2e-logs"
"""Where the logs of a stack whose burst failed are kept (the state folder is temporary)."""


@contextlib.contextmanager
def benchmark_stack(
    *,
    replicas: int = 1,
    cluster: int = 1,
    profile: SandboxProfile = SandboxProfile.BENCHMARK,
    settings: Mapping[str, str] | None = None,
    failed_logs: Path = FAILED_LOGS,
) -> Iterator[LocalStack]:
    """A started local stack in a temporary state folder; stopped on exit.

    ``replicas`` instances of every service, ``cluster`` embedded nats-server nodes (1, or
    3 routed into one JetStream cluster, on free ports); ``settings`` are further environment
    variables for every child (the chaos tests shorten the router's tracking
    reconciliation this way). When the body fails, every process's log is copied
    to ``failed_logs`` first, so the reason can be read after the folder is gone.
    """
    changed = {PROFILE_ENV: profile.value, **SERVICE_SETTINGS, **(settings or {})}
    previous = {name: os.environ.get(name) for name in changed}
    # The stack's children inherit this process's environment (see LocalStack._spawn).
    os.environ.update(changed)
    try:
        with tempfile.TemporaryDirectory(prefix="waybill-bench-e2e-") as state_dir:
            stack = LocalStack(
                nats_options=EmbeddedNatsOptions(
                    port=0,
                    monitor_port=0,
                    state_dir=Path(state_dir),
                    server_name="waybill-bench-e2e",
                ),
                replicas=replicas,
                cluster=cluster,
                cluster_port=0,
            )
            try:
                stack.start()
                yield stack
            except BaseException:
                shutil.rmtree(failed_logs, ignore_errors=True)
                shutil.copytree(stack.log_dir, failed_logs, dirs_exist_ok=True)
                print(f"the stack's logs are kept in {failed_logs}", flush=True)
                raise
            finally:
                stack.stop()
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def process_ids(stack: LocalStack) -> dict[str, int]:
    """Every process of the stack by name: services, sandboxes and nats-server."""
    pids = {name: process.pid for name, process in stack.children.items()}
    if stack.nats is not None and stack.nats.pid is not None:
        pids[NATS_SERVER] = stack.nats.pid
    return pids


def admin_seed_file(stack: LocalStack) -> str | None:
    """The admin identity's seed, to read streams and consumers (None: no identities)."""
    return None if stack.security is None else str(stack.security.seed_file(ADMIN))
