"""A carrier-router running in-process against both carrier sandboxes, which post
their tracking webhooks back to it.

The router's HTTP port is chosen before anything starts, so the sandboxes can
be told where to send webhooks. By default labels stay at label_created (long
tracking delays); tracking tests ask for quick ones.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import msgspec
from aiohttp import web
from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import send
from waybill_carrier_router.app import service
from waybill_contracts import Decoded, Event, Message, SubjectMap
from waybill_contracts.commands import BookShipment
from waybill_contracts.examples import example_of
from waybill_contracts.model import ServiceLevel
from waybill_runtime.bus.dead_letters import DeadLetter
from waybill_runtime.local.ports import free_port
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters, settled, stored_in
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.carriers import CarrierConfig, EasyPostSandbox, ShippoSandbox
from waybill_sandboxes.server import serve
from waybill_sandboxes.signing import easypost_signature_headers, shippo_signature_headers

E = TypeVar("E", bound=Event)

A_KEY, A_SECRET = "EZTK-test-key", "carrier-a-webhook-secret"
B_KEY, B_SECRET = "shippo_test_key", "carrier-b-webhook-secret"
LABEL_CREATED_ONLY = [3600.0]
QUICK_WALK = [0.05, 0.05, 0.05]


def booking(
    shipment_id: str,
    *,
    country: str = "NL",
    weight_kg: float = 1.2,
    level: ServiceLevel = ServiceLevel.STANDARD,
    excluded: tuple[str, ...] = (),
) -> BookShipment:
    """The example booking, for ``shipment_id`` (order ``WH/OUT/<shipment_id>``)."""
    example = example_of(BookShipment)
    return msgspec.structs.replace(
        example,
        shipment_id=shipment_id,
        order_ref=f"WH/OUT/{shipment_id}",
        ship_to=msgspec.structs.replace(example.ship_to, country_code=country),
        parcels=(msgspec.structs.replace(example.parcels[0], weight_kg=weight_kg),),
        service_level=level,
        excluded_carriers=excluded,
    )


@dataclass
class CallClock:
    """When each operation reached a sandbox (monotonic seconds), for lower-bound checks."""

    times: dict[str, list[float]] = field(default_factory=dict)

    def middleware(self) -> Any:
        @web.middleware
        async def record(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            name = request.match_info.route.name
            if name:
                self.times.setdefault(name, []).append(time.monotonic())
            return await handler(request)

        return record


@dataclass
class Rig:
    """The router, both carrier sandboxes, and a NATS client to talk to the router."""

    nc: NatsClient
    subjects: SubjectMap
    carrier_a: EasyPostSandbox
    carrier_b: ShippoSandbox
    router_url: str
    clock_a: CallClock
    clock_b: CallClock
    settings: dict[str, Any] = field(default_factory=dict)
    """The router's settings (a test may start another instance with them)."""

    async def send(self, message: Message) -> str:
        """Publish a command as the orchestrator would; returns its id."""
        return await send(self.nc, self.subjects, message)

    async def stored(self) -> list[Decoded]:
        """Every event in the events stream, oldest first (nothing is consumed)."""
        return await stored_in(self.nc, self.subjects, self.subjects.events_stream)

    async def events(self, event_type: type[E], shipment_id: str | None = None) -> list[E]:
        """Stored events of one type (about one shipment when ``shipment_id`` is given)."""
        return [
            d.message
            for d in await self.stored()
            if isinstance(d.message, event_type)
            and (shipment_id is None or d.message.business_key() == shipment_id)
        ]

    async def wait_for(
        self,
        event_type: type[E],
        shipment_id: str | None = None,
        *,
        until: Callable[[list[E]], bool] = bool,
    ) -> list[E]:
        """Wait until the stored events of one type satisfy ``until``; returns them."""

        async def probe() -> list[E]:
            return await self.events(event_type, shipment_id)

        return await eventually(
            probe, until=until, what=f"{event_type.__name__} for {shipment_id or 'any shipment'}"
        )

    async def dead_letters(self) -> list[DeadLetter]:
        return await dead_letters(self.nc, self.subjects)

    async def wait_for_dead_letters(self, count: int = 1) -> list[DeadLetter]:
        """Wait until ``count`` dead letters are stored; returns them."""
        return await eventually(
            self.dead_letters, until=lambda found: len(found) >= count, what="a dead letter"
        )

    async def commands_settled(self) -> None:
        """Wait until the router has acknowledged every command (none pending or unacked)."""
        await settled(self.nc, self.subjects, "carrier-router")

    def purchases(self, reference: str) -> dict[str, int]:
        """Labels bought under ``reference``, per carrier (carriers with none left out)."""
        counts = {
            "carrier-a": self.carrier_a.purchases_per_reference().get(reference, 0),
            "carrier-b": self.carrier_b.purchases_per_reference().get(reference, 0),
        }
        return {carrier: n for carrier, n in counts.items() if n}

    async def post_webhook(
        self, carrier: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """POST a tracking webhook to the router, signed as ``carrier`` signs unless given."""
        sent = headers if headers is not None else signed(carrier, body)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.router_url}/webhooks/carriers/{carrier}", data=body, headers=sent
            ) as response,
        ):
            return response.status, dict(response.headers), await response.json(content_type=None)


def signed(carrier: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """Headers exactly as the carrier's sandbox signs a webhook."""
    headers = {"Content-Type": "application/json"}
    if carrier == "carrier-a":
        headers.update(easypost_signature_headers(A_SECRET, body))
    else:
        headers.update(shippo_signature_headers(B_SECRET, body, timestamp=timestamp))
    return headers


@contextlib.asynccontextmanager
async def carriers_and_router(
    nc: NatsClient,
    nats_url: str,
    nats_prefix: str,
    *,
    carrier_a: dict[str, Any] | None = None,
    carrier_b: dict[str, Any] | None = None,
    innermost: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[Rig]:
    """Both carrier sandboxes (``carrier_a``/``carrier_b``: CarrierConfig fields) and the
    router (``settings``: its settings) wired together; ``innermost`` adds a middleware
    next to a carrier's handlers (by carrier code)."""
    innermost = innermost or {}
    port = free_port()
    router_url = f"http://127.0.0.1:{port}"

    def config(key: str, secret: str, carrier: str, overrides: dict[str, Any] | None) -> Any:
        base = CarrierConfig(
            api_key=key,
            webhook_secret=secret,
            webhook_url=f"{router_url}/webhooks/carriers/{carrier}",
            tracking_delays_s=list(LABEL_CREATED_ONLY),
            seed=11,
        )
        return msgspec.structs.replace(base, **(overrides or {}))

    sandbox_a = EasyPostSandbox(config(A_KEY, A_SECRET, "carrier-a", carrier_a))
    sandbox_b = ShippoSandbox(config(B_KEY, B_SECRET, "carrier-b", carrier_b))
    clock_a, clock_b = CallClock(), CallClock()
    app_a, app_b = sandbox_a.app(), sandbox_b.app()
    # Outermost, so calls answered by an injected fault are timed too.
    app_a.middlewares.insert(0, clock_a.middleware())
    app_b.middlewares.insert(0, clock_b.middleware())
    for app, carrier in ((app_a, "carrier-a"), (app_b, "carrier-b")):
        if carrier in innermost:
            app.middlewares.append(innermost[carrier])
    options: dict[str, Any] = {
        "carrier_a_api_key": A_KEY,
        "carrier_a_webhook_secret": A_SECRET,
        "carrier_b_api_key": B_KEY,
        "carrier_b_webhook_secret": B_SECRET,
        "carrier_timeout_s": 2.0,
        "carrier_retry_attempts": 2,
        "retry_backoff_s": (0.05, 0.1),
    }
    options.update(settings)
    async with serve(app_a) as running_a, serve(app_b) as running_b:
        options.setdefault("carrier_a_url", running_a.url)
        options.setdefault("carrier_b_url", running_b.url)
        async with running_service(
            service, nats_url=nats_url, subject_prefix=nats_prefix, http_port=port, **options
        ):
            yield Rig(
                nc=nc,
                subjects=SubjectMap(nats_prefix),
                carrier_a=sandbox_a,
                carrier_b=sandbox_b,
                router_url=router_url,
                clock_a=clock_a,
                clock_b=clock_b,
                settings={**options, "nats_url": nats_url, "subject_prefix": nats_prefix},
            )
