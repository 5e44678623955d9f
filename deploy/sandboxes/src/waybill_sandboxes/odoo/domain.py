"""Odoo search domains and ``order`` clauses, evaluated in memory.

A domain is Odoo's prefix-notation filter: leaves ``(field, operator, value)``
combined with ``"&"``, ``"|"`` and ``"!"``, consecutive terms joined by an
implicit ``"&"``. Field paths may follow relations (``"partner_id.country_id.code"``).
Semantics follow PostgreSQL as Odoo uses it: an empty value never compares
true, ``!=`` / ``not in`` / ``not like`` also match empty values.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from waybill_sandboxes.odoo.exceptions import value_error
from waybill_sandboxes.odoo.schema import RELATIONAL_TYPES, X2MANY_TYPES, Field
from waybill_sandboxes.odoo.values import empty, hashable

POSITIVE_OPERATORS = frozenset(
    {"=", "in", "<", ">", "<=", ">=", "like", "ilike", "=like", "=ilike"}
)
NEGATIONS = {"!=": "=", "<>": "=", "not in": "in", "not like": "like", "not ilike": "ilike"}
OPERATORS = POSITIVE_OPERATORS | NEGATIONS.keys()


class RecordLookup(Protocol):
    """What evaluating a domain needs from the registry."""

    def field(self, model: str, name: str) -> Field:
        """The field, or raise a ValueError-shaped error."""
        ...

    def value(self, model: str, record_id: int, name: str) -> Any:
        """The raw value: many2one as an id or False, x2many as a list of ids."""
        ...

    def display_name(self, model: str, record_id: int) -> str:
        """The record's display name."""
        ...


@dataclass(frozen=True)
class Leaf:
    """``(path, operator, value)``; ``path`` is empty for the literal true/false leaves."""

    path: tuple[Field, ...]
    operator: str
    value: Any
    constant: bool | None = None


@dataclass(frozen=True)
class Not:
    term: Node


@dataclass(frozen=True)
class Junction:
    operator: str  # "&" or "|"
    terms: tuple[Node, ...]


Node = Leaf | Not | Junction


def parse_domain(lookup: RecordLookup, model: str, domain: Any) -> Node:
    """Check ``domain`` against the model's fields and turn it into a tree."""
    if domain is None or domain is False:
        domain = []
    if not isinstance(domain, list | tuple):
        raise value_error(f"Invalid domain: {domain!r} is not a list")
    stack: list[Node] = []
    for term in reversed(domain):
        if term in ("&", "|"):
            if len(stack) < 2:
                raise value_error(f"Invalid domain {domain!r}: {term!r} needs two terms")
            first, second = stack.pop(), stack.pop()
            stack.append(Junction(str(term), (first, second)))
        elif term == "!":
            if not stack:
                raise value_error(f"Invalid domain {domain!r}: '!' needs a term")
            stack.append(Not(stack.pop()))
        elif term is True or term is False:
            stack.append(Leaf((), "=", None, constant=bool(term)))
        else:
            stack.append(_parse_leaf(lookup, model, term))
    stack.reverse()
    return Junction("&", tuple(stack))


def _parse_leaf(lookup: RecordLookup, model: str, term: Any) -> Leaf:
    if not isinstance(term, list | tuple) or len(term) != 3:
        raise value_error(f"Invalid leaf {term!r}")
    path, operator, value = term
    if not isinstance(operator, str) or operator.lower() not in OPERATORS:
        raise value_error(f"Invalid leaf {term!r}: unknown operator {operator!r}")
    operator = operator.lower()
    if isinstance(path, int) and not isinstance(path, bool):
        # Odoo's TRUE_LEAF (1, '=', 1) and FALSE_LEAF (0, '=', 1)
        return Leaf((), "=", None, constant=(path == value) != (operator in NEGATIONS))
    if not isinstance(path, str) or not path:
        raise value_error(f"Invalid leaf {term!r}")
    fields: list[Field] = []
    current = model
    for part in path.split("."):
        if fields and fields[-1].type not in RELATIONAL_TYPES:
            raise value_error(f"Invalid field {current}.{part} in leaf {term!r}")
        try:
            found = lookup.field(current, part)
        except Exception as missing:
            raise value_error(f"Invalid field {current}.{part} in leaf {term!r}") from missing
        fields.append(found)
        current = found.relation or current
    if operator in ("in", "not in") and not isinstance(value, list | tuple):
        value = [value]
    return Leaf(tuple(fields), operator, value)


def evaluate(lookup: RecordLookup, model: str, record_id: int, node: Node) -> bool:
    """Whether the record matches the parsed domain."""
    if isinstance(node, Junction):
        if node.operator == "&":
            return all(evaluate(lookup, model, record_id, term) for term in node.terms)
        return any(evaluate(lookup, model, record_id, term) for term in node.terms)
    if isinstance(node, Not):
        return not evaluate(lookup, model, record_id, node.term)
    if node.constant is not None:
        return node.constant
    positive = NEGATIONS.get(node.operator, node.operator)
    matched = _leaf_matches(lookup, model, record_id, node, positive)
    return not matched if node.operator in NEGATIONS else matched


def required_values(node: Node) -> list[tuple[Field, tuple[Hashable, ...]]]:
    """What a record must hold to match: ``(field, values)`` pairs, one per equality leaf
    (``=`` or ``in`` on a field of the model itself) that the whole domain requires.

    A matching record's field equals (Python ``==``) one of the values; records
    that do not can be left out before evaluating. Leaves whose match is not a
    plain equality (empty values, names of many2one targets, x2many fields,
    paths through relations) are not listed, nor is anything under ``|`` or ``!``.
    """
    if isinstance(node, Junction):
        if node.operator != "&":
            return []
        return [pair for term in node.terms for pair in required_values(term)]
    if isinstance(node, Not) or node.constant is not None or len(node.path) != 1:
        return []
    field = node.path[0]
    if node.operator not in ("=", "in") or field.type in X2MANY_TYPES:
        return []
    options = node.value if node.operator == "in" else [node.value]
    wanted: list[Hashable] = []
    for option in options:
        if empty(option) or (field.type == "many2one" and isinstance(option, str)):
            return []  # matched by emptiness or by display name, not by the stored value
        normalised = _normalise(field, option)
        if not hashable(normalised):
            return []
        wanted.append(normalised)
    return [(field, tuple(wanted))]


def _leaf_matches(
    lookup: RecordLookup, model: str, record_id: int, leaf: Leaf, operator: str
) -> bool:
    # Follow the relations of the path; a record matches when any of the
    # records reached matches (Odoo's "any" semantics for paths).
    targets = [(model, record_id)]
    for step in leaf.path[:-1]:
        reached: list[tuple[str, int]] = []
        for owner, owner_id in targets:
            raw = lookup.value(owner, owner_id, step.name)
            ids = raw if isinstance(raw, list) else ([raw] if raw else [])
            reached.extend((step.relation or owner, i) for i in ids)
        targets = reached
    last = leaf.path[-1]
    return any(
        _compare(lookup, last, lookup.value(owner, owner_id, last.name), operator, leaf.value)
        for owner, owner_id in targets
    )


def _compare(lookup: RecordLookup, field: Field, current: Any, operator: str, wanted: Any) -> bool:
    if field.type in X2MANY_TYPES:
        ids: list[int] = current or []
        if operator == "=" and empty(wanted):
            return not ids
        if operator in ("=", "in"):
            options = wanted if operator == "in" else [wanted]
            if not ids:
                return any(empty(option) for option in options)
            return any(_compare(lookup, _as_many2one(field), i, operator, wanted) for i in ids)
        return any(_compare(lookup, _as_many2one(field), i, operator, wanted) for i in ids)
    if operator == "in":
        return any(_compare(lookup, field, current, "=", option) for option in wanted)
    if operator == "=" and empty(wanted):
        return empty(current) if field.type != "boolean" else not current
    if empty(current) and field.type != "boolean":
        return False
    if field.type == "many2one" and isinstance(wanted, str):
        current = lookup.display_name(field.relation or "", current)
    if operator in ("like", "ilike", "=like", "=ilike"):
        if field.type == "many2one" and not isinstance(current, str):
            current = lookup.display_name(field.relation or "", current)
        return _like(str(current), str(wanted), operator)
    wanted = _normalise(field, wanted)
    if operator == "=":
        return bool(current == wanted)
    try:
        if operator == "<":
            return bool(current < wanted)
        if operator == ">":
            return bool(current > wanted)
        if operator == "<=":
            return bool(current <= wanted)
        return bool(current >= wanted)
    except TypeError as mismatch:
        raise value_error(
            f"Cannot compare {field.name} ({field.type}) with {wanted!r}"
        ) from mismatch


def _as_many2one(field: Field) -> Field:
    return Field(name=field.name, type="many2one", string=field.string, relation=field.relation)


def _normalise(field: Field, wanted: Any) -> Any:
    if field.type == "datetime" and isinstance(wanted, str) and len(wanted) == 10:
        return f"{wanted} 00:00:00"
    if field.type == "boolean":
        return bool(wanted)
    return wanted


def _like(current: str, pattern: str, operator: str) -> bool:
    # SQL LIKE: % is any run, _ is one character; like/ilike wrap the value in %...%
    regex = "".join(
        ".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern
    )
    if operator in ("like", "ilike"):
        regex = f".*{regex}.*"
    flags = re.IGNORECASE | re.DOTALL if operator.endswith("ilike") else re.DOTALL
    return re.fullmatch(regex, current, flags) is not None


@dataclass(frozen=True)
class OrderKey:
    """One ``field [asc|desc]`` element of an ``order`` clause."""

    field: Field
    descending: bool


def parse_order(lookup: RecordLookup, model: str, order: Any) -> list[OrderKey]:
    """Check an ``order`` clause such as ``"scheduled_date asc, id desc"``."""
    if not isinstance(order, str):
        raise value_error(f"Invalid order {order!r}: expected a string")
    keys: list[OrderKey] = []
    for element in order.split(","):
        words = element.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise value_error(f'Invalid "order" specified ({order}).')
        try:
            field = lookup.field(model, words[0])
        except Exception as missing:
            raise value_error(f'Invalid "order" specified ({order}).') from missing
        if field.type in X2MANY_TYPES:
            raise value_error(f'Invalid "order" specified ({order}).')
        keys.append(OrderKey(field, len(words) == 2 and words[1].lower() == "desc"))
    return keys


def sort_ids(lookup: RecordLookup, model: str, ids: list[int], keys: list[OrderKey]) -> list[int]:
    """Sort record ids by the order keys (PostgreSQL puts empty values last when ascending)."""
    ordered = list(ids)
    for key in reversed(keys):

        def sort_value(record_id: int, field: Field = key.field) -> tuple[int, Any]:
            raw = lookup.value(model, record_id, field.name)
            if field.type == "boolean":
                return (0, bool(raw))
            if empty(raw):
                return (1, 0)
            if field.type == "many2one":
                return (0, lookup.display_name(field.relation or "", raw))
            return (0, raw)

        ordered.sort(key=sort_value, reverse=key.descending)
    return ordered
