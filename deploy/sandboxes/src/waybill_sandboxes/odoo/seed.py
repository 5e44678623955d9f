"""Demo business data, the same for the same seed: customers, products, confirmed orders.

Every seeded order is confirmed and has one outgoing picking that is ready
(``assigned``), which is the state the Waybill gateway picks orders up in.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from waybill_sandboxes.odoo.accounting import install_accounting, invoice_delivered
from waybill_sandboxes.odoo.base_data import CARRIERS, install_base_data
from waybill_sandboxes.odoo.env import Env, Records, xmlid_to_record
from waybill_sandboxes.odoo.inventory import install_inventory
from waybill_sandboxes.odoo.registry import Registry
from waybill_sandboxes.odoo.returns import install_return_data
from waybill_sandboxes.odoo.stock import action_confirm, button_validate, install_sequences
from waybill_sandboxes.odoo.users import Credential

ADMIN_UID = 2

# country: (lang, phone prefix, [(city, zip, street, state code)])
ADDRESSES = {
    "DE": ("de_DE", "+49 30", [("Berlin", "10115", "Invalidenstraße", ""),
                                ("Hamburg", "20095", "Mönckebergstraße", "")]),
    "FR": ("fr_FR", "+33 1", [("Paris", "75002", "Rue du Sentier", ""),
                               ("Lyon", "69002", "Rue de la République", "")]),
    "NL": ("nl_NL", "+31 20", [("Amsterdam", "1012 AB", "Damrak", ""),
                                ("Rotterdam", "3011 AD", "Coolsingel", "")]),
    "GB": ("en_GB", "+44 20", [("London", "EC1A 1BB", "King Street", ""),
                                ("Manchester", "M1 1AE", "Market Street", "")]),
    "US": ("en_US", "+1 212", [("New York", "10001", "5th Avenue", "NY"),
                                ("Austin", "78701", "Congress Avenue", "TX")]),
}  # fmt: skip
FIRST_NAMES = ("Anna", "Bram", "Chloé", "Dieter", "Emma", "Finn", "Grace", "Hugo", "Ines", "Jonas")
LAST_NAMES = ("Schmidt", "Dubois", "de Vries", "Smith", "Jansen", "Martin", "Brown", "Weber")
COMPANY_WORDS = ("Nordic", "Atlas", "Harbor", "Summit", "Green", "Metro", "Pioneer", "Blue")
COMPANY_KINDS = ("Trading", "Retail", "Supplies", "Outfitters", "Goods", "Imports")
PRODUCTS = (
    "Shipping Box S", "Shipping Box M", "Shipping Box L", "Pallet Wrap 500 mm",
    "Label Roll 100x150", "Barcode Scanner", "Desk Lamp", "Office Chair", "Water Bottle",
    "Trail Backpack", "Rain Jacket", "Coffee Beans 1 kg", "Ceramic Mug", "Bike Light Set",
    "Yoga Mat",
)  # fmt: skip


def _ean13(rng: random.Random) -> str:
    digits = [2, 0, *(rng.randrange(10) for _ in range(10))]
    checksum = sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return "".join(map(str, digits)) + str((10 - checksum % 10) % 10)


def seed_data(
    registry: Registry,
    seed: int,
    customers: int,
    products: int,
    orders: int,
    delivered: int = 0,
) -> list[Credential]:
    """Fill an empty registry; returns the users' credentials. Same seed, same data.

    The first ``delivered`` orders are delivered and invoiced (a posted customer
    invoice each), ready to be returned and credited.
    """
    for name, count in (
        ("customers", customers), ("products", products), ("orders", orders),
        ("delivered", delivered),
    ):  # fmt: skip
        if count < 0:
            raise ValueError(f"{name} must be zero or more, not {count}")
    if orders and not (customers and products):
        raise ValueError("orders need at least one customer and one product")
    if delivered > orders:
        raise ValueError(f"delivered ({delivered}) cannot exceed orders ({orders})")
    rng = random.Random(seed)
    install_sequences(registry)
    install_inventory(registry)
    credentials = install_base_data(registry, seed=seed)
    install_return_data(registry)
    install_accounting(registry)
    partner_ids = [_create_customer(registry, rng, n) for n in range(customers)]
    product_ids = [_create_product(registry, rng, n, orders) for n in range(products)]
    carriers = registry.search("delivery.carrier", [("name", "in", list(CARRIERS))])
    for number in range(orders):
        picked = rng.sample(product_ids, k=min(len(product_ids), rng.randint(1, 3)))
        order = place_order(
            registry,
            partner_id=rng.choice(partner_ids),
            lines=[(product, float(rng.randint(1, 5))) for product in picked],
            client_order_ref=f"PO-{rng.randrange(100000, 999999)}",
            carrier_id=rng.choice(carriers),
            commitment_days=rng.randint(1, 7),
        )
        if number < delivered:
            deliver_and_invoice(registry, order)
    return credentials


def deliver_and_invoice(registry: Registry, order_id: int, uid: int = ADMIN_UID) -> int | None:
    """Ship the order's ready deliveries in full and invoice them, as the warehouse and
    then accounting would; the posted invoice's id (None: nothing was delivered)."""
    env = Env(registry, uid, {"skip_immediate": True, "skip_sms": True, "skip_backorder": True})
    ready = [
        picking
        for picking in registry.value("sale.order", order_id, "picking_ids")
        if registry.value("stock.picking", picking, "state") == "assigned"
        and registry.value("stock.picking", picking, "picking_type_code") == "outgoing"
    ]
    for picking in ready:
        for move in registry.value("stock.picking", picking, "move_ids"):
            demand = registry.value("stock.move", move, "product_uom_qty")
            registry.write("stock.move", [move], {registry.version.move_done_field: demand}, uid)
    if ready:
        button_validate(Records(env, "stock.picking", tuple(ready)))
    return invoice_delivered(registry, order_id, uid)


def _create_customer(registry: Registry, rng: random.Random, number: int) -> int:
    country_code = rng.choice(sorted(ADDRESSES))
    lang, phone_prefix, places = ADDRESSES[country_code]
    city, zip_code, street, state_code = rng.choice(places)
    is_company = rng.random() < 0.4
    if is_company:
        name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_KINDS)}"
        email_user = "orders"
    else:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        name, email_user = f"{first} {last}", f"{first}.{last}".lower().replace(" ", "")
    _model, country = xmlid_to_record(registry, f"base.{country_code.lower()}")
    state = (
        xmlid_to_record(registry, f"base.state_us_{state_code.lower()}")[1] if state_code else False
    )
    domain = name.lower().replace(" ", "-").replace("é", "e")
    [partner] = registry.create(
        "res.partner",
        [{
            "name": name,
            "is_company": is_company,
            "ref": f"C{number + 1:05d}",
            "street": f"{street} {rng.randint(1, 120)}",
            "zip": zip_code,
            "city": city,
            "state_id": state,
            "country_id": country,
            "phone": f"{phone_prefix} {rng.randrange(1000000, 9999999)}",
            "email": f"{email_user}@{domain}.example",
            "lang": lang,
        }],
        uid=ADMIN_UID,
    )  # fmt: skip
    return partner


def _create_product(registry: Registry, rng: random.Random, number: int, orders: int) -> int:
    base = PRODUCTS[number % len(PRODUCTS)]
    name = base if number < len(PRODUCTS) else f"{base} ({number // len(PRODUCTS) + 1})"
    _model, unit = xmlid_to_record(registry, "uom.product_uom_unit")
    values: dict[str, object] = {
        "name": name,
        "default_code": f"WB-{number + 1:04d}",
        "barcode": _ean13(rng),
        "type": "consu" if registry.version.major >= 18 else "product",
        "weight": round(rng.uniform(0.1, 25.0), 2),
        "volume": round(rng.uniform(0.001, 0.2), 3),
        "list_price": round(rng.uniform(2.0, 250.0), 2),
        "uom_id": unit,
    }
    [product] = registry.create("product.product", [values], uid=ADMIN_UID)
    _model, stock = xmlid_to_record(registry, "stock.stock_location_stock")
    # Enough on hand that every seeded order can be reserved.
    on_hand = float(rng.randint(200, 500) + orders * 5)
    registry.create(
        "stock.quant",
        [{"product_id": product, "location_id": stock, "quantity": on_hand}],
        uid=ADMIN_UID,
    )
    return product


def place_order(
    registry: Registry,
    *,
    partner_id: int,
    lines: Sequence[tuple[int, float]],
    client_order_ref: str | None = None,
    carrier_id: int | None = None,
    commitment_days: int = 3,
    uid: int = ADMIN_UID,
) -> int:
    """Create a quotation and confirm it, as a salesperson would; returns the order id."""
    uom_field = registry.version.order_line_uom_field
    order_lines = [
        (0, 0, {
            "product_id": product,
            "name": registry.value("product.product", product, "name"),
            "product_uom_qty": quantity,
            uom_field: registry.value("product.product", product, "uom_id"),
            "price_unit": registry.value("product.product", product, "list_price"),
        })
        for product, quantity in lines
    ]  # fmt: skip
    now = datetime.strptime(registry.now(), "%Y-%m-%d %H:%M:%S")
    commitment = (now + timedelta(days=commitment_days)).strftime("%Y-%m-%d 16:00:00")
    values: dict[str, Any] = {
        "partner_id": partner_id,
        "partner_invoice_id": partner_id,
        "partner_shipping_id": partner_id,
        "client_order_ref": client_order_ref or False,
        "commitment_date": commitment,
        "date_order": registry.now(),
        "order_line": order_lines,
    }
    if registry.with_delivery:  # the delivery module adds carrier_id
        values["carrier_id"] = carrier_id or False
    [order] = registry.create("sale.order", [values], uid=uid)
    action_confirm(Records(Env(registry, uid), "sale.order", (order,)))
    return order
