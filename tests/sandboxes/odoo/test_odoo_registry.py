"""The in-memory ORM: domains, ordering, reads, writes, x2many commands, rollback, versions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from waybill_sandboxes.odoo import OdooVersion, Registry, seed_data
from waybill_sandboxes.odoo.exceptions import InternalError, MissingError, ValidationError


class Clock:
    """A settable clock, so write_date watermarks can be tested without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def seeded(version: int = 17, clock: Callable[[], datetime] | None = None) -> Registry:
    registry = Registry(OdooVersion(version), clock=clock)
    seed_data(registry, seed=3, customers=6, products=5, orders=4)
    return registry


def partners(registry: Registry, domain: Any, **options: Any) -> list[str]:
    ids = registry.search("res.partner", domain, **options)
    return [registry.value("res.partner", i, "name") for i in ids]


@pytest.fixture
def registry() -> Registry:
    registry = Registry(OdooVersion(17))
    seed_data(registry, seed=3, customers=0, products=0, orders=0)
    for name, city, zip_code in (
        ("Alpha", "Berlin", "10115"),
        ("Beta", "berlin", "20095"),
        ("Gamma", "Paris", "75002"),
        ("Delta", False, "1012"),
    ):
        registry.create("res.partner", [{"name": name, "city": city, "zip": zip_code}], uid=2)
    return registry


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ([("city", "=", "Berlin")], ["Alpha"]),
        ([("city", "!=", "Berlin"), ("zip", "!=", False)], ["Beta", "Delta", "Gamma"]),
        ([("city", "in", ["Paris", "Berlin"])], ["Alpha", "Gamma"]),
        ([("city", "not in", ["Paris", "Berlin"]), ("zip", "!=", False)], ["Beta", "Delta"]),
        ([("zip", "<", "2"), ("zip", ">", "0")], ["Alpha", "Delta"]),
        ([("zip", ">=", "20095"), ("zip", "<=", "75002")], ["Beta", "Gamma"]),
        ([("city", "like", "erl")], ["Alpha", "Beta"]),
        ([("city", "like", "Berl")], ["Alpha"]),
        ([("city", "ilike", "BERL")], ["Alpha", "Beta"]),
        ([("city", "=ilike", "b%n")], ["Alpha", "Beta"]),
        ([("city", "not ilike", "berl"), ("zip", "!=", False)], ["Delta", "Gamma"]),
        ([("city", "=", False), ("zip", "!=", False)], ["Delta"]),
        (["|", ("name", "=", "Alpha"), ("name", "=", "Gamma")], ["Alpha", "Gamma"]),
        (["&", ("city", "ilike", "berlin"), ("zip", "=", "20095")], ["Beta"]),
        (["!", ("city", "ilike", "berlin"), ("zip", "!=", False)], ["Delta", "Gamma"]),
        (
            ["|", "&", ("city", "=", "Paris"), ("zip", "=", "75002"), ("name", "=", "Delta")],
            ["Delta", "Gamma"],
        ),
        ([(1, "=", 1), ("zip", "=", "1012")], ["Delta"]),
        ([(0, "=", 1)], []),
    ],
)
def test_domain_operators_select_the_records_odoo_would(
    registry: Registry, domain: list[Any], expected: list[str]
) -> None:
    assert sorted(partners(registry, domain)) == expected


def test_paths_follow_relations_and_many2one_matches_names() -> None:
    registry = seeded()
    by_path = registry.search("stock.picking", [("partner_id.country_id.code", "!=", False)])
    by_name = registry.search("stock.picking", [("sale_id", "ilike", "S0000")])
    by_x2many = registry.search(
        "sale.order", [("order_line.product_id.default_code", "=", "WB-0001")]
    )
    expected_orders = {
        registry.value("sale.order.line", line, "order_id")
        for line in registry.search(
            "sale.order.line", [("product_id.default_code", "=", "WB-0001")]
        )
    }
    assert sorted(by_path) == registry.all_ids("stock.picking")
    assert sorted(by_name) == registry.all_ids("stock.picking")
    assert set(by_x2many) == expected_orders


@pytest.mark.parametrize(
    "domain",
    [
        "not a list",
        [("no_field", "=", 1)],
        [("name", "~", "x")],
        [("name", "=")],
        ["&", ("name", "=", "x")],
        ["!"],
        [("name.city", "=", "x")],
    ],
)
def test_malformed_domains_are_value_errors(registry: Registry, domain: Any) -> None:
    with pytest.raises(InternalError) as raised:
        registry.search("res.partner", domain)
    assert raised.value.qualified_name == "builtins.ValueError"


def test_order_offset_and_limit_page_through_results(registry: Registry) -> None:
    domain = [("zip", "!=", False)]
    assert partners(registry, domain, order="name desc") == ["Gamma", "Delta", "Beta", "Alpha"]
    assert partners(registry, domain, order="city, name") == ["Alpha", "Gamma", "Beta", "Delta"]
    assert partners(registry, domain, order="name", offset=1, limit=2) == ["Beta", "Delta"]
    for bad in ({"order": "name sideways"}, {"order": "nope"}, {"offset": -1}, {"limit": "2"}):
        with pytest.raises(InternalError):
            registry.search("res.partner", domain, **bad)


def test_archived_records_are_hidden_unless_asked_for(registry: Registry) -> None:
    [alpha] = registry.search("res.partner", [("name", "=", "Alpha")])
    registry.write("res.partner", [alpha], {"active": False}, uid=2)
    assert "Alpha" not in partners(registry, [])
    assert partners(registry, [("active", "=", False)]) == ["Alpha"]
    everyone = registry.search("res.partner", [], context={"active_test": False})
    assert alpha in everyone


def test_every_write_moves_write_date_and_polling_by_watermark_finds_it() -> None:
    clock = Clock()
    registry = seeded(clock=clock)
    watermark = registry.now()
    clock.now += timedelta(minutes=5)
    registry.write("stock.picking", [2], {"carrier_tracking_ref": "X1"}, uid=2)

    changed = registry.search("stock.picking", [("write_date", ">", watermark)])
    assert changed == [2]
    assert registry.value("stock.picking", 2, "write_date") == "2025-03-01 08:05:00"
    assert registry.search("stock.picking", [("write_date", ">", "2025-03-01")]) != []


def test_create_write_and_unlink_with_x2many_commands() -> None:
    registry = seeded()
    [order] = registry.create(
        "sale.order",
        [{"partner_id": 9, "order_line": [(0, 0, {"product_id": 1, "product_uom_qty": 2})]}],
        uid=2,
    )
    [line] = registry.value("sale.order", order, "order_line")
    registry.write("sale.order", [order], {"order_line": [(1, line, {"product_uom_qty": 5})]}, 2)
    registry.write("sale.order", [order], {"order_line": [(0, 0, {"product_id": 2})]}, 2)
    assert len(registry.value("sale.order", order, "order_line")) == 2
    registry.write("sale.order", [order], {"order_line": [(2, line, 0)]}, 2)
    assert registry.exists("sale.order.line", [line]) == []
    [message] = registry.create("mail.message", [{"body": "x", "partner_ids": [3, 4]}], uid=2)
    registry.write("mail.message", [message], {"partner_ids": [(3, 3, 0), (4, 5, 0)]}, 2)
    assert registry.value("mail.message", message, "partner_ids") == [4, 5]
    registry.write("mail.message", [message], {"partner_ids": [(5, 0, 0)]}, 2)
    assert registry.value("mail.message", message, "partner_ids") == []
    registry.unlink("sale.order", [order], uid=2)
    assert registry.search("sale.order.line", [("order_id", "=", order)]) == []


def test_bad_values_are_refused_with_odoos_errors() -> None:
    registry = seeded()
    cases: list[tuple[type[Exception], Callable[[], object]]] = [
        (ValidationError, lambda: registry.create("res.partner", [{"city": "Oslo"}], uid=2)),
        (InternalError, lambda: registry.write("res.partner", [3], {"nope": 1}, 2)),
        (InternalError, lambda: registry.write("stock.picking", [1], {"state": "lost"}, 2)),
        (InternalError, lambda: registry.write("stock.picking", [1], {"date_done": "soon"}, 2)),
        (InternalError, lambda: registry.write("stock.picking", [1], {"weight": "heavy"}, 2)),
        (InternalError, lambda: registry.write("stock.picking", [1], {"move_ids": [(9, 0)]}, 2)),
        (MissingError, lambda: registry.write("stock.picking", [1], {"partner_id": 9999}, 2)),
        (MissingError, lambda: registry.write("stock.picking", [9999], {"origin": "x"}, 2)),
        (MissingError, lambda: registry.unlink("stock.picking", [9999], 2)),
        (InternalError, lambda: registry.read("stock.picking", [1], ["nope"])),
    ]
    for error, call in cases:
        with pytest.raises(error):
            call()


def test_read_skips_missing_records_and_returns_empty_values_as_false() -> None:
    registry = seeded()
    rows = registry.read(
        "stock.picking", [1, 9999], ["carrier_tracking_ref", "date_done", "sale_id"]
    )
    assert rows == [{"id": 1, "carrier_tracking_ref": False, "date_done": False, "sale_id": 1}]


def test_a_failed_transaction_leaves_no_trace() -> None:
    registry = seeded()
    before = registry.read("stock.picking", registry.all_ids("stock.picking"), [])
    with pytest.raises(ValidationError), registry.transaction():
        registry.write("stock.picking", [1], {"carrier_tracking_ref": "KEPT?"}, 2)
        registry.create("stock.picking", [{"origin": "no type"}], uid=2)
    assert registry.read("stock.picking", registry.all_ids("stock.picking"), []) == before


@pytest.mark.parametrize(
    ("version", "present", "absent"),
    [
        (16, {"stock.move": "quantity_done", "sale.order.line": "product_uom"}, "picked"),
        (17, {"stock.move": "picked", "sale.order": "locked"}, "quantity_done"),
        (
            18,
            {"product.product": "is_storable", "sale.order.line": "product_uom"},
            "product_uom_id",
        ),
        (19, {"sale.order.line": "product_uom_id", "stock.move": "quantity"}, "product_uom"),
    ],
)
def test_fields_follow_the_odoo_version(version: int, present: dict[str, str], absent: str) -> None:
    registry = Registry(OdooVersion(version))
    for model, field in present.items():
        assert field in registry.models[model].fields
    everywhere = {"stock.move", "sale.order.line", "sale.order", "product.product"}
    if absent == "product_uom":
        everywhere.discard("stock.move")  # stock moves keep product_uom in every version
    assert all(absent not in registry.models[m].fields for m in everywhere)
    states = dict(registry.models["sale.order"].fields["state"].selection)
    assert ("done" in states) == (version == 16)


def test_unsupported_versions_are_refused() -> None:
    with pytest.raises(ValueError, match="choose one of 16, 17, 18, 19"):
        OdooVersion(15)


def test_the_same_seed_gives_the_same_data() -> None:
    clock = Clock()
    first, second, other = (
        seeded(clock=clock),
        seeded(clock=clock),
        Registry(OdooVersion(17), clock=clock),
    )
    seed_data(other, seed=4, customers=6, products=5, orders=4)

    def dump(registry: Registry) -> list[dict[str, Any]]:
        return [
            row
            for model in (
                "res.partner",
                "product.product",
                "sale.order",
                "stock.picking",
                "stock.move",
            )
            for row in registry.read(model, registry.all_ids(model), [])
        ]

    assert dump(first) == dump(second)
    assert dump(first) != dump(other)
    customer = first.read("res.partner", first.search("res.partner", [("ref", "!=", False)]), [])[0]
    assert customer["email"] and customer["phone"] and customer["country_id"] and customer["lang"]
    product = first.read("product.product", [1], ["default_code", "barcode", "weight", "volume"])[0]
    assert product["default_code"] == "WB-0001" and len(product["barcode"]) == 13
    assert all(
        first.value("stock.picking", p, "state") == "assigned"
        for p in first.all_ids("stock.picking")
    )


def test_seed_refuses_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="must be zero or more"):
        seed_data(Registry(OdooVersion(17)), seed=1, customers=-1, products=1, orders=0)
    with pytest.raises(ValueError, match="at least one customer"):
        seed_data(Registry(OdooVersion(17)), seed=1, customers=0, products=1, orders=1)
