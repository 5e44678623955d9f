"""The registry's indexes answer exactly what looking at every record answers.

Each test first asks (so the index in question exists), then changes records,
then asks again: an index that missed a change would return the wrong rows.
``scanned`` is the answer without indexes: every record of the model, the
domain evaluated on each, in the model's order.
"""

from __future__ import annotations

from typing import Any

import pytest

from waybill_sandboxes.odoo import OdooVersion, Registry, seed_data
from waybill_sandboxes.odoo.domain import evaluate, parse_domain, parse_order, sort_ids

UID = 2


def seeded() -> Registry:
    registry = Registry(OdooVersion(17))
    seed_data(registry, seed=3, customers=6, products=5, orders=4)
    return registry


def scanned(registry: Registry, model: str, domain: Any, order: str | None = None) -> list[int]:
    """The ids matching ``domain`` found by looking at every record (no ``active`` model)."""
    tree = parse_domain(registry, model, domain)
    ids = [i for i in registry.all_ids(model) if evaluate(registry, model, i, tree)]
    keys = parse_order(registry, model, order or registry.spec(model).order)
    return sort_ids(registry, model, ids, keys)


def moves_of(registry: Registry, picking: int) -> list[int]:
    return list(registry.value("stock.picking", picking, "move_ids"))


def two_pickings(registry: Registry) -> tuple[int, int]:
    first, second = registry.search("stock.picking", [], order="id")[:2]
    return first, second


def new_move(registry: Registry, picking: int) -> int:
    """A move on ``picking``, copied from one of its moves."""
    [template] = registry.read(
        "stock.move", moves_of(registry, picking)[:1], ["name", "product_id"], load=None
    )
    [move] = registry.create(
        "stock.move",
        [{"name": template["name"], "product_id": template["product_id"], "picking_id": picking}],
        uid=UID,
    )
    return move


def test_a_move_given_another_picking_leaves_the_first_ones_moves_for_the_seconds() -> None:
    registry = seeded()
    first, second = two_pickings(registry)
    before_first, before_second = moves_of(registry, first), moves_of(registry, second)
    moved = before_first[0]
    assert registry.search("stock.move", [("picking_id", "=", second)]) == before_second

    registry.write("stock.move", [moved], {"picking_id": second}, uid=UID)

    assert moves_of(registry, first) == [m for m in before_first if m != moved]
    assert moves_of(registry, second) == sorted([*before_second, moved])
    assert registry.search("stock.move", [("picking_id", "=", second)]) == sorted(
        [*before_second, moved]
    )
    assert registry.search("stock.move", [("picking_id", "=", first)]) == moves_of(registry, first)


def test_a_picking_whose_state_changes_is_found_by_its_new_state_only() -> None:
    registry = seeded()
    first, _second = two_pickings(registry)
    state = registry.value("stock.picking", first, "state")
    assert first in registry.search("stock.picking", [("state", "=", state)])

    registry.write("stock.picking", [first], {"state": "done"}, uid=UID)

    assert first not in registry.search("stock.picking", [("state", "=", state)])
    assert first in registry.search("stock.picking", [("state", "in", ["cancel", "done"])])
    for domain in ([("state", "=", state)], [("state", "in", ["done", "assigned"])]):
        assert registry.search("stock.picking", domain) == scanned(
            registry, "stock.picking", domain
        )


def test_a_rolled_back_call_leaves_every_index_as_it_was() -> None:
    registry = seeded()
    first, second = two_pickings(registry)
    moved, removed = moves_of(registry, first)[0], moves_of(registry, second)[0]
    domains = [
        ("stock.move", [("picking_id", "=", first)]),
        ("stock.move", [("picking_id", "=", second)]),
        ("stock.picking", [("state", "=", registry.value("stock.picking", first, "state"))]),
    ]
    before = [registry.search(model, domain) for model, domain in domains]
    moves_before = moves_of(registry, first), moves_of(registry, second)

    with pytest.raises(RuntimeError), registry.transaction():
        added = new_move(registry, first)
        registry.write("stock.move", [moved], {"picking_id": second}, uid=UID)
        registry.unlink("stock.move", [removed], uid=UID)
        registry.write("stock.picking", [first], {"state": "done"}, uid=UID)
        # An index first built inside the call must be rolled back too.
        assert registry.search("stock.move", [("name", "=", "not a move")]) == []
        registry.write("stock.move", [added], {"name": "not a move"}, uid=UID)
        assert registry.search("stock.move", [("name", "=", "not a move")]) == [added]
        raise RuntimeError("the call failed")

    assert [registry.search(model, domain) for model, domain in domains] == before
    assert (moves_of(registry, first), moves_of(registry, second)) == moves_before
    assert registry.search("stock.move", [("name", "=", "not a move")]) == []
    assert registry.search("stock.move", [("id", "=", added)]) == []


def test_unlinked_records_leave_their_parents_and_every_answer() -> None:
    registry = seeded()
    first, _second = two_pickings(registry)
    moves = moves_of(registry, first)
    assert registry.search("stock.move", [("picking_id", "=", first)]) == moves

    registry.unlink("stock.move", [moves[0]], uid=UID)

    assert moves_of(registry, first) == moves[1:]
    assert registry.search("stock.move", [("picking_id", "=", first)]) == moves[1:]
    assert registry.search("stock.move", [("id", "in", moves)]) == moves[1:]


def test_chatter_is_found_by_model_and_record_id_together() -> None:
    registry = seeded()
    first, second = two_pickings(registry)
    chatter = [("model", "=", "stock.picking"), ("res_id", "=", first)]
    before = registry.search("mail.message", chatter)
    assert registry.value("stock.picking", first, "message_ids") == before

    [on_picking, _on_order] = registry.create(
        "mail.message",
        [
            {"model": "stock.picking", "res_id": first, "body": "label booked"},
            {"model": "sale.order", "res_id": first, "body": "same id, other model"},
        ],
        uid=UID,
    )

    assert registry.search("mail.message", chatter) == [on_picking, *before]  # id desc
    assert registry.value("stock.picking", first, "message_ids") == [on_picking, *before]
    registry.write("mail.message", [on_picking], {"res_id": second}, uid=UID)
    assert registry.search("mail.message", chatter) == before
    assert on_picking in registry.value("stock.picking", second, "message_ids")


@pytest.mark.parametrize(
    "domain",
    [
        [("id", "=", 1.0)],  # equal to id 1, answered with the int id
        [("id", "in", [2, 3, 999])],
        [("picking_id", "=", False)],
        [("picking_id", "in", [1, False])],
        [("picking_id", "!=", 1)],
        [("picking_id.name", "like", "OUT")],
        [("product_id", "=", "no product is named this")],
        [("picking_id", "=", "WH/OUT/00002")],  # a many2one matched by its target's name
        [("origin", "=", "")],  # matches the empty (False) origins
        [("origin", "in", [(1, [2])])],  # a tuple that cannot be hashed matches nothing
        ["|", ("picking_id", "=", 1), ("picking_id", "=", 2)],
        ["!", ("picking_id", "=", 1)],
        [("picking_id", "in", [1, 2]), ("state", "in", ["assigned", "draft"])],
        [("product_uom_qty", "=", 1)],  # the stored 1.0 equals the int
        [("is_inventory", "=", True)],
        [("is_inventory", "=", False)],
    ],
)
def test_domains_answer_as_without_indexes_after_changes(domain: list[Any]) -> None:
    registry = seeded()
    first, second = two_pickings(registry)
    assert registry.search("stock.move", domain) == scanned(registry, "stock.move", domain)
    registry.write(
        "stock.move", moves_of(registry, first)[:1], {"picking_id": False, "origin": ""}, UID
    )
    registry.write("stock.move", moves_of(registry, second)[:1], {"is_inventory": True}, uid=UID)
    registry.write(
        "stock.move", moves_of(registry, second)[1:], {"product_uom_qty": 1, "state": "done"}, UID
    )
    found = registry.search("stock.move", domain)
    assert found == scanned(registry, "stock.move", domain)
    assert all(type(record_id) is int for record_id in found)
    for offset, limit in ((0, 1), (1, 2), (2, None)):
        expected = scanned(registry, "stock.move", domain, "state desc, id")
        end = None if limit is None else offset + limit
        assert (
            registry.search(
                "stock.move", domain, offset=offset, limit=limit, order="state desc, id"
            )
            == expected[offset:end]
        )
