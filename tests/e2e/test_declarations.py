"""`waybill services --json` says what the services really do: checked against an e2e run."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from tests.e2e.mesh import ALL_SERVICES, running_mesh
from tests.e2e.test_order_to_ship import all_shipped, release_orders, settled_shipped_emails
from waybill_contracts import MESSAGE_TYPES, MessageKind
from waybill_contracts.envelope import SOURCE_PREFIX
from waybill_runtime.declaration import Declaration
from waybill_runtime.testing.streams import stored_messages

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


def declarations(prefix: str) -> dict[str, Declaration]:
    """What `waybill services --json` prints, as a user would run it."""
    printed = subprocess.run(
        [sys.executable, "-m", "waybill_runtime", "services", "--json", "--subject-prefix", prefix],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return {d.name: d for d in msgspec.json.decode(printed, type=list[Declaration])}


async def filter_subjects(nc: NatsClient, stream: str, durable: str) -> set[str]:
    info = await nc.jetstream().consumer_info(stream, durable)
    config: Any = info.config
    return set(config.filter_subjects or ([config.filter_subject] if config.filter_subject else []))


async def test_every_service_consumes_and_publishes_what_its_declaration_says(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    declared = declarations(nats_prefix)
    assert set(ALL_SERVICES) <= set(declared)
    async with running_mesh(
        nc, nats_url, nats_prefix, services=ALL_SERVICES, tmp_state_dir=str(tmp_path)
    ) as mesh:
        refs = release_orders(mesh, 3, seed=21)
        await all_shipped(mesh, refs)
        await settled_shipped_emails(mesh, refs, timeout_s=60)

        # Subscribed: each durable is filtered on exactly the subjects the declaration lists.
        for name in ALL_SERVICES:
            by_durable: dict[tuple[str, str], set[str]] = defaultdict(set)
            for consumed in declared[name].consumes:
                by_durable[(consumed.stream, consumed.durable)].add(consumed.subject)
            assert by_durable, f"{name} declares nothing it consumes"
            for (stream, durable), subjects in by_durable.items():
                if declared[name].watches_mesh:  # the auditor: all, known or not
                    [spec] = [s for s in mesh.subjects.streams if s.name == stream]
                    subjects = set(spec.subjects)
                assert await filter_subjects(nc, stream, durable) == subjects, durable

        # Published: every event and command in the streams came from a service that declares it.
        sent_by: dict[str, set[str]] = defaultdict(set)
        for message_type in MESSAGE_TYPES:
            if message_type.kind in (MessageKind.EVENT, MessageKind.COMMAND):
                for _, context in await stored_messages(nc, mesh.subjects, message_type):
                    sent_by[context.source.removeprefix(SOURCE_PREFIX)].add(context.type)
    for name in ("odoo-gateway", "orchestrator", "wms-bridge", "carrier-router", "notifier"):
        allowed = {m.type for m in declared[name].publishes} | {
            m.type for m in declared[name].sends
        }
        assert sent_by[name], f"{name} published nothing in the run"
        assert sent_by[name] <= allowed, f"{name} published undeclared {sent_by[name] - allowed}"
    assert not sent_by["auditor"]  # it only watches
    assert set(sent_by) <= set(declared)
