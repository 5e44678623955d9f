"""The Odoo sandbox as one object: its database, users, faults, webhooks, and a Python admin API."""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import msgspec
from aiohttp import web

from waybill_sandboxes.faults import Faults
from waybill_sandboxes.odoo.accounting import invoice_delivered
from waybill_sandboxes.odoo.continuity import keep_counters
from waybill_sandboxes.odoo.env import Env, Records
from waybill_sandboxes.odoo.inspection import (
    InvoiceView,
    OrderView,
    PickingView,
    invoice_views,
    order_view,
    picking_view,
)
from waybill_sandboxes.odoo.registry import Registry
from waybill_sandboxes.odoo.seed import ADMIN_UID, deliver_and_invoice, place_order, seed_data
from waybill_sandboxes.odoo.setup import install_setup
from waybill_sandboxes.odoo.stock import cancel_orders
from waybill_sandboxes.odoo.users import Credential, Credentials
from waybill_sandboxes.odoo.versions import OdooVersion
from waybill_sandboxes.odoo.webhooks import OdooWebhooks, default_rules


class OdooSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How to build an Odoo sandbox."""

    version: int = 17
    db: str = "waybill"
    seed: int = 1
    customers: int = 5
    products: int = 8
    orders: int = 3
    delivered_orders: int = 0  # of the orders: delivered and invoiced, ready to be returned
    webhook_url: str | None = None  # where the automation rules POST (17+); None: recorded only
    # The admin's password instead of the well-known "admin" (with a fresh API key too).
    admin_password: str | None = None
    admin_api_key: str | None = None  # with admin_password; None: a fresh one
    # How the database is set up (issue 15: what real Odoo databases differ in).
    delivery_module: bool = True  # delivery (16/17) / stock_delivery (18+) installed
    sms_confirmation: bool | None = None  # stock_sms's wizard; None: the version's default
    auto_print_delivery_slip: bool = False  # on the Delivery Orders operation type (17+)
    # Days until the users' API keys expire (18+ only; None: 90, Odoo's longest).
    api_key_days: float | None = None
    # A file keeping record ids and references across runs (the local stack's state
    # folder): a new run goes on after the last one's (waybill_sandboxes.odoo.continuity).
    counters_file: str | None = None


class OdooSandbox:
    """A stand-in Odoo 16-19 with demo data, fault injection and webhooks.

    Serve :meth:`app` with :func:`waybill_sandboxes.server.serve`. The Python
    API below creates and cancels orders and reads back what an integration
    did; the same is available over HTTP under ``/_sandbox/odoo``.
    """

    def __init__(
        self,
        settings: OdooSettings | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings or OdooSettings()
        self.version = OdooVersion(self.settings.version)
        self.db = self.settings.db
        self.registry = Registry(
            self.version, clock=clock, with_delivery=self.settings.delivery_module
        )
        if self.settings.counters_file is not None:
            # Before the demo data: its orders get references of their own too.
            keep_counters(self.registry, Path(self.settings.counters_file))
        self.credentials = Credentials()
        for credential in seed_data(
            self.registry,
            self.settings.seed,
            self.settings.customers,
            self.settings.products,
            self.settings.orders,
            self.settings.delivered_orders,
        ):
            if credential.login == "admin" and self.settings.admin_password:
                credential.password = self.settings.admin_password
                credential.api_key = self.settings.admin_api_key or secrets.token_hex(20)
            self.credentials.add(credential)
        install_setup(self.registry, self.settings, self.credentials.all())
        self.faults = Faults(seed=self.settings.seed)
        # Rules are installed after the seed, so demo data does not fire webhooks. They are
        # base.automation records sending to webhook_url, as the stack's Odoo is set up.
        self.webhooks = OdooWebhooks(self.registry, url=self.settings.webhook_url)
        if self.webhooks.supported:
            rules = default_rules()
            if not self.settings.delivery_module:  # no carrier_id to send
                rules = [
                    msgspec.structs.replace(
                        rule, fields=[f for f in rule.fields if f != "carrier_id"]
                    )
                    for rule in rules
                ]
            self.webhooks.replace_rules(rules)
        self._random = random.Random(self.settings.seed + 1)
        self.jsonrpc_deprecation_logged = False  # 19 logs /jsonrpc use once

    # -------------------------------------------------------------- serving
    def app(self) -> web.Application:
        """The aiohttp app serving this sandbox (same as ``build_odoo_app(sandbox)``)."""
        # Imported here: the app module builds on this one.
        from waybill_sandboxes.odoo.app import build_odoo_app

        return build_odoo_app(self)

    def calls(self) -> dict[str, int]:
        """Calls per operation (``stock.picking.write``, ``common.login``, ...), faulted or not."""
        return self.faults.calls()

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until every webhook handed to delivery has an outcome."""
        await self.webhooks.sender.drain(timeout_s)

    # ------------------------------------------------------------------ users
    @property
    def admin(self) -> Credential:
        """The ``admin`` user (may write): login, password, API key."""
        return self.user("admin")

    def user(self, login: str) -> Credential:
        """A user's credential by login; KeyError when there is no such user."""
        found = self.credentials.by_login(login)
        if found is None:
            raise KeyError(f"no Odoo sandbox user {login!r}")
        return found

    def add_user(
        self, login: str, password: str | None = None, *, can_write: bool = True, name: str = ""
    ) -> Credential:
        """Create a user; ``can_write=False`` makes one that gets AccessError on changes."""
        if not login or self.credentials.by_login(login) is not None:
            raise ValueError(f"login {login!r} is empty or already taken")
        [partner] = self.registry.create("res.partner", [{"name": name or login}], uid=ADMIN_UID)
        [uid] = self.registry.create(
            "res.users", [{"name": name or login, "login": login, "partner_id": partner}], ADMIN_UID
        )
        credential = Credential(
            uid, login, password or secrets.token_urlsafe(12), secrets.token_hex(20), can_write
        )
        self.credentials.add(credential)
        return credential

    def set_can_write(self, login: str, can_write: bool) -> None:
        """Allow or forbid a user's changes (AccessError when forbidden)."""
        self.user(login).can_write = can_write

    def expire_sessions(self) -> None:
        """End every web session: the next ``/web/dataset/call_kw`` gets "Session Expired"."""
        self.credentials.expire_sessions()

    # ----------------------------------------------------------------- orders
    def create_order(
        self,
        *,
        customer_id: int | None = None,
        lines: list[tuple[str, float]] | None = None,
        client_order_ref: str | None = None,
        carrier: str | None = None,
        urgent: bool = False,
    ) -> OrderView:
        """Create and confirm a sale order; its delivery becomes ready (and fires the webhook).

        ``lines`` are ``(SKU, quantity)``; missing values are picked from the
        demo data (repeatably for a given seed). ``urgent`` stars its
        deliveries (``priority`` "1"), as a user does in the same moment.
        """
        registry = self.registry
        customers = registry.search("res.partner", [("ref", "!=", False)])
        if customer_id is None:
            if not customers:
                raise ValueError("the sandbox has no customers: seed some or pass customer_id")
            customer_id = self._random.choice(customers)
        if not registry.exists("res.partner", [customer_id]):
            raise ValueError(f"no customer (res.partner) with id {customer_id}")
        if lines is None:
            products = registry.search("product.product", [])
            if not products:
                raise ValueError("the sandbox has no products: seed some or pass lines")
            picked = [(p, float(self._random.randint(1, 5))) for p in self._random.sample(
                products, k=min(2, len(products)))]  # fmt: skip
        else:
            picked = [(self._product_by_sku(sku), float(qty)) for sku, qty in lines]
        carrier_id = None
        if carrier is not None:
            found = registry.search("delivery.carrier", [("name", "=", carrier)])
            if not found:
                raise ValueError(f"unknown carrier {carrier!r}")
            carrier_id = found[0]
        with registry.transaction():
            order_id = place_order(
                registry,
                partner_id=customer_id,
                lines=picked,
                client_order_ref=client_order_ref or f"PO-{self._random.randrange(100000, 999999)}",
                carrier_id=carrier_id,
            )
            if urgent:
                pickings = list(registry.value("sale.order", order_id, "picking_ids"))
                registry.write("stock.picking", pickings, {"priority": "1"}, uid=ADMIN_UID)
        return order_view(registry, order_id)

    def deliver_order(self, ref: str) -> int | None:
        """Ship the order's ready deliveries in full and invoice them (posted); the
        invoice's id, None when nothing was delivered."""
        order_id = self._order_id(ref)
        with self.registry.transaction():
            return deliver_and_invoice(self.registry, order_id)

    def invoice_order(self, ref: str) -> int | None:
        """Invoice what the order delivered and post it, as accounting does after shipping;
        the invoice's id, None when nothing is left to invoice."""
        order_id = self._order_id(ref)
        with self.registry.transaction():
            return invoice_delivered(self.registry, order_id, ADMIN_UID)

    def invoices_of(self, ref: str) -> list[InvoiceView]:
        """The order's customer invoices and credit notes."""
        name = self.registry.value("sale.order", self._order_id(ref), "name")
        return invoice_views(self.registry, str(name))

    def refuse_credit_notes(self, message: str, times: int = 1) -> None:
        """Make Odoo refuse to post the next ``times`` moves (``account.move.action_post``)
        with a UserError saying ``message``, as a locked period or a custom check does;
        0 clears."""
        self.registry.inject_refusals("account.move.action_post", message, times)

    def _product_by_sku(self, sku: str) -> int:
        found = self.registry.search("product.product", [("default_code", "=", sku)])
        if not found:
            raise ValueError(f"unknown product SKU {sku!r}")
        return found[0]

    def cancel_order(self, ref: str) -> OrderView:
        """Cancel a sale order (and its open pickings), as a salesperson in Odoo would."""
        order_id = self._order_id(ref)
        with self.registry.transaction():
            cancel_orders(Records(Env(self.registry, ADMIN_UID), "sale.order", (order_id,)))
        return order_view(self.registry, order_id)

    def order(self, ref: str) -> OrderView:
        """A sale order by name (``S00001``) or id."""
        return order_view(self.registry, self._order_id(ref))

    def orders(self) -> list[OrderView]:
        """Every sale order, oldest first."""
        return [order_view(self.registry, i) for i in self.registry.all_ids("sale.order")]

    def picking(self, ref: str) -> PickingView:
        """A picking by name (``WH/OUT/00001``) or id: state, tracking ref, chatter, activities."""
        return picking_view(self.registry, self._lookup("stock.picking", ref))

    def pickings(self, state: str | None = None) -> list[PickingView]:
        """Every picking (optionally in one state), oldest first."""
        ids = self.registry.all_ids("stock.picking")
        views = [picking_view(self.registry, i) for i in ids]
        return [view for view in views if state is None or view.state == state]

    def on_hand(self, sku: str, location: str = "WH/Stock") -> float:
        """What Odoo has of ``sku`` at ``location`` (its full name): its quants' quantity."""
        registry = self.registry
        quants = registry.search(
            "stock.quant",
            [
                ("product_id", "=", self._product_by_sku(sku)),
                ("location_id.complete_name", "=", location),
            ],
        )
        return sum(float(registry.value("stock.quant", q, "quantity")) for q in quants)

    def inventory_moves(self, sku: str) -> list[str]:
        """The names of the done inventory moves (applied counts) of ``sku``, oldest first."""
        registry = self.registry
        moves = registry.search(
            "stock.move",
            [("product_id", "=", self._product_by_sku(sku)), ("is_inventory", "=", True)],
            order="id",
        )
        return [str(registry.value("stock.move", m, "name")) for m in moves]

    def _order_id(self, ref: str) -> int:
        return self._lookup("sale.order", ref)

    def _lookup(self, model: str, ref: str | int) -> int:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            ids = self.registry.exists(model, [int(ref)])
        else:
            ids = self.registry.search(model, [("name", "=", ref)])
        if not ids:
            raise KeyError(f"no {model} {ref!r} in the Odoo sandbox")
        return ids[0]

    # ------------------------------------------------------------------ banner
    def banner(self, *, credentials: bool = True) -> str:
        """What the CLI prints: URL placeholder, database, users and (unless told not to)
        their passwords and API keys."""
        lines = [
            f"Odoo {self.version.series} sandbox listening on {{url}}",
            f"  database: {self.db}",
        ]
        for credential in self.credentials.all():
            role = "read/write" if credential.can_write else "read only"
            secret = (
                f" password {credential.password!r} API key {credential.api_key}"
                if credentials
                else ""
            )
            lines.append(f"  user {credential.login!r}{secret} ({role})")
        if not credentials:
            lines.append(
                "  passwords and API keys not shown (the admin's came from the environment)"
            )
        if self.version.has_json2:
            lines.append(
                "  JSON-2: POST {url}/json/2/<model>/<method>"
                " with 'Authorization: bearer <API key>'"
            )
        lines.append("  admin: {url}/_sandbox/odoo/info")
        return "\n".join(lines)


SANDBOX_KEY = web.AppKey("waybill_sandboxes.odoo.sandbox", OdooSandbox)
