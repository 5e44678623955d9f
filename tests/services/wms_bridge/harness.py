"""A wms-bridge running in-process against a WMS sandbox that posts webhooks to it.

The bridge's HTTP port is chosen before either starts, so the sandbox can be
told where to send its webhooks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import msgspec
from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import release_command, send
from waybill_contracts import Event, Message, SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.dead_letters import DeadLetter
from waybill_runtime.local.ports import free_port
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters, settled, stored_in
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.delivery import DeliveryMode, DeliveryPolicy
from waybill_sandboxes.server import serve
from waybill_sandboxes.signing import wms_signature_headers
from waybill_sandboxes.wms import WmsConfig, WmsSandbox
from waybill_wms_bridge.app import service

E = TypeVar("E", bound=Event)

API_KEY = "test-wms-key"
WEBHOOK_SECRET = "test-wms-webhook-secret"
# Quick stages keep each test short; the order of stages is what matters.
QUICK_STAGES = {"accepted": 0.02, "picked": 0.02, "packed": 0.02, "shipped": 0.02}
# Long enough that only the first round (1 s after start) runs, unless a test wants more.
NO_FURTHER_POLLS_S = 3600.0


LOSE_EVERY_WEBHOOK = DeliveryPolicy(mode=DeliveryMode.LOSSY, drop_rate=1.0)
"""The WMS sandbox's webhooks all lost: only the poll (or a release) reports an order."""


@dataclass
class Rig:
    """The bridge, its WMS sandbox and a NATS client to talk to both sides."""

    nc: NatsClient
    subjects: SubjectMap
    wms: WmsSandbox
    wms_url: str
    bridge_url: str

    async def send(self, message: Message) -> str:
        """Publish a command as the orchestrator would; returns its id."""
        return await send(self.nc, self.subjects, message)

    async def release(self, ref: str) -> ReleaseToWarehouse:
        """Send the example release command for order ``ref``."""
        command = release_command(ref)
        await self.send(command)
        return command

    async def stored(self) -> list[tuple[str, Event]]:
        """Every event in the events stream as ``(message id, event)``, oldest first."""
        found = await stored_in(self.nc, self.subjects, self.subjects.events_stream)
        return [(d.context.id, d.message) for d in found if isinstance(d.message, Event)]

    async def events(self, event_type: type[E], order_ref: str | None = None) -> list[E]:
        """Stored events of one type (about one order when ``order_ref`` is given)."""
        return [
            event
            for _id, event in await self.stored()
            if isinstance(event, event_type)
            and (order_ref is None or event.business_key() == order_ref)
        ]

    async def wait_for(
        self, event_type: type[E], order_ref: str | None = None, count: int = 1
    ) -> list[E]:
        """Wait until at least ``count`` such events are stored; returns them all."""

        async def probe() -> list[E]:
            return await self.events(event_type, order_ref)

        return await eventually(
            probe,
            until=lambda found: len(found) >= count,
            what=f"{count} {event_type.__name__} for {order_ref or 'any order'}",
        )

    async def dead_letters(self) -> list[DeadLetter]:
        return await dead_letters(self.nc, self.subjects)

    async def poll_rounds(self) -> int:
        """How many rounds the bridge's reconciliation poll has made (its order listings)."""
        return self.wms.calls().get("list_orders", 0)

    async def facts_seen(self) -> float:
        """The bridge's ``waybill_wms_facts_total``, new and repeats, all stages (from
        /metrics): how many facts the ledger was asked about."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.bridge_url}/metrics") as response,
        ):
            text = await response.text()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("waybill_wms_facts_total{")
        )

    async def commands_settled(self) -> None:
        """Wait until the bridge has acknowledged every command (none pending or unacked)."""
        await settled(self.nc, self.subjects, "wms-bridge")

    async def post_webhook(
        self,
        body: bytes,
        *,
        headers: dict[str, str] | None = None,
        secret: str = WEBHOOK_SECRET,
        timestamp: int | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """POST a webhook to the bridge, signed as the WMS signs unless ``headers`` are given."""
        sent = headers if headers is not None else signed_headers(body, secret, timestamp)
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.bridge_url}/webhooks/wms", data=body, headers=sent) as response,
        ):
            return response.status, await response.json(content_type=None)


def signed_headers(
    body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """Headers exactly as the WMS sandbox signs a webhook."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        **wms_signature_headers(secret, body, timestamp=stamp),
    }


@contextlib.asynccontextmanager
async def wms_and_bridge(
    nc: NatsClient,
    nats_url: str,
    nats_prefix: str,
    *,
    wms: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[Rig]:
    """A WMS sandbox (``wms``: WmsConfig fields) and the bridge (``settings``) wired together."""
    port = free_port()
    bridge_url = f"http://127.0.0.1:{port}"
    config = msgspec.structs.replace(
        WmsConfig(
            api_key=API_KEY,
            webhook_secret=WEBHOOK_SECRET,
            webhook_url=f"{bridge_url}/webhooks/wms",
            stage_delays_s=dict(QUICK_STAGES),
            seed=7,
        ),
        **(wms or {}),
    )
    sandbox = WmsSandbox(config)
    options: dict[str, Any] = {
        "wms_api_key": API_KEY,
        "wms_webhook_secret": WEBHOOK_SECRET,
        "wms_reconcile_interval_s": NO_FURTHER_POLLS_S,
        "retry_backoff_s": (0.1, 0.2),
        "max_deliver": 30,
        "wms_timeout_s": 2.0,
    }
    options.update(settings)
    async with serve(sandbox.app()) as running:
        options.setdefault("wms_url", running.url)
        async with running_service(
            service, nats_url=nats_url, subject_prefix=nats_prefix, http_port=port, **options
        ):
            yield Rig(
                nc=nc,
                subjects=SubjectMap(nats_prefix),
                wms=sandbox,
                wms_url=running.url,
                bridge_url=bridge_url,
            )
