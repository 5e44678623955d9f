"""The canonical model and message structs keep the promises of the contract rules."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import msgspec
import pytest

from waybill_contracts import MESSAGE_TYPES
from waybill_contracts import model as m
from waybill_contracts.events import OrderReleased
from waybill_contracts.examples import ADDRESS, ORDER
from waybill_contracts.record import Record

MODEL_TYPES = tuple(
    value
    for value in vars(m).values()
    if isinstance(value, type) and issubclass(value, msgspec.Struct) and value is not Record
)
WIRE_TYPES = MODEL_TYPES + MESSAGE_TYPES


def test_model_covers_the_canonical_entities() -> None:
    names = {cls.__name__ for cls in MODEL_TYPES}
    expected = {"Address", "Party", "Money", "Quantity", "OrderLine", "Order", "Parcel"}
    expected |= {"Shipment", "Milestone", "StockAdjustment", "Product"}
    assert expected <= names


@pytest.mark.parametrize("struct_type", WIRE_TYPES, ids=lambda t: t.__name__)
def test_every_wire_struct_is_frozen_keyword_only_and_tolerant(
    struct_type: type[msgspec.Struct],
) -> None:
    config = struct_type.__struct_config__
    assert config.frozen
    assert not config.forbid_unknown_fields
    parameters = inspect.signature(struct_type).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)


def _undocumented(schema_components: dict[str, dict[str, object]]) -> list[str]:
    missing = []
    for name, component in schema_components.items():
        properties = component.get("properties", {})
        assert isinstance(properties, dict)
        missing += [f"{name}.{f}" for f, p in properties.items() if not p.get("description")]
        if not component.get("description"):
            missing.append(name)
    return missing


def test_every_field_and_struct_is_documented_in_the_json_schema() -> None:
    _, components = msgspec.json.schema_components(WIRE_TYPES)
    assert _undocumented(components) == []


def test_a_naive_datetime_is_refused_when_the_struct_is_built() -> None:
    with pytest.raises(ValueError, match=r"OrderReleased\.released_at must be a timezone-aware"):
        OrderReleased(order=ORDER, released_at=datetime(2025, 1, 1, 12, 0))


def test_a_naive_datetime_inside_an_optional_field_is_refused_too() -> None:
    with pytest.raises(ValueError, match="promised_at"):
        msgspec.structs.replace(ORDER, promised_at=datetime(2025, 1, 1))


def test_an_aware_datetime_in_any_zone_is_accepted() -> None:
    amsterdam = timezone(timedelta(hours=1))
    order = msgspec.structs.replace(ORDER, promised_at=datetime(2025, 1, 1, tzinfo=amsterdam))
    assert order.promised_at is not None
    assert order.promised_at.astimezone(UTC).hour == 23


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity"])
def test_money_refuses_non_finite_amounts(amount: str) -> None:
    with pytest.raises(ValueError, match=r"Money\.amount must be a finite decimal"):
        m.Money(amount=Decimal(amount), currency="EUR")


def test_money_travels_as_an_exact_decimal_string() -> None:
    money = m.Money(amount=Decimal("0.10"), currency="EUR")
    assert msgspec.json.encode(money) == b'{"amount":"0.10","currency":"EUR"}'
    assert msgspec.json.decode(b'{"amount":"0.10","currency":"EUR"}', type=m.Money) == money


def test_money_readers_also_accept_a_json_number() -> None:
    money = msgspec.json.decode(b'{"amount":12.3,"currency":"EUR"}', type=m.Money)
    assert money.amount == Decimal("12.3")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"amount":"1","currency":"euro"}', "currency"),
        (b'{"value":"NaN","uom":"Units"}', "finite"),
        (b'{"value":"1","uom":""}', "uom"),
    ],
)
def test_decoding_enforces_field_constraints(body: bytes, fragment: str) -> None:
    target = m.Money if b"currency" in body else m.Quantity
    with pytest.raises(msgspec.ValidationError, match=fragment):
        msgspec.json.decode(body, type=target)


def test_country_codes_are_two_upper_case_letters() -> None:
    raw = msgspec.json.encode(msgspec.structs.replace(ADDRESS, country_code="nld"))
    with pytest.raises(msgspec.ValidationError, match="country_code"):
        msgspec.json.decode(raw, type=m.Address)


def test_milestone_vocabulary_is_the_canonical_one() -> None:
    assert [code.value for code in m.MilestoneCode] == [
        "label_created",
        "in_transit",
        "out_for_delivery",
        "available_for_pickup",
        "delivery_attempt_failed",
        "delivered",
        "returned_to_sender",
        "exception",
        "cancelled",
        "unknown",
    ]
