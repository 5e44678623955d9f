"""The commands that connect, as their identities on a secured server: `waybill provision`
as the admin, `waybill dlq` as the operator; and a service that may not provision."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.bus_helpers import release_command, send
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.bus.provisioning import NotProvisioned
from waybill_runtime.errors import UserFacingError
from waybill_runtime.outcomes import PermanentError
from waybill_runtime.security.permissions import ADMIN, OPERATOR
from waybill_runtime.service import Service
from waybill_runtime.testing.secured import SecuredNats, connect_as
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.waiting import eventually


async def waybill(
    secured: SecuredNats, *args: str, state_dir: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "NATS_URL": secured.url,
        "WAYBILL_SUBJECT_PREFIX": secured.prefix,
        # No seed found by default: each call says which one it uses.
        "WAYBILL_STATE_DIR": str(state_dir),
    }
    env.pop("WAYBILL_NATS_NKEY_SEED_FILE", None)
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "waybill_runtime", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def failing_bridge(fixed: set[str], processed: list[str]) -> Service[Any]:
    service = Service("wms-bridge")

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        if command.order.ref not in fixed:
            raise PermanentError(f"unknown SKU on {command.order.ref}")
        processed.append(command.order.ref)

    return service


async def test_a_service_that_may_not_provision_waits_for_waybill_provision(
    secured_nats: SecuredNats, tmp_path: Path
) -> None:
    bridge = failing_bridge(set(), [])
    settings = secured_nats.service_settings("wms-bridge")
    # Provisioning on, as an identity without stream-admin rights: one line says what to do.
    with pytest.raises(UserFacingError, match="set WAYBILL_PROVISION=never and run"):
        async with running_service(
            bridge,
            nats_url=secured_nats.url,
            subject_prefix=secured_nats.prefix,
            **{**settings, "provision": "auto"},
        ):
            pass
    with pytest.raises(NotProvisioned, match=r"does not exist.*run `waybill provision`"):
        async with running_service(
            bridge, nats_url=secured_nats.url, subject_prefix=secured_nats.prefix, **settings
        ):
            pass
    # As itself, with provisioning on, it is refused the stream administration.
    refused = await waybill(
        secured_nats,
        "provision",
        "--nkey-seed-file",
        str(secured_nats.security.seed_file("wms-bridge")),
        state_dir=tmp_path,
    )
    assert refused.returncode != 0
    assert "permissions violation" in refused.stderr
    assert "run it as the admin identity" in refused.stderr
    provisioned = await waybill(
        secured_nats,
        "provision",
        "--nkey-seed-file",
        str(secured_nats.security.seed_file(ADMIN)),
        state_dir=tmp_path,
    )
    assert provisioned.returncode == 0, provisioned.stderr
    assert "provisioned" in provisioned.stdout
    async with running_service(
        bridge, nats_url=secured_nats.url, subject_prefix=secured_nats.prefix, **settings
    ):
        pass


async def test_the_operator_lists_and_replays_dead_letters_and_nobody_else_can(
    secured_nats: SecuredNats, tmp_path: Path
) -> None:
    admin_seed = str(secured_nats.security.seed_file(ADMIN))
    operator_seed = str(secured_nats.security.seed_file(OPERATOR))
    provisioned = await waybill(
        secured_nats, "provision", "--nkey-seed-file", admin_seed, state_dir=tmp_path
    )
    assert provisioned.returncode == 0, provisioned.stderr
    fixed: set[str] = set()
    processed: list[str] = []
    orchestrator = await connect_as(secured_nats, "orchestrator")
    admin = await connect_as(secured_nats, ADMIN)
    try:
        async with running_service(
            failing_bridge(fixed, processed),
            nats_url=secured_nats.url,
            subject_prefix=secured_nats.prefix,
            **secured_nats.service_settings("wms-bridge"),
        ):
            for ref in ("WH/OUT/1", "WH/OUT/2"):
                await send(orchestrator, secured_nats.subjects, release_command(ref))
            await eventually(
                lambda: dead_letters(admin, secured_nats.subjects),
                until=lambda d: len(d) == 2,
                what="2 dead letters",
            )
            anonymous = await waybill(secured_nats, "dlq", "list", state_dir=tmp_path)
            assert anonymous.returncode != 0
            assert "refused the operator identity (no credentials given)" in anonymous.stderr
            listed = await waybill(
                secured_nats,
                "dlq",
                "list",
                "--json",
                "--nkey-seed-file",
                operator_seed,
                state_dir=tmp_path,
            )
            assert listed.returncode == 0, listed.stderr
            rows = [json.loads(line) for line in listed.stdout.splitlines()]
            assert len(rows) == 2
            fixed.update({"WH/OUT/1", "WH/OUT/2"})
            replayed = await waybill(
                secured_nats,
                "dlq",
                "replay",
                "--all",
                "--nkey-seed-file",
                operator_seed,
                state_dir=tmp_path,
            )
            assert replayed.returncode == 0, replayed.stderr

            async def done() -> list[str]:
                return processed

            await eventually(done, until=lambda p: len(p) == 2, what="both replayed orders")
        assert await dead_letters(admin, secured_nats.subjects) == []
    finally:
        await orchestrator.close()
        await admin.close()
