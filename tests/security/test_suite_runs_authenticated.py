"""The test suite's own server runs with authentication on, and services in tests as themselves.

Every test that runs a service through ``running_service`` inherits this, so
these tests prove the suite as a whole exercises production's permissions.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import release_command, send
from waybill_contracts import SubjectMap
from waybill_contracts.commands import BookShipment, ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.service import Service
from waybill_runtime.testing.authenticated import HARNESS, AuthenticatedServer
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.waiting import eventually


def _authorized_user(server: AuthenticatedServer, connection_name: str) -> str | None:
    with urllib.request.urlopen(f"{server.monitor_url}/connz?auth=1", timeout=5) as response:
        connz = json.load(response)
    for connection in connz["connections"]:
        if connection.get("name") == connection_name:
            return str(connection.get("authorized_user"))
    return None


def _violations(server: AuthenticatedServer, subject: str) -> list[str]:
    log = server.log_path.read_text(errors="replace").splitlines()
    return [line for line in log if "Violation" in line and subject in line]


async def test_connecting_without_credentials_is_refused(nats_server: AuthenticatedServer) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            nats_server.bare_url, connect_timeout=5, allow_reconnect=False, max_reconnect_attempts=0
        )


async def test_a_service_in_a_test_runs_as_its_own_identity_with_its_declared_rights(
    nats_server: AuthenticatedServer, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    subjects = SubjectMap(nats_prefix)
    service = Service("wms-bridge", new_events_only=False)
    forbidden = subjects.subject_for(BookShipment)  # carrier-router's command
    handled: list[str] = []

    @service.handles(ReleaseToWarehouse)
    async def release(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        # Beyond its declaration: the server must refuse it, whoever the test is.
        await ctx.runtime.nc.publish(forbidden, b"{}")
        handled.append(command.order.ref)

    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        user = _authorized_user(nats_server, "wms-bridge")
        assert user is not None and user != HARNESS
        assert user.startswith("U"), f"wms-bridge connected as {user}, not as an nkey identity"
        await send(nc, subjects, release_command("WH/OUT/7"))
        await eventually(lambda: _async(handled), what="the release handled")
        refused = await eventually(
            lambda: _async(_violations(nats_server, forbidden)),
            what=f"the server refusing wms-bridge's publish to {forbidden}",
        )
    assert "Publish" in refused[0]


async def test_a_stopped_service_s_identity_is_forgotten(
    nats_server: AuthenticatedServer, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    service = Service("notifier", new_events_only=False)
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
        user = _authorized_user(nats_server, "notifier")
        assert user is not None
        seeds = list((nats_server.server.state_dir / "identities").glob(f"notifier.{nats_prefix}*"))
        assert len(seeds) == 1
        kept = tmp_path / "kept.nk"
        shutil.copy(seeds[0], kept)
    assert not seeds[0].exists(), "the seed of a stopped service was left behind"
    # The next enrollment reloads the server without the stopped one.
    async with running_service(Service("auditor"), nats_url=nats_url, subject_prefix=nats_prefix):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(
                nats_server.bare_url,
                nkeys_seed=str(kept),
                connect_timeout=5,
                allow_reconnect=False,
                max_reconnect_attempts=0,
            )


async def _async(value: Any) -> Any:
    return value
