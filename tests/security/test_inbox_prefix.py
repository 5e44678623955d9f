"""A running service subscribes only under its own inbox prefix (besides its queries and $SRV):
its pull inboxes, publish acks and requests all honour nats-py's ``inbox_prefix``."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import release_command, send
from waybill_contracts import SubjectMap
from waybill_runtime.local.registry import load_services
from waybill_runtime.security.permissions import inbox_prefix
from waybill_runtime.testing.authenticated import AuthenticatedServer
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.waiting import eventually


def subscriptions_of(server: AuthenticatedServer, connection_name: str) -> list[str]:
    with urllib.request.urlopen(f"{server.monitor_url}/connz?subs=1", timeout=5) as response:
        connz = json.load(response)
    return [
        subject
        for connection in connz["connections"]
        if connection.get("name") == connection_name
        for subject in connection.get("subscriptions_list", [])
    ]


async def test_every_subscription_of_a_running_service_is_its_own(
    nats_server: AuthenticatedServer, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    name = "wms-bridge"
    service = load_services([name])[name]
    subjects = SubjectMap(nats_prefix)
    declaration = service.describe(subject_prefix=nats_prefix)
    settings: dict[str, Any] = {
        "wms_api_key": "k",
        "wms_webhook_secret": "s",
        **service.local_settings,
    }
    async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix, **settings):
        # A command makes it publish (publish acks) while it pulls (pull inboxes).
        await send(nc, subjects, release_command("WH/OUT/1"))
        subscribed = await eventually(
            lambda: _subscriptions(nats_server, name),
            until=lambda subs: any(s.startswith(inbox_prefix(name)) for s in subs),
            what="the service's subscriptions",
        )
    own = {subjects.query_subject(name, q) for q in declaration.queries}
    strays = [
        s
        for s in subscribed
        if not s.startswith(f"{inbox_prefix(name)}.") and not s.startswith("$SRV.") and s not in own
    ]
    assert strays == []


async def _subscriptions(server: AuthenticatedServer, name: str) -> list[str]:
    return subscriptions_of(server, name)
