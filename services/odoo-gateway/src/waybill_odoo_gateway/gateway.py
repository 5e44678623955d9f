"""The running gateway: its Odoo client, readers, publishers and background work, in one place.

:func:`running_gateway` builds it for a started service and keeps, beside
the handlers, three things going: a login keeper (so a rejected login is one
clear line and a not-ready service, never a crash loop), the delivery poll,
and the webhooks still being processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

from prometheus_client import Counter

from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.deliveries import DeliveryReader, Picking
from waybill_odoo_gateway.delivery_poll import DeliveryPoll
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_errors import OdooLoginRejected, OdooUnavailable
from waybill_odoo_gateway.odoo_protocols import odoo_client_for
from waybill_odoo_gateway.odoo_returns import ReturnFacts
from waybill_odoo_gateway.odoo_setup import SetupReport, check_setup
from waybill_odoo_gateway.odoo_values import text
from waybill_odoo_gateway.order_facts import OrderFacts
from waybill_odoo_gateway.picking_validation import Move, move_fields
from waybill_odoo_gateway.product_master import ProductMaster
from waybill_odoo_gateway.rma_ledger import RMA_BUCKET
from waybill_odoo_gateway.webhook_backlog import WebhookBacklog
from waybill_runtime.cancellation import raise_if_cancelled
from waybill_runtime.outcomes import PermanentError
from waybill_runtime.periodic import every
from waybill_runtime.recent import Recent
from waybill_runtime.resilience import KeyedLock
from waybill_runtime.service import ResourceKey, Runtime

__all__ = ["GATEWAY", "Gateway", "odoo_client_for", "running_gateway"]

log = logging.getLogger("waybill.odoo")


# How often the setup is checked again while logged in (API keys expire by the day).
SETUP_RECHECK_S = 3600.0

# How many done pickings each gateway remembers (oldest forgotten first).
REMEMBERED_DONE_PICKINGS = 4096

# What recording a shipment reads of its picking (13 fields before).
_SHIPPED_PICKING_FIELDS = ["name", "state", "carrier_tracking_ref"]

# How long a carrier code Odoo has no delivery method for is taken as still having
# none: one created in Odoo meanwhile is used from the next shipment after this.
CARRIER_MISS_TTL_S = 300.0


@dataclass
class Gateway:
    """Everything the gateway's handlers, routes and queries share while it runs."""

    settings: OdooGatewaySettings
    odoo: OdooClient
    reader: DeliveryReader
    facts: OrderFacts
    poll: DeliveryPoll
    backlog: WebhookBacklog
    checked: Counter
    products: ProductMaster
    # Commands touching one picking run one at a time here, so two deliveries
    # of the same command never both decide an effect is still to be made.
    pickings: KeyedLock = field(default_factory=KeyedLock)
    # Counts on one quant (product, location) run one at a time here: two adjustments
    # counted at once would each overwrite the other's counted quantity.
    quants: KeyedLock = field(default_factory=KeyedLock)
    # Commands on one return (its id) run one at a time here: a redelivery waits for the
    # first delivery's effect instead of finding it half made.
    returns: KeyedLock = field(default_factory=KeyedLock)
    _users: dict[str, int | None] = field(default_factory=dict)
    _carriers: dict[str, int] = field(default_factory=dict)
    # Carrier codes Odoo had no delivery method for, until when that is believed
    # (the event loop's clock): without it, two searches on every such shipment.
    _carriers_missing: dict[str, float] = field(default_factory=dict)
    # Pickings seen done (id -> name): Odoo never deletes nor cancels a done picking
    # (its done moves cannot be unlinked or cancelled), so a note for one needs no read
    # to know it exists.
    _done: Recent[int, str] = field(default_factory=lambda: Recent(REMEMBERED_DONE_PICKINGS))
    setup: SetupReport = field(default_factory=SetupReport)
    """What the last check of Odoo's setup found (after each login, then hourly)."""

    async def check_setup(self) -> None:
        """Check Odoo's setup again; each problem is logged once per check."""
        report = await check_setup(self.odoo, self.settings)
        for problem in (*report.problems, *report.warnings):
            if problem not in self.setup.findings:
                log.warning("Odoo setup: %s", problem.line)
        self.setup = report

    async def picking_for(self, picking_id: int, order_ref: str) -> Picking:
        """The picking a command is about; a dead letter when Odoo has no such picking."""
        return self._found(await self.reader.picking(picking_id), picking_id, order_ref)

    async def picking_to_ship(
        self, picking_id: int, order_ref: str
    ) -> tuple[Picking, list[Move] | None]:
        """The picking a shipment is recorded on, with what recording it reads (name, state,
        tracking), and on 17+ all its moves in the same call (None: read when needed)."""
        if not self.odoo.dialect.has_web_read:
            fields = [*_SHIPPED_PICKING_FIELDS, "move_ids"]
            picking = await self.reader.picking(picking_id, fields=fields)
            return self._found(picking, picking_id, order_ref), None
        found = await self.reader.picking_with_moves(
            picking_id, _SHIPPED_PICKING_FIELDS, move_fields(self.odoo.dialect)
        )
        picking, moves = found if found is not None else (None, None)
        return self._found(picking, picking_id, order_ref), moves

    def _found(self, picking: Picking | None, picking_id: int, order_ref: str) -> Picking:
        if picking is None:
            raise PermanentError(f"Odoo has no picking {picking_id} (order {order_ref})")
        _check_name(picking_id, picking.name, order_ref)
        if picking.state == "done":
            self.picking_done(picking_id, picking.name)
        return picking

    def picking_done(self, picking_id: int, name: str) -> None:
        """Remember that Odoo has the picking, done (read so, or validated here)."""
        self._done.put(picking_id, name)

    async def existing_picking_id(self, picking_id: int, order_ref: str) -> int:
        """The id of the picking a note is for, once known to exist: read from Odoo unless
        seen done here (a dead letter when Odoo has no such picking)."""
        name = self._done.get(picking_id)
        if name is None:
            return (await self.picking_for(picking_id, order_ref)).id
        _check_name(picking_id, name, order_ref)
        return picking_id

    async def user_id(self, login: str) -> int | None:
        """The Odoo user id of ``login``; None when Odoo has no such active user."""
        if self._users.get(login) is None:  # a user created later is found then
            found = await self.odoo.call(
                "res.users", "search", domain=[("login", "=", login)], limit=1
            )
            self._users[login] = found[0] if found else None
        return self._users[login]

    async def carrier_id(self, carrier: str) -> int | None:
        """The Odoo delivery method for a carrier code: mapped by setting, else by name."""
        if carrier in self._carriers:
            return self._carriers[carrier]
        now = asyncio.get_running_loop().time()
        if self._carriers_missing.get(carrier, now) > now:
            return None
        mapped = self.settings.odoo_carrier_names.get(carrier)
        names = [mapped] if mapped else [carrier, carrier.replace("_", " ").replace("-", " ")]
        for name in dict.fromkeys(names):
            found = await self.odoo.call(
                "delivery.carrier", "search", domain=[("name", "=ilike", name)], limit=1
            )
            if found:
                self._carriers[carrier] = found[0]
                self._carriers_missing.pop(carrier, None)
                return int(found[0])
        self._carriers_missing[carrier] = now + CARRIER_MISS_TTL_S
        if mapped:
            log.warning(
                "WAYBILL_ODOO_CARRIER_NAMES maps %r to %r, which Odoo has no delivery method for",
                carrier,
                mapped,
            )
        return None


def _check_name(picking_id: int, name: str, order_ref: str) -> None:
    if name != order_ref:
        log.warning(
            "command for order %s names Odoo picking %d, which is %s; going by the id",
            order_ref,
            picking_id,
            name,
        )


async def keep_logged_in(gateway: Gateway, retry_s: float) -> None:
    """Log in now, and again whenever Odoo forgot us, every ``retry_s`` until it works;
    check Odoo's setup after each login and every :data:`SETUP_RECHECK_S`.

    The client logs each change of state once; failures here are only the
    reason readiness says "not ready".
    """
    odoo = gateway.odoo
    checked_at: float | None = None
    loop = asyncio.get_running_loop()
    while True:
        if odoo.uid is None:
            checked_at = None
            try:
                await odoo.connect()
            except (OdooLoginRejected, OdooUnavailable):
                pass  # the client logged it, once; readiness shows it
            except Exception as failed:
                log.warning("logging in to Odoo failed: %s: %s", type(failed).__name__, failed)
            raise_if_cancelled()
        if odoo.uid is not None and (
            checked_at is None or loop.time() - checked_at > SETUP_RECHECK_S
        ):
            try:
                await gateway.check_setup()
                checked_at = loop.time()
            except Exception as failed:  # Odoo went away mid-check: try again next round
                log.warning("checking Odoo's setup failed: %s: %s", type(failed).__name__, failed)
            raise_if_cancelled()
        await asyncio.sleep(retry_s)


# How often a gateway looks whether a product sync run is due (or one was cut off).
PRODUCT_SYNC_CHECK_S = 300.0


def syncing_products(
    settings: OdooGatewaySettings, master: ProductMaster
) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
    """Product master sync runs every ``WAYBILL_PRODUCT_SYNC_INTERVAL_S`` (an interrupted
    run is resumed at the next look, soon after a restart)."""
    return every(
        min(settings.product_sync_interval_s, PRODUCT_SYNC_CHECK_S),
        lambda: master.run_if_due(settings.product_sync_interval_s),
        name="product sync",
        first_after_s=settings.odoo_poll_first_after_s,
    )


GATEWAY = ResourceKey[Gateway]("odoo-gateway")
"""The running service's gateway (opened by :func:`running_gateway`)."""


@contextlib.asynccontextmanager
async def running_gateway(runtime: Runtime[OdooGatewaySettings]) -> AsyncIterator[Gateway]:
    """Build the gateway for a started service; stop its background work on exit."""
    settings = runtime.settings
    odoo = odoo_client_for(settings)
    reader = DeliveryReader(odoo)
    marks = runtime.buckets["watermarks"]
    within_h = settings.express_promised_within_h
    returns = ReturnFacts(
        odoo,
        reader,
        runtime.publisher,
        marks,
        runtime.buckets[RMA_BUCKET],
        settings.odoo_carrier_names,
    )
    facts = OrderFacts(
        odoo,
        reader,
        runtime.publisher,
        marks,
        express_promised_within=timedelta(hours=within_h) if within_h > 0 else None,
        on_incoming=returns.on_incoming,
    )
    runtime.metrics.gauge(
        "waybill_odoo_calls_in_flight",
        "Calls to Odoo under way (at most waybill_odoo_calls_allowed).",
    ).set_function(lambda: odoo.in_flight)
    runtime.metrics.gauge(
        "waybill_odoo_calls_allowed",
        "Calls to Odoo allowed at once now: adapted to how Odoo copes, at most "
        "WAYBILL_ODOO_MAX_IN_FLIGHT.",
    ).set_function(lambda: odoo.in_flight_cap)
    checked = runtime.metrics.counter(
        "waybill_odoo_records_checked_total",
        "Odoo records re-read after a webhook or by the poll, by what they led to.",
        ["source", "seen"],
    )
    poll = DeliveryPoll(
        odoo, facts, marks, settings, count=lambda seen: checked.labels("poll", seen.value).inc()
    )
    backlog = WebhookBacklog(settings.odoo_webhook_backlog)
    products = ProductMaster(
        odoo,
        runtime.publisher,
        marks,
        page_size=settings.product_sync_page_size,
        overlap_s=settings.product_sync_overlap_s,
    )
    gateway = Gateway(settings, odoo, reader, facts, poll, backlog, checked, products)

    def api_key_days_left() -> float:
        # NaN, not 0, when there is nothing to count down: an alert on "< 14" stays quiet.
        days = gateway.setup.api_key_days_left
        return math.nan if days is None else days

    runtime.metrics.gauge(
        "waybill_odoo_api_key_days_left",
        "Days until the Odoo API key expires (Odoo 18+; NaN when it does not expire or is "
        "not known).",
    ).set_function(api_key_days_left)
    if text(settings.odoo_webhook_token) is None:
        log.warning(
            "WAYBILL_ODOO_WEBHOOK_TOKEN is not set: Odoo webhooks are refused and new orders "
            "are found by the poll only (every %g s)",
            settings.odoo_poll_interval_s,
        )
    keeper = asyncio.create_task(
        keep_logged_in(gateway, settings.odoo_login_retry_s), name="odoo login"
    )
    try:
        async with contextlib.AsyncExitStack() as background:
            await background.enter_async_context(
                every(
                    settings.odoo_poll_interval_s,
                    poll.poll_once,
                    name="odoo poll",
                    first_after_s=settings.odoo_poll_first_after_s,
                )
            )
            if settings.product_sync_interval_s > 0:
                await background.enter_async_context(syncing_products(settings, products))
            yield gateway
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        await backlog.close(grace_s=min(5.0, settings.shutdown_deadline_s))
        await odoo.close()
