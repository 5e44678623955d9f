"""Rotating and revoking an identity's nkey on a running, secured server (issue #12):
rotation loses no message of a running service, revocation cuts and refuses the old key."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.runtime.bus_helpers import release_command, send
from waybill_contracts import SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.security.authorization import render_authorization
from waybill_runtime.security.nkeys_store import NkeyUser, public_key_of
from waybill_runtime.security.permissions import (
    OPERATOR,
    admin_identity,
    inbox_prefix,
    operator_identity,
)
from waybill_runtime.security.rotation import (
    RotationError,
    has_key,
    revoke,
    rotate,
    running_server,
    with_key_added,
    with_key_removed,
)
from waybill_runtime.service import Service
from waybill_runtime.testing.secured import SecuredNats, connect_as, provision_all
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.waiting import eventually

WAYBILL = [sys.executable, "-m", "waybill_runtime"]
OLD = "UOLDKEYOLDKEYOLDKEYOLDKEYOLDKEYOLDKEYOLDKEYOLDKEYOLDKEY"
NEW = "UNEWKEYNEWKEYNEWKEYNEWKEYNEWKEYNEWKEYNEWKEYNEWKEYNEWKEY"
OTHER = "UOTHERKEYOTHERKEYOTHERKEYOTHERKEYOTHERKEYOTHERKEYOTHER"


def keys_of(secured: SecuredNats) -> dict[str, int]:
    """Connected clients by the key they authenticated with."""
    with urllib.request.urlopen(f"{secured.server.monitor_url}/connz?auth=1", timeout=5) as r:
        connz = json.load(r)
    counts: dict[str, int] = {}
    for connection in connz["connections"]:
        user = connection.get("authorized_user", "")
        counts[user] = counts.get(user, 0) + 1
    return counts


def test_a_key_is_added_with_the_same_rights_and_removed_alone() -> None:
    identities = [operator_identity(SubjectMap("t")), admin_identity()]
    users = {
        identities[0].name: NkeyUser(identities[0].name, Path("a"), OLD),
        identities[1].name: NkeyUser(identities[1].name, Path("b"), OTHER),
    }
    config = "port: 1\n" + render_authorization(identities, users) + "tls {\n  x: 1\n}\n"
    both = with_key_added(config, OLD, NEW)
    assert with_key_added(both, OLD, NEW) == both  # a second run adds nothing
    old_entry = both.split(json.dumps(OLD))[1].split(json.dumps(OTHER))[0]
    assert json.dumps(NEW) in old_entry  # the copy follows the old entry
    new_entry = both.split(json.dumps(NEW))[1].split(json.dumps(OTHER))[0]
    rights = old_entry.split(json.dumps(NEW))[0].rsplit("{", 1)[0]
    assert rights.strip() and rights.strip() in new_entry
    after = with_key_removed(both, OLD)
    assert not has_key(after, OLD) and has_key(after, NEW) and has_key(after, OTHER)
    assert after.startswith("port: 1\n") and after.endswith("tls {\n  x: 1\n}\n")
    assert after.count("{") == after.count("}") == config.count("{")
    assert with_key_removed(after, OLD) == after
    with pytest.raises(RotationError, match="no user with the key"):
        with_key_added(config, NEW, NEW.replace("NEW", "ONE"))


def counting_bridge(handled: list[str]) -> Service[Any]:
    service = Service("wms-bridge")

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        handled.append(command.order.ref)

    return service


async def test_rotating_a_running_services_key_loses_no_message(
    secured_nats: SecuredNats,
) -> None:
    name = "wms-bridge"
    state_dir = secured_nats.server.state_dir
    seed = secured_nats.security.seed_file(name)
    old_key = public_key_of(seed)
    await provision_all(secured_nats)
    handled: list[str] = []
    refs = [f"WH/OUT/{i}" for i in range(60)]
    orchestrator = await connect_as(secured_nats, "orchestrator")
    said: list[str] = []
    try:
        async with running_service(
            counting_bridge(handled),
            nats_url=secured_nats.url,
            subject_prefix=secured_nats.prefix,
            **secured_nats.service_settings(name),
        ):
            await eventually(
                lambda: _async(keys_of(secured_nats).get(old_key, 0)),
                until=lambda n: n >= 1,
                what="the service connected with its first key",
            )

            async def flow() -> None:
                for ref in refs:
                    await send(orchestrator, secured_nats.subjects, release_command(ref))
                    await asyncio.sleep(0.05)

            sending = asyncio.create_task(flow())
            await asyncio.sleep(0.5)  # messages already flow when the rotation starts
            new_key = await asyncio.to_thread(rotate, state_dir, name, say=said.append)
            await sending
            await eventually(
                lambda: _async(sorted(handled)),
                until=lambda h: len(h) >= len(refs),
                what="every command handled",
                timeout_s=30,
            )
            await asyncio.sleep(1.0)  # a redelivery would show up by now
            assert sorted(handled) == sorted(refs)  # each exactly once
            connected = keys_of(secured_nats)
            assert connected.get(new_key, 0) >= 1
            assert old_key not in connected
    finally:
        await orchestrator.close()
    assert new_key != old_key and public_key_of(seed) == new_key
    assert [line[:3] for line in said] == ["1/5", "2/5", "3/5", "4/5", "5/5"], said
    assert "no connection uses the old key" in said[3]
    config = secured_nats.server.config_path.read_text()
    assert not has_key(config, old_key) and has_key(config, new_key)
    assert oct(seed.stat().st_mode & 0o777) == "0o600"
    assert not list(seed.parent.glob("*.next"))
    assert secured_nats.server.running()


async def test_a_revoked_key_is_cut_within_seconds_and_refused(
    secured_nats: SecuredNats, tmp_path: Path
) -> None:
    state_dir = secured_nats.server.state_dir
    kept = tmp_path / "stolen.nk"
    shutil.copy(secured_nats.security.seed_file(OPERATOR), kept)
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    operator = await nats.connect(
        secured_nats.url,
        nkeys_seed=str(kept),
        inbox_prefix=inbox_prefix(OPERATOR),
        closed_cb=on_closed,
        max_reconnect_attempts=3,
        reconnect_time_wait=0.2,
    )
    said: list[str] = []
    try:
        await asyncio.to_thread(revoke, state_dir, OPERATOR, say=said.append)
        await asyncio.wait_for(closed.wait(), timeout=5)
    finally:
        await operator.close()
    assert "3/3 no connection uses the revoked key" in said[2]
    assert not secured_nats.security.seed_file(OPERATOR).exists()
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await nats.connect(
            secured_nats.url,
            nkeys_seed=str(kept),
            inbox_prefix=inbox_prefix(OPERATOR),
            connect_timeout=3,
            max_reconnect_attempts=0,
            allow_reconnect=False,
        )
    # Everyone else is still served.
    admin = await connect_as(secured_nats, "admin")
    await admin.close()
    with pytest.raises(RotationError, match="no nkey seed"):
        rotate(state_dir, OPERATOR, say=said.append)


def test_the_cli_rotates_the_embedded_servers_identity(secured_nats: SecuredNats) -> None:
    state_dir = secured_nats.server.state_dir
    server = running_server(state_dir)
    assert server is not None and server.pid == secured_nats.server.pid
    old_key = public_key_of(secured_nats.security.seed_file(OPERATOR))
    env = {k: v for k, v in os.environ.items() if k != "WAYBILL_STATE_DIR"}
    done = subprocess.run(
        [*WAYBILL, "nats", "rotate", OPERATOR, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line[:3] for line in lines] == ["1/5", "2/5", "3/5", "4/5", "5/5"], lines
    new_key = public_key_of(secured_nats.security.seed_file(OPERATOR))
    assert new_key in lines[0] and old_key in lines[4]
    config = secured_nats.server.config_path.read_text()
    assert has_key(config, new_key) and not has_key(config, old_key)


async def _async(value: Any) -> Any:
    return value
