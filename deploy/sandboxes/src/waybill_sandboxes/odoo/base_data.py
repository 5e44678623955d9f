"""The records every Odoo database has before any business data: what Odoo's modules install.

Countries, units, the warehouse's locations and operation types, message
subtypes, activity types, carriers, ``ir.model`` rows, external ids, and the
users: ``admin`` (may write), ``ops`` (gets the to-dos) and ``reader`` (may
only read, to try AccessError with).
"""

from __future__ import annotations

import hashlib

from waybill_sandboxes.odoo.env import add_xmlid
from waybill_sandboxes.odoo.registry import Registry
from waybill_sandboxes.odoo.users import Credential

COUNTRIES = {
    "DE": "Germany",
    "FR": "France",
    "NL": "Netherlands",
    "BE": "Belgium",
    "GB": "United Kingdom",
    "US": "United States",
}
US_STATES = {"CA": "California", "NY": "New York", "TX": "Texas"}
CARRIERS = ("Carrier A", "Carrier B")
# login, display name, password, may write
USERS = (
    ("admin", "Mitchell Admin", "admin", True),
    ("ops", "Olivia Ops", "ops", True),
    ("reader", "Rita Reader", "reader", False),
)


def api_key_for(seed: int, login: str) -> str:
    """A stable API key per seed and login, so the CLI can print it and scripts can reuse it."""
    return hashlib.sha256(f"waybill-odoo-sandbox:{seed}:{login}".encode()).hexdigest()[:40]


def _create(registry: Registry, model: str, values: dict[str, object], xmlid: str = "") -> int:
    [record_id] = registry.create(model, [values], uid=1)
    if xmlid:
        add_xmlid(registry, xmlid, model, record_id)
    return record_id


def install_base_data(registry: Registry, *, seed: int) -> list[Credential]:
    """Create the module data; returns the users' credentials (password and API key)."""
    for model, spec in registry.models.items():
        registry.create("ir.model", [{"model": model, "name": spec.description}], uid=1)
    for code, name in COUNTRIES.items():
        country = _create(
            registry, "res.country", {"name": name, "code": code}, f"base.{code.lower()}"
        )
        if code == "US":
            for state_code, state_name in US_STATES.items():
                _create(
                    registry,
                    "res.country.state",
                    {"name": state_name, "code": state_code, "country_id": country},
                    f"base.state_us_{state_code.lower()}",
                )
    _create(registry, "uom.uom", {"name": "Units"}, "uom.product_uom_unit")
    _create(registry, "uom.uom", {"name": "kg"}, "uom.product_uom_kgm")
    vendors = _create(
        registry, "stock.location",
        {"name": "Vendors", "complete_name": "Partners/Vendors", "usage": "supplier"},
        "stock.stock_location_suppliers",
    )  # fmt: skip
    customers = _create(
        registry, "stock.location",
        {"name": "Customers", "complete_name": "Partners/Customers", "usage": "customer"},
        "stock.stock_location_customers",
    )  # fmt: skip
    stock = _create(
        registry, "stock.location",
        {"name": "Stock", "complete_name": "WH/Stock", "usage": "internal",
         "barcode": "WH-STOCK"},
        "stock.stock_location_stock",
    )  # fmt: skip
    # addons/stock/data/stock_data.xml: the counterpart of every applied count.
    _create(
        registry, "stock.location",
        {"name": "Inventory adjustment", "complete_name": "Virtual Locations/Inventory adjustment",
         "usage": "inventory"},
        "stock.location_inventory",
    )  # fmt: skip
    for name, code, prefix, source, dest, xmlid in (
        ("Receipts", "incoming", "IN", vendors, stock, "stock.picking_type_in"),
        ("Delivery Orders", "outgoing", "OUT", stock, customers, "stock.picking_type_out"),
    ):
        _create(
            registry, "stock.picking.type",
            {"name": name, "code": code, "sequence_code": prefix,
             "default_location_src_id": source, "default_location_dest_id": dest},
            xmlid,
        )  # fmt: skip
    for name, internal, xmlid in (
        ("Discussions", False, "mail.mt_comment"),
        ("Note", True, "mail.mt_note"),
        ("Activities", False, "mail.mt_activities"),
    ):
        _create(registry, "mail.message.subtype", {"name": name, "internal": internal}, xmlid)
    for name, xmlid in (
        ("To-Do", "mail.mail_activity_data_todo"),
        ("Call", "mail.mail_activity_data_call"),
        ("Email", "mail.mail_activity_data_email"),
        ("Exception", "mail.mail_activity_data_warning"),
    ):
        _create(registry, "mail.activity.type", {"name": name}, xmlid)
    for carrier in CARRIERS:
        _create(registry, "delivery.carrier", {"name": carrier, "delivery_type": "fixed"})
    return _install_users(registry, seed)


def _install_users(registry: Registry, seed: int) -> list[Credential]:
    _create(
        registry, "res.partner", {"name": "YourCompany", "is_company": True}, "base.main_partner"
    )
    bot = _create(registry, "res.partner", {"name": "OdooBot"}, "base.partner_root")
    # uid 1 is the superuser, which cannot log in; admin is uid 2 as in a fresh Odoo.
    _create(
        registry,
        "res.users",
        {"name": "OdooBot", "login": "__system__", "active": False, "partner_id": bot},
        "base.user_root",
    )
    credentials: list[Credential] = []
    for login, name, password, can_write in USERS:
        partner = _create(
            registry, "res.partner", {"name": name, "email": f"{login}@yourcompany.example"}
        )
        uid = _create(
            registry,
            "res.users",
            {"name": name, "login": login, "partner_id": partner, "tz": "Europe/Brussels"},
            "base.user_admin" if login == "admin" else "",
        )
        if login == "admin":
            add_xmlid(registry, "base.partner_admin", "res.partner", partner)
        credentials.append(
            Credential(
                uid,
                login,
                password,
                api_key_for(seed, login),
                can_write,
                administrator=login == "admin",
            )
        )
    return credentials
