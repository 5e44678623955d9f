"""An Odoo sandbox and an odoo-gateway wired to each other, and what tests read back.

The sandbox is built without demo orders (tests create the orders they
need), with its automation rules posting to the gateway's webhook URL. The
gateway runs in-process against the test's nats-server and subject prefix.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp
import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler
from nats.aio.client import Client as NatsClient

from tests.runtime.bus_helpers import send
from waybill_contracts import Decoded, Message, SubjectMap
from waybill_contracts.commands import RecordShipmentInOdoo
from waybill_contracts.examples import example_of
from waybill_contracts.model import PickedLine, Quantity
from waybill_odoo_gateway.app import build_service
from waybill_runtime.local.ports import free_port
from waybill_runtime.security.local_api_keys import LocalApiKeys
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import settled, stored_in
from waybill_runtime.testing.tokens import temporary_api_keys, trusting
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.odoo import OdooSandbox, OdooSettings, build_odoo_app
from waybill_sandboxes.odoo.inspection import OrderView, PickingView
from waybill_sandboxes.server import serve

M = TypeVar("M", bound=Message)

# Bounds a hung request to the gateway, so a test fails naming it instead of hanging.
PATIENCE = aiohttp.ClientTimeout(total=20)

TOKEN = "webhook-token-0123456789abcdef"
"""The webhook path secret every test gateway is configured with."""


@dataclass
class CallMeter:
    """Counts what reaches the sandbox: calls at once, and writes at once per record."""

    now: int = 0
    most: int = 0
    writes_now: Counter[tuple[str, int]] = field(default_factory=Counter)
    most_writes_on_one_record: int = 0
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Every call so far by (model, method)."""

    def middleware(self) -> Any:
        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith("/_sandbox"):
                return await handler(request)
            model, method, ids = _call_of(request.path, await request.read())
            records = [] if method in _READS else [(model, i) for i in ids if isinstance(i, int)]
            self.calls[model, method] += 1
            self.now += 1
            self.most = max(self.most, self.now)
            for record in records:
                self.writes_now[record] += 1
                self.most_writes_on_one_record = max(
                    self.most_writes_on_one_record, self.writes_now[record]
                )
            try:
                return await handler(request)
            finally:
                self.now -= 1
                for record in records:
                    self.writes_now[record] -= 1

        return count


_READS = {
    "read", "search", "search_read", "search_count", "fields_get", "context_get", "web_read",
    "web_search_read",
}  # fmt: skip


def _call_of(path: str, body: bytes) -> tuple[str, str, list[Any]]:
    """The model, method and record ids of a JSON-RPC or JSON-2 call, from its path and body."""
    try:
        payload = msgspec.json.decode(body) if body else {}
    except msgspec.DecodeError:
        return "", "", []
    model, method, ids = "", "", []
    if path == "/jsonrpc":
        args = payload.get("params", {}).get("args", [])
        if payload.get("params", {}).get("method") == "execute_kw" and len(args) >= 6:
            model, method = args[3], args[4]
            ids = args[5][0] if args[5] and isinstance(args[5][0], list) else []
    elif path.startswith("/json/2/"):
        _empty, _json, _two, model, method = path.split("/", 4)
        ids = payload.get("ids", []) if isinstance(payload, dict) else []
    return model, method, ids


@dataclass
class OdooStage:
    """A served Odoo sandbox and how a gateway reaches it (and it the gateway)."""

    sandbox: OdooSandbox
    url: str
    protocol: str
    gateway_port: int
    meter: CallMeter
    api_keys: LocalApiKeys
    """What signs the tokens of callers of the gateway's API (the RMA route)."""

    @property
    def version(self) -> int:
        return self.sandbox.version.major

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.gateway_url}/webhooks/odoo/{TOKEN}"

    def gateway_settings(self, **overrides: Any) -> dict[str, Any]:
        """Settings for a gateway pointed at this sandbox: fast retries, no surprise polls."""
        settings: dict[str, Any] = {
            "http_port": self.gateway_port,
            "odoo_url": self.url,
            "odoo_protocol": self.protocol,
            "odoo_login": "admin",
            "odoo_password": self.sandbox.admin.password,
            "odoo_api_key": self.sandbox.admin.api_key if self.protocol == "json2" else None,
            "odoo_webhook_token": TOKEN,
            "odoo_webhook_recheck_s": (0.2, 0.5),
            # No poll unless a test asks for one (then the first round comes one interval in).
            "odoo_poll_interval_s": 3600.0,
            "odoo_poll_first_after_s": None,
            "odoo_login_retry_s": 0.2,
            "retry_backoff_s": (0.1, 0.2),
            # The sandbox's admin password is a well-known one: allowed on this machine only.
            "local_stack": True,
            # Its RMA route is protected: the gateway does not start without a key source.
            **trusting(self.api_keys),
        }
        settings.update(overrides)
        return settings

    @contextlib.asynccontextmanager
    async def gateway(
        self, nats_url: str, nats_prefix: str, **overrides: Any
    ) -> AsyncIterator[None]:
        """Run a fresh odoo-gateway service against this sandbox until the block ends."""
        async with running_service(
            build_service(),
            nats_url=nats_url,
            subject_prefix=nats_prefix,
            **self.gateway_settings(**overrides),
        ):
            yield

    def new_order(self, *lines: tuple[str, float]) -> OrderView:
        """A confirmed sale order whose delivery is ready (its webhook fires)."""
        return self.sandbox.create_order(lines=list(lines) or [("WB-0001", 2), ("WB-0002", 1)])

    async def post_webhook(self, model: str, record_id: int, token: str = TOKEN) -> int:
        """POST a webhook as Odoo would; returns the HTTP status."""
        url = f"{self.gateway_url}/webhooks/odoo/{token}"
        async with (
            aiohttp.ClientSession(timeout=PATIENCE) as session,
            session.post(url, json={"_model": model, "_id": record_id}) as answer,
        ):
            return answer.status

    async def metric(self, name: str, **labels: str) -> float:
        """The value of a counter of the running gateway (0 when it has no such sample)."""
        async with (
            aiohttp.ClientSession(timeout=PATIENCE) as session,
            session.get(f"{self.gateway_url}/metrics") as answer,
        ):
            text = await answer.text()
        wanted = [f'{key}="{value}"' for key, value in labels.items()]
        for line in text.splitlines():
            if line.startswith(f"{name}{{") and all(label in line for label in wanted):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    async def publishes(self, subject: str) -> float:
        """Publishes the gateway made on ``subject``, stored or dropped as duplicates."""
        return await self.metric("waybill_messages_published_total", subject=subject)

    async def checked(self, source: str, seen: str) -> float:
        """Records the gateway re-read from ``source`` (webhook, poll) that led to ``seen``."""
        return await self.metric("waybill_odoo_records_checked_total", source=source, seen=seen)

    async def ready(self) -> dict[str, Any]:
        """The gateway's /readyz answer."""
        async with (
            aiohttp.ClientSession(timeout=PATIENCE) as session,
            session.get(f"{self.gateway_url}/readyz") as answer,
        ):
            result: dict[str, Any] = await answer.json()
            return result


@contextlib.asynccontextmanager
async def odoo_stage(
    *, version: int, protocol: str, middlewares: tuple[Any, ...] = (), **settings: Any
) -> AsyncIterator[OdooStage]:
    """Serve a fresh sandbox whose webhooks go to a gateway port chosen now (``middlewares``:
    aiohttp middlewares of the test's, around every request the sandbox answers)."""
    port = free_port()
    webhook_url = f"http://127.0.0.1:{port}/webhooks/odoo/{TOKEN}"
    options: dict[str, Any] = {"orders": 0, "webhook_url": webhook_url}
    options.update(settings)
    sandbox = OdooSandbox(OdooSettings(version=version, **options))
    meter = CallMeter()
    app = build_odoo_app(sandbox)
    app.middlewares.append(meter.middleware())
    app.middlewares.extend(middlewares)
    with temporary_api_keys() as keys:
        async with serve(app) as running:
            yield OdooStage(sandbox, running.url, protocol, port, meter, keys)


# --- reading the bus ------------------------------------------------------------------


async def published(nc: NatsClient, prefix: str, message_type: type[M]) -> list[M]:
    """Every stored event of ``message_type``, oldest first."""
    found = await published_with_context(nc, prefix, message_type)
    return [d.message for d in found if isinstance(d.message, message_type)]


async def published_with_context(
    nc: NatsClient, prefix: str, message_type: type[Message]
) -> list[Decoded]:
    """Every stored event of ``message_type`` with its envelope, oldest first."""
    subjects = SubjectMap(prefix)
    found = await stored_in(nc, subjects, subjects.events_stream)
    return [d for d in found if isinstance(d.message, message_type)]


async def wait_for_events(
    nc: NatsClient, prefix: str, message_type: type[M], count: int = 1
) -> list[M]:
    """Wait until at least ``count`` events of ``message_type`` are stored; returns them all."""
    return await eventually(
        lambda: published(nc, prefix, message_type),
        until=lambda found: len(found) >= count,
        what=f"{count} {message_type.__name__} event(s)",
    )


async def wait_for_commands_done(nc: NatsClient, prefix: str) -> None:
    """Wait until the gateway settled every command sent (acknowledged or dead-lettered)."""
    await settled(nc, SubjectMap(prefix), "odoo-gateway")


# --- commands the orchestrator would send -----------------------------------------------


def picked_lines(picking: PickingView, **short: float) -> tuple[PickedLine, ...]:
    """What the warehouse picked of a sandbox picking: its demand, less ``short`` per SKU."""
    return tuple(
        PickedLine(
            sku=move.product,
            quantity=Quantity(
                value=Decimal(str(move.demand - short.get(move.product, 0))), uom="Units"
            ),
            odoo_move_id=move.id,
        )
        for move in picking.moves
    )


def shipment_command(
    picking: PickingView,
    tracking: str = "1Z999AA10123456784",
    carrier: str = "carrier-a",
    lines: tuple[PickedLine, ...] = (),
) -> RecordShipmentInOdoo:
    """Record shipment for a sandbox picking, as the orchestrator sends it once booked."""
    shipment = msgspec.structs.replace(
        example_of(RecordShipmentInOdoo).shipment,
        order_ref=picking.name,
        shipment_id=f"shp-{picking.id}",
        carrier=carrier,
        tracking_number=tracking,
        tracking_url=f"https://track.example/{tracking}",
    )
    return RecordShipmentInOdoo(
        order_ref=picking.name,
        odoo_picking_id=picking.id,
        shipment=shipment,
        shipping_weight_kg=3.5,
        lines=lines,
    )


async def send_command(nc: NatsClient, prefix: str, command: Message) -> str:
    """Publish a command as the orchestrator would; returns its message id."""
    return await send(nc, SubjectMap(prefix), command)
