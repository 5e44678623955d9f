"""`waybill ping SERVICE` (what the charts' `helm test` Pod runs) against a real nats-server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.security.permissions import OPERATOR
from waybill_runtime.service import Service
from waybill_runtime.testing.secured import SecuredNats, provision_all
from waybill_runtime.testing.services import running_service


def bridge() -> Service[Any]:
    service = Service("wms-bridge")

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        return None

    return service


async def ping(
    secured: SecuredNats, state_dir: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "NATS_URL": secured.url,
        "WAYBILL_SUBJECT_PREFIX": secured.prefix,
        "WAYBILL_STATE_DIR": str(state_dir),
        "WAYBILL_NATS_NKEY_SEED_FILE": str(secured.security.seed_file(OPERATOR)),
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "waybill_runtime", "ping", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def test_a_running_service_answers_ping_and_a_stopped_one_does_not(
    secured_nats: SecuredNats, tmp_path: Path
) -> None:
    # As in a cluster: provisioned by the admin, the service as its own identity.
    await provision_all(secured_nats)
    async with running_service(
        bridge(),
        nats_url=secured_nats.url,
        subject_prefix=secured_nats.prefix,
        **secured_nats.service_settings("wms-bridge"),
    ):
        answered = await ping(secured_nats, tmp_path, "wms-bridge")
        assert answered.returncode == 0, answered.stderr
        assert f"{secured_nats.prefix}-wms-bridge" in answered.stdout
        assert "answered" in answered.stdout
        # Two instances were asked for; one runs: not enough.
        short = await ping(secured_nats, tmp_path, "wms-bridge", "--expect", "2", "--timeout", "1")
        assert short.returncode != 0
        assert "1 instance(s) of wms-bridge answered" in short.stderr
        assert "2 expected" in short.stderr
    silent = await ping(secured_nats, tmp_path, "wms-bridge", "--timeout", "1")
    assert silent.returncode != 0
    assert "0 instance(s) of wms-bridge answered" in silent.stderr
    assert f"under subject prefix {secured_nats.prefix}" in silent.stderr


async def test_ping_without_the_operator_s_seed_is_refused(
    secured_nats: SecuredNats, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "NATS_URL": secured_nats.url,
        "WAYBILL_SUBJECT_PREFIX": secured_nats.prefix,
        "WAYBILL_STATE_DIR": str(tmp_path),
    }
    env.pop("WAYBILL_NATS_NKEY_SEED_FILE", None)
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "waybill_runtime", "ping", "wms-bridge", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert refused.returncode != 0
    assert "refused the operator identity (no credentials given)" in refused.stderr
